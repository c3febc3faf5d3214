// clusterMetrics(): a node's broker and cross-node traffic in the Prometheus
// text, on two nodes over an in-memory broker and real client sockets.
import assert from "node:assert/strict";
import { Cluster, clusterMetrics, MemoryBrokerHub } from "../../cluster.ts";
import { lines, listen, prometheusMetrics, type Server } from "../../mod.ts";
import { LineReader, until, utf8, writeAll } from "../_util.ts";
import { dial, portOf } from "../_server.ts";
import { parseExposition, valueOf } from "./_prometheus_text.ts";

function node(cluster: Cluster): Server<unknown, string> {
  const server: Server<unknown, string> = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lines(),
    cluster,
    onOpen: (session) => void server.sessions.join(session, "room"),
    onMessage: (session, line) =>
      void server.sessions.broadcast(line, { room: "room", except: session }),
  });
  return server;
}

Deno.test("clusterMetrics(): broker state, frames published on one node and delivered on the other", async () => {
  const hub = new MemoryBrokerHub();
  const clusters = [
    new Cluster({ broker: hub.connect(), presence: { heartbeatInterval: 50 } }),
    new Cluster({ broker: hub.connect(), presence: { heartbeatInterval: 50 } }),
  ];
  const servers = clusters.map(node);
  const [a, b] = servers as [Server<unknown, string>, Server<unknown, string>];
  const conns: Deno.Conn[] = [];
  try {
    const sender = await dial(portOf(a.addr));
    const receiver = await dial(portOf(b.addr));
    conns.push(sender, receiver);
    await until(
      () => a.sessions.size === 1 && b.sessions.size === 1,
      2000,
      "both joined",
    );
    // Until B's subscription has reached A, a line may go nowhere: send
    // until one arrives.
    const reader = new LineReader(receiver);
    let got: string | null = null;
    for (let i = 0; i < 40 && got === null; i++) {
      await writeAll(sender, utf8(`hello ${i}\n`));
      got = await reader.next(100).catch(() => null);
    }
    assert.match(got!, /^hello \d+$/);
    await until(
      () => clusters[1]!.node.stats().delivered >= 1,
      2000,
      "delivered on B",
    );
    const textA = parseExposition(clusterMetrics(clusters[0]!));
    const textB = parseExposition(clusterMetrics(clusters[1]!));
    const kind = { kind: "memory" };
    assert.equal(
      valueOf(textA, "microsocket_cluster_broker_connected", kind),
      1,
    );
    assert.ok(
      valueOf(textA, "microsocket_cluster_frames_published_total")! >= 1,
    );
    assert.equal(valueOf(textA, "microsocket_cluster_frames_dropped_total"), 0);
    assert.equal(
      valueOf(textB, "microsocket_cluster_frames_delivered_total"),
      clusters[1]!.node.stats().delivered,
    );
    assert.equal(valueOf(textB, "microsocket_cluster_rooms"), 1);
    await until(
      () =>
        valueOf(
          parseExposition(clusterMetrics(clusters[0]!)),
          "microsocket_cluster_nodes",
        ) === 1,
      2000,
      "A hears of B",
    );
    // The two texts concatenate into one valid exposition.
    parseExposition(prometheusMetrics(a) + clusterMetrics(clusters[0]!));
  } finally {
    for (const conn of conns) conn.close();
    await Promise.all(servers.map((server) => server.shutdown()));
    await Promise.all(clusters.map((cluster) => cluster.close()));
  }
});
