// The Prometheus text of a cluster node: its broker connection and what
// crossed it. A function of the cluster entry point (the core's
// prometheusMetrics() knows nothing of clusters); append its text to the
// servers' in one /metrics answer.
import { Exposition } from "../_exposition.ts";
import type { Cluster } from "./cluster.ts";

/**
 * A cluster node's counters in the Prometheus text format 0.0.4, to serve
 * after {@linkcode prometheusMetrics}'s text: the broker's connection state
 * (`microsocket_cluster_broker_connected`, 1 or 0) and disconnects, broker
 * messages published, received and dropped (refused while the broker is
 * down or over its in-flight limit), the payload bytes published and
 * received, the node's room and direct frames
 * published, received and delivered, the rooms it is subscribed to and the
 * other nodes presence hears from. Labels: the broker `kind` only.
 *
 * @typeParam Meta The cluster's presence data (not read).
 * @param cluster The node's {@linkcode Cluster}.
 * @returns The exposition text.
 *
 * @example Metrics of a node over an in-memory broker
 * ```ts
 * import { Cluster, clusterMetrics, MemoryBrokerHub } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub();
 * await using cluster = new Cluster({ broker: hub.connect() });
 * assert.match(
 *   clusterMetrics(cluster),
 *   /^microsocket_cluster_broker_connected\{kind="memory"\} 1$/m,
 * );
 * ```
 */
export function clusterMetrics<Meta>(cluster: Cluster<Meta>): string {
  const node = cluster.node;
  const broker = node.broker;
  const labels = { kind: broker.kind };
  const b = broker.stats();
  const n = node.stats();
  const out = new Exposition();
  const one = (
    name: string,
    type: "counter" | "gauge",
    help: string,
    value: number,
  ): void => void out.family(name, type, help).sample(name, value, labels);
  one(
    "microsocket_cluster_broker_connected",
    "gauge",
    "Whether the broker connection is up (1) or not (0).",
    broker.state === "connected" ? 1 : 0,
  );
  one(
    "microsocket_cluster_broker_disconnects_total",
    "counter",
    "Times the broker connection went down.",
    b.disconnects,
  );
  one(
    "microsocket_cluster_broker_messages_published_total",
    "counter",
    "Messages handed to the broker client (frames, presence, control).",
    b.published,
  );
  one(
    "microsocket_cluster_broker_messages_received_total",
    "counter",
    "Messages received from the broker.",
    b.received,
  );
  one(
    "microsocket_cluster_broker_published_bytes_total",
    "counter",
    "Payload bytes of the messages handed to the broker client.",
    b.publishedBytes,
  );
  one(
    "microsocket_cluster_broker_received_bytes_total",
    "counter",
    "Payload bytes of the messages received from the broker.",
    b.receivedBytes,
  );
  one(
    "microsocket_cluster_broker_messages_dropped_total",
    "counter",
    "Publishes that never left: the broker was down or over its in-flight limit.",
    b.dropped,
  );
  one(
    "microsocket_cluster_frames_published_total",
    "counter",
    "Room and direct frames this node published (one per broadcast).",
    n.published,
  );
  one(
    "microsocket_cluster_frames_dropped_total",
    "counter",
    "Room and direct frames the broker refused (outage, in-flight limit).",
    n.dropped,
  );
  one(
    "microsocket_cluster_frames_received_total",
    "counter",
    "Room and direct frames received from other nodes.",
    n.received,
  );
  one(
    "microsocket_cluster_frames_delivered_total",
    "counter",
    "Received frames handed to local sessions.",
    n.delivered,
  );
  one(
    "microsocket_cluster_rooms",
    "gauge",
    "Rooms this node is subscribed to (has local members in).",
    n.rooms,
  );
  one(
    "microsocket_cluster_nodes",
    "gauge",
    "Other nodes presence heard from within nodeTimeout.",
    cluster.presence.nodes().length,
  );
  return out.toString();
}
