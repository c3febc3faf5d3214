// The Broker implementations against real servers (nats-server,
// redis-server started here on free loopback ports) and the in-memory one:
// bytes round trip, subject rules, outages counted as drops, restart and
// resubscribe, and a cut connection survived.
import assert from "node:assert/strict";
import {
  type Broker,
  connectBroker,
  MemoryBrokerHub,
  NatsBroker,
  RedisBroker,
} from "../../cluster.ts";
import { type BrokerKind, BrokerServer, skipMessage } from "../_brokers.ts";
import { delay, until } from "../_util.ts";

const quiet = (): void => {};

/** Publishes `probe` every 50 ms until `received()` grows (subscriptions settle asynchronously). */
async function settle(
  publisher: Broker,
  subject: string,
  received: () => number,
  ms = 5000,
): Promise<void> {
  const before = received();
  const deadline = Date.now() + ms;
  while (received() === before) {
    if (Date.now() > deadline) throw new Error(`No delivery on ${subject}`);
    publisher.publish(subject, new Uint8Array([0xee]));
    await delay(50);
  }
}

for (const kind of ["nats", "redis"] as BrokerKind[]) {
  const ignore = skipMessage(kind);

  Deno.test({
    name: `${kind}: bytes round trip unchanged, 0x00 and 0xff included`,
    ignore,
    async fn() {
      await using server = await BrokerServer.start(kind);
      await using a = await connectBroker(server.url, { onError: quiet });
      await using b = await connectBroker(server.url, { onError: quiet });
      assert.equal(a.kind, kind);
      const got: Uint8Array[] = [];
      b.subscribe("t.bytes", (bytes, subject) => {
        assert.equal(subject, "t.bytes");
        got.push(bytes.slice());
      });
      await settle(a, "t.bytes", () => got.length);
      got.length = 0;
      const all = new Uint8Array(256).map((_, i) => i);
      const big = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
      // A view into a larger buffer: only the view's bytes may travel.
      const view = new Uint8Array([9, 0, 255, 0, 9]).subarray(1, 4);
      for (const payload of [all, new Uint8Array(0), view, big]) {
        assert.equal(a.publish("t.bytes", payload), true);
      }
      await until(() => got.length === 4, 5000, "4 messages");
      assert.deepEqual(got[0], all);
      assert.equal(got[1]!.length, 0);
      assert.deepEqual(got[2], new Uint8Array([0, 255, 0]));
      assert.deepEqual(got[3], big);
      assert.equal(a.stats().published >= 4, true);
      assert.equal(a.stats().dropped, 0);
    },
  });

  Deno.test({
    name: `${kind}: unsubscribe stops delivery and subjects are checked`,
    ignore,
    async fn() {
      await using server = await BrokerServer.start(kind);
      await using a = await connectBroker(server.url, { onError: quiet });
      await using b = await connectBroker(server.url, { onError: quiet });
      let one = 0;
      let two = 0;
      const first = b.subscribe("t.sub", () => one++);
      b.subscribe("t.sub", () => two++);
      await settle(a, "t.sub", () => one);
      first.unsubscribe();
      first.unsubscribe();
      const [oneBefore, twoBefore] = [one, two];
      a.publish("t.sub", new Uint8Array([1]));
      await until(() => two > twoBefore, 5000, "second handler");
      assert.equal(one, oneBefore);
      assert.throws(
        () => a.publish("bad subject", new Uint8Array()),
        TypeError,
      );
      assert.throws(() => a.subscribe("a.*", () => {}), TypeError);
      assert.throws(
        () => a.publish("x", "text" as unknown as Uint8Array),
        TypeError,
      );
    },
  });

  Deno.test({
    name:
      `${kind}: broker restart mid-conversation: drops are counted, subscriptions come back, traffic resumes`,
    ignore,
    async fn() {
      await using server = await BrokerServer.start(kind);
      await using a = await connectBroker(server.url, {
        onError: quiet,
        reconnectWait: 100,
      });
      await using b = await connectBroker(server.url, {
        onError: quiet,
        reconnectWait: 100,
      });
      const states: string[] = [];
      b.onStateChange((state) => states.push(state));
      const got: number[] = [];
      b.subscribe("t.restart", (bytes) => got.push(bytes[0]!));
      await settle(a, "t.restart", () => got.length);
      await server.stop();
      await until(() => a.state !== "connected", 5000, "a sees the outage");
      const dropped = a.stats().dropped;
      for (let i = 0; i < 100; i++) {
        assert.equal(a.publish("t.restart", new Uint8Array([i])), false);
      }
      assert.equal(a.stats().dropped, dropped + 100);
      await server.restart();
      await until(
        () => a.state === "connected" && b.state === "connected",
        10_000,
        "both reconnect",
      );
      got.length = 0;
      await settle(a, "t.restart", () => got.length);
      assert.ok(states.includes("disconnected"), states.join());
      assert.equal(states.at(-1), "connected");
      assert.ok(b.stats().disconnects >= 1);
    },
  });

  Deno.test({
    name: `${kind}: the first connection to a dead server fails fast`,
    ignore,
    async fn() {
      const server = await BrokerServer.start(kind);
      const url = server.url;
      await server.stop();
      await assert.rejects(
        connectBroker(url, { onError: quiet, timeout: 2000 }),
      );
    },
  });
}

