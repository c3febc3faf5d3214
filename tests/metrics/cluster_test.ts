// clusterMetrics(): a node's broker and cross-node traffic in the Prometheus
// text, on two nodes over an in-memory broker and real client sockets; the
// broker's bytes against real nats-server and redis-server, in the text and
// over OpenTelemetry (instrumentClusterMetrics()).
import assert from "node:assert/strict";
import {
  Cluster,
  clusterMetrics,
  connectBroker,
  MemoryBrokerHub,
} from "../../cluster.ts";
import { instrumentClusterMetrics } from "../../otel.ts";
import { lines, listen, prometheusMetrics, type Server } from "../../mod.ts";
import { delay, LineReader, until, utf8, writeAll } from "../_util.ts";
import { dial, portOf } from "../_server.ts";
import { parseExposition, valueOf } from "./_prometheus_text.ts";
import { find, TestMeterProvider } from "./_test_meter_provider.ts";
import { type BrokerKind, BrokerServer, skipMessage } from "../_brokers.ts";

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

for (const kind of ["nats", "redis"] as BrokerKind[]) {
  Deno.test({
    name:
      `${kind}: broker bytes published and received move by the exact payload bytes, in the stats, the Prometheus text and OpenTelemetry`,
    ignore: skipMessage(kind),
    async fn() {
      await using broker = await BrokerServer.start(kind);
      // The node publishes; a plain broker connection receives, so that
      // nothing but the test's own messages reaches it.
      await using cluster = new Cluster({
        broker: await connectBroker(broker.url, { onError: () => {} }),
      });
      await using receiver = await connectBroker(broker.url, {
        onError: () => {},
      });
      const publisher = cluster.node.broker;
      let handed = 0; // bytes handed to the receiver's handler
      let last: Uint8Array | undefined;
      receiver.subscribe("t.metrics", (bytes) => {
        handed += bytes.byteLength;
        last = bytes.slice();
      });
      // Until the subscription has settled, a publish may go nowhere.
      for (let i = 0; i < 100 && handed === 0; i++) {
        publisher.publish("t.metrics", new Uint8Array([1, 2, 3]));
        await delay(50);
      }
      assert.ok(handed > 0, "the subscription settled");
      await delay(100); // probes still in flight arrive
      const payload = new Uint8Array(1234).fill(7);
      const sentBefore = publisher.stats().publishedBytes;
      const receivedBefore = receiver.stats().receivedBytes;
      const textBefore = parseExposition(clusterMetrics(cluster));
      const labels = { kind };
      const published = "microsocket_cluster_broker_published_bytes_total";
      assert.equal(valueOf(textBefore, published, labels), sentBefore);
      assert.equal(publisher.publish("t.metrics", payload), true);
      // Counted at once, by exactly the payload's bytes.
      assert.equal(publisher.stats().publishedBytes - sentBefore, 1234);
      const textAfter = parseExposition(clusterMetrics(cluster));
      assert.equal(
        valueOf(textAfter, published, labels)! -
          valueOf(textBefore, published, labels)!,
        1234,
      );
      await until(() => last?.byteLength === 1234, 5000, "payload received");
      assert.equal(receiver.stats().receivedBytes - receivedBefore, 1234);
      assert.equal(receiver.stats().receivedBytes, handed);
      // The node's own received bytes, in the text and over OpenTelemetry.
      const provider = new TestMeterProvider();
      using _metrics = instrumentClusterMetrics(cluster, {
        meterProvider: provider,
      });
      const seen = provider.collect();
      const text = parseExposition(clusterMetrics(cluster));
      const stats = publisher.stats();
      assert.equal(
        find(seen, "microsocket.cluster.broker.bytes.published", labels),
        stats.publishedBytes,
      );
      assert.equal(
        find(seen, "microsocket.cluster.broker.bytes.received", labels),
        stats.receivedBytes,
      );
      assert.equal(
        valueOf(
          text,
          "microsocket_cluster_broker_received_bytes_total",
          labels,
        ),
        stats.receivedBytes,
      );
      assert.equal(
        find(seen, "microsocket.cluster.broker.messages.published", labels),
        stats.published,
      );
      assert.equal(
        find(seen, "microsocket.cluster.broker.connected", labels),
        1,
      );
    },
  });
}
