// OpenTelemetry instruments of a cluster node: the same values as the
// cluster's Prometheus text (src/cluster/cluster_metrics.ts), read from its
// broker's and node's counters when the SDK collects, so nothing runs per
// message.
import type {
  Attributes,
  BatchObservableCallback,
  Observable,
} from "npm:@opentelemetry/api@^1.9.0";
import type { Cluster } from "../cluster/cluster.ts";
import { meterOf } from "./_otel_meter.ts";
import type { OtelMetrics, OtelMetricsOptions } from "./otel.ts";

/**
 * Registers OpenTelemetry instruments that report a cluster node's
 * counters whenever the MeterProvider collects, each with the broker
 * `kind` as attribute: `microsocket.cluster.broker.connected` (gauge, 1 or
 * 0), `microsocket.cluster.broker.disconnects`,
 * `microsocket.cluster.broker.messages.published` / `.received` /
 * `.dropped`, `microsocket.cluster.broker.bytes.published` / `.received`
 * (payload bytes, unit `By`), `microsocket.cluster.frames.published` /
 * `.dropped` / `.received` / `.delivered`, `microsocket.cluster.rooms` and
 * `microsocket.cluster.nodes` (gauges) — the same values as
 * `clusterMetrics()`'s Prometheus text. Call it beside
 * {@linkcode instrumentMetrics} for the node's servers.
 *
 * @typeParam Meta The cluster's presence data (not read).
 * @param cluster The node's `Cluster`.
 * @param options The MeterProvider to use.
 * @returns A handle whose `[Symbol.dispose]()` stops the reporting.
 * @throws {TypeError} When an option is unknown.
 *
 * @example A node over an in-memory broker
 * ```ts
 * import { Cluster, MemoryBrokerHub } from "@x/microsocket/cluster";
 * import { instrumentClusterMetrics } from "@x/microsocket/otel";
 *
 * const hub = new MemoryBrokerHub();
 * await using cluster = new Cluster({ broker: hub.connect() });
 * using _metrics = instrumentClusterMetrics(cluster);
 * ```
 */
export function instrumentClusterMetrics<Meta>(
  cluster: Cluster<Meta>,
  options: OtelMetricsOptions = {},
): OtelMetrics {
  const meter = meterOf(options, "instrumentClusterMetrics()");
  const gauge = (name: string, description: string, unit: string) =>
    meter.createObservableGauge(name, { description, unit });
  const counter = (name: string, description: string, unit: string) =>
    meter.createObservableCounter(name, { description, unit });
  const i = {
    connected: gauge(
      "microsocket.cluster.broker.connected",
      "Whether the broker connection is up (1) or not (0).",
      "1",
    ),
    disconnects: counter(
      "microsocket.cluster.broker.disconnects",
      "Times the broker connection went down.",
      "{disconnect}",
    ),
    published: counter(
      "microsocket.cluster.broker.messages.published",
      "Messages handed to the broker client (frames, presence, control).",
      "{message}",
    ),
    received: counter(
      "microsocket.cluster.broker.messages.received",
      "Messages received from the broker.",
      "{message}",
    ),
    dropped: counter(
      "microsocket.cluster.broker.messages.dropped",
      "Publishes that never left: the broker was down or over its in-flight limit.",
      "{message}",
    ),
    bytesPublished: counter(
      "microsocket.cluster.broker.bytes.published",
      "Payload bytes of the messages handed to the broker client.",
      "By",
    ),
    bytesReceived: counter(
      "microsocket.cluster.broker.bytes.received",
      "Payload bytes of the messages received from the broker.",
      "By",
    ),
    framesPublished: counter(
      "microsocket.cluster.frames.published",
      "Room and direct frames this node published (one per broadcast).",
      "{frame}",
    ),
    framesDropped: counter(
      "microsocket.cluster.frames.dropped",
      "Room and direct frames the broker refused (outage, in-flight limit).",
      "{frame}",
    ),
    framesReceived: counter(
      "microsocket.cluster.frames.received",
      "Room and direct frames received from other nodes.",
      "{frame}",
    ),
    framesDelivered: counter(
      "microsocket.cluster.frames.delivered",
      "Received frames handed to local sessions.",
      "{frame}",
    ),
    rooms: gauge(
      "microsocket.cluster.rooms",
      "Rooms this node is subscribed to (has local members in).",
      "{room}",
    ),
    nodes: gauge(
      "microsocket.cluster.nodes",
      "Other nodes presence heard from within nodeTimeout.",
      "{node}",
    ),
  };
  const callback: BatchObservableCallback = (observe) => {
    const node = cluster.node;
    const broker = node.broker;
    const attributes: Attributes = { kind: broker.kind };
    const b = broker.stats();
    const n = node.stats();
    const put = (instrument: Observable<Attributes>, value: number) =>
      observe.observe(instrument, value, attributes);
    put(i.connected, broker.state === "connected" ? 1 : 0);
    put(i.disconnects, b.disconnects);
    put(i.published, b.published);
    put(i.received, b.received);
    put(i.dropped, b.dropped);
    put(i.bytesPublished, b.publishedBytes);
    put(i.bytesReceived, b.receivedBytes);
    put(i.framesPublished, n.published);
    put(i.framesDropped, n.dropped);
    put(i.framesReceived, n.received);
    put(i.framesDelivered, n.delivered);
    put(i.rooms, n.rooms);
    put(i.nodes, cluster.presence.nodes().length);
  };
  const observables = Object.values(i);
  meter.addBatchObservableCallback(callback, observables);
  return {
    [Symbol.dispose]: () =>
      meter.removeBatchObservableCallback(callback, observables),
  };
}