Deno.test({
  name: "redis: plain PUBLISH/SUBSCRIBE (sharded: false) works the same",
  ignore: skipMessage("redis"),
  async fn() {
    await using server = await BrokerServer.start("redis");
    await using a = await RedisBroker.connect(server.url, {
      onError: quiet,
      sharded: false,
    });
    await using b = await RedisBroker.connect(server.url, {
      onError: quiet,
      sharded: false,
    });
    assert.equal(a.sharded, false);
    const got: Uint8Array[] = [];
    b.subscribe("t.plain", (bytes) => got.push(bytes.slice()));
    await settle(a, "t.plain", () => got.length);
    got.length = 0;
    a.publish("t.plain", new Uint8Array([0, 255]));
    await until(() => got.length === 1);
    assert.deepEqual(got[0], new Uint8Array([0, 255]));
  },
});

Deno.test({
  name:
    "redis: a slow subscriber cut by the server (output buffer limit) reconnects and resubscribes",
  ignore: skipMessage("redis"),
  async fn() {
    await using server = await BrokerServer.start("redis");
    const cli = (...args: string[]): Deno.CommandOutput =>
      // Synchronous on purpose: this process's event loop stops reading,
      // exactly what a slow consumer looks like to the server.
      new Deno.Command("redis-cli", {
        args: ["-p", String(server.port), ...args],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
    try {
      cli("PING");
    } catch {
      return; // no redis-cli here: nothing to drive the flood with
    }
    cli("CONFIG", "SET", "client-output-buffer-limit", "pubsub 256kb 128kb 1");
    await using a = await RedisBroker.connect(server.url, {
      onError: quiet,
      reconnectWait: 100,
    });
    await using b = await RedisBroker.connect(server.url, {
      onError: quiet,
      reconnectWait: 100,
    });
    assert.equal(a.sharded, true);
    const got: number[] = [];
    b.subscribe("t-slow", (bytes) => got.push(bytes[0]!));
    await settle(a, "t-slow", () => got.length);
    // 40 MB for b while b can't read: more than the socket buffers hold.
    const flood = cli(
      "EVAL",
      "for i=1,4000 do redis.call('SPUBLISH', KEYS[1], string.rep('x', 10000)) end",
      "1",
      "t-slow",
    );
    assert.equal(flood.success, true, new TextDecoder().decode(flood.stderr));
    await until(() => b.stats().disconnects >= 1, 10_000, "b is cut");
    await until(() => b.state === "connected", 10_000, "b reconnects");
    got.length = 0;
    await settle(a, "t-slow", () => got.length);
  },
});

Deno.test({
  name:
    "nats: a slow consumer cut by the server (max_pending) reconnects and resubscribes",
  ignore: skipMessage("nats"),
  async fn() {
    await using server = await BrokerServer.start("nats", {
      natsConfig:
        'max_payload: 65536\nmax_pending: 262144\nwrite_deadline: "500ms"\n',
    });
    await using a = await NatsBroker.connect(server.url, {
      onError: quiet,
      reconnectWait: 100,
    });
    await using b = await NatsBroker.connect(server.url, {
      onError: quiet,
      reconnectWait: 100,
    });
    const got: number[] = [];
    b.subscribe("t-slow", (bytes) => got.push(bytes[0]!));
    await settle(a, "t-slow", () => got.length);
    // Another process floods b's subject while this one is blocked in a
    // synchronous call, so b reads nothing: a slow consumer. (The server
    // throttles the flooding publisher, so this takes ~10 s.)
    const script = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      await Deno.writeTextFile(
        script,
        `import { connect } from "npm:@nats-io/transport-node@^3.4.0";
const nc = await connect({ servers: "127.0.0.1:${server.port}" });
const payload = new Uint8Array(20_000);
for (let i = 0; i < 2000; i++) nc.publish("t-slow", payload);
await nc.flush();
await nc.close();
`,
      );
      const flood = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-config", script],
        stdout: "null",
        stderr: "piped",
      }).outputSync();
      assert.equal(flood.success, true, new TextDecoder().decode(flood.stderr));
    } finally {
      await Deno.remove(script);
    }
    await until(() => b.stats().disconnects >= 1, 10_000, "b is cut");
    await until(() => b.state === "connected", 10_000, "b reconnects");
    got.length = 0;
    await settle(a, "t-slow", () => got.length);
  },
});

Deno.test("memory: outage drops publishes and a cut connection comes back", async () => {
  const hub = new MemoryBrokerHub();
  await using a = hub.connect();
  await using b = hub.connect();
  const got: number[] = [];
  b.subscribe("m", (bytes) => got.push(bytes[0]!));
  a.publish("m", new Uint8Array([1]));
  await until(() => got.length === 1);
  hub.stop();
  assert.equal(a.publish("m", new Uint8Array([2])), false);
  assert.equal(a.stats().dropped, 1);
  hub.start();
  await hub.cut(b, 10);
  a.publish("m", new Uint8Array([3]));
  await until(() => got.length === 2);
  assert.deepEqual(got, [1, 3]);
  // A handler that throws is reported, not thrown into the hub.
  const errors: unknown[] = [];
  await using c = hub.connect({ onError: (e) => errors.push(e) });
  c.subscribe("boom", () => {
    throw new Error("handler failed");
  });
  a.publish("boom", new Uint8Array([1]));
  await until(() => errors.length === 1);
  await b.close();
  assert.equal(a.publish("m", new Uint8Array([4])), true);
  await delay(10);
  assert.deepEqual(got, [1, 3]);
});
