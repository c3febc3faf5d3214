// ClusterNode over real brokers (nats-server and redis-server started here):
// three nodes in one process, each with its own broker connection. Checked:
// one publish per broadcast and zero deliveries to a node without members,
// send-by-id across nodes, cluster-unique ids, presence across nodes (a
// node that dies disappears within nodeTimeout; a late node gets the full
// state), and a broker restart in the middle of a conversation.
import assert from "node:assert/strict";
import { ClusterNode, connectBroker, MemoryBrokerHub } from "../../cluster.ts";
import { type BrokerKind, BrokerServer, skipMessage } from "../_brokers.ts";
import { delay, until } from "../_util.ts";

type Meta = { nick: string };
const HEARTBEAT = 100;
const TIMEOUT = 600;
const quiet = (): void => {};

interface TestNode {
  node: ClusterNode<Meta>;
  /**
   * What deliverToRoom received, a frame per entry (the tests' frames are
   * one byte each): room, frame byte, exceptId.
   */
  rooms: Array<[string, number, number | undefined]>;
  /** How many deliverToRoom calls were made. */
  roomCalls: number;
  /** What deliverToSession received: id, frame bytes, frame count. */
  direct: Array<[number, number[], number]>;
  /** The local sessions deliverToSession accepts. */
  sessions: Set<number>;
  events: string[];
  /** Frames and presence leaves, in arrival order. */
  log: string[];
}

async function makeNode(url: string, nodeId?: number): Promise<TestNode> {
  const broker = await connectBroker(url, {
    onError: quiet,
    reconnectWait: 100,
  });
  const t: TestNode = {
    rooms: [],
    roomCalls: 0,
    direct: [],
    sessions: new Set(),
    events: [],
    log: [],
  } as unknown as TestNode;
  t.node = new ClusterNode<Meta>({
    broker,
    ...(nodeId !== undefined && { nodeId }),
    deliverToRoom: (room, frames, exceptId, count) => {
      assert.equal(frames.length, count, "one-byte frames, counted");
      t.roomCalls++;
      for (const byte of frames) {
        t.rooms.push([room, byte, exceptId]);
        t.log.push(`${room} ${byte}`);
      }
    },
    deliverToSession: (id, frames, count) => {
      if (!t.sessions.has(id)) return false;
      t.direct.push([id, [...frames], count]);
      for (const byte of frames) t.log.push(`direct ${byte}`);
      return true;
    },
    presence: {
      heartbeatInterval: HEARTBEAT,
      nodeTimeout: TIMEOUT,
      onJoin: (e) => t.events.push(`join ${e.room} ${e.meta.nick}`),
      onLeave: (e) => {
        t.events.push(`leave ${e.room} ${e.meta.nick}`);
        t.log.push(`leave ${e.room} ${e.meta.nick}`);
      },
    },
    onError: (error) => t.events.push(`error ${error}`),
  });
  return t;
}

async function closeAll(nodes: Array<TestNode | undefined>): Promise<void> {
  for (const t of nodes) await t?.node.close();
}

/** Broadcasts from `from` until `to` has received one (subscriptions are asynchronous). */
async function warmUp(
  from: TestNode,
  room: string,
  to: TestNode[],
): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!to.every((t) => t.rooms.some(([r, b]) => r === room && b === 0xee))) {
    if (Date.now() > deadline) throw new Error(`Room ${room} never warmed up`);
    from.node.broadcast(room, new Uint8Array([0xee]));
    await delay(50);
  }
  for (const t of [from, ...to]) {
    t.rooms.length = 0;
    t.roomCalls = 0;
  }
}

for (const kind of ["nats", "redis"] as BrokerKind[]) {
  const ignore = skipMessage(kind);

  Deno.test({
    name:
      `${kind}: a broadcast is one publish, reaches nodes with members, and none without`,
    ignore,
    async fn() {
      await using server = await BrokerServer.start(kind);
      const nodes = [
        await makeNode(server.url),
        await makeNode(server.url),
        await makeNode(server.url),
      ];
      const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
      try {
        a.node.localJoin("lobby");
        a.node.localJoin("lobby"); // two local members: one subscription
        b.node.localJoin("lobby");
        c.node.localJoin("elsewhere");
        await warmUp(a, "lobby", [b]);
        const before = {
          a: a.node.stats(),
          b: b.node.stats(),
          c: c.node.stats(),
        };
        const sender = a.node.nextSessionId();
        for (let i = 0; i < 100; i++) {
          assert.equal(
            a.node.broadcast("lobby", new Uint8Array([i]), sender),
            true,
          );
        }
        await until(() => b.rooms.length === 100, 5000, "b gets 100");
        await delay(100);
        const after = {
          a: a.node.stats(),
          b: b.node.stats(),
          c: c.node.stats(),
        };
        assert.equal(after.a.published - before.a.published, 100);
        assert.equal(
          after.a.messages - before.a.messages,
          1,
          "one turn's broadcasts to a room share one broker message",
        );
        assert.equal(b.roomCalls, 1, "and reach b's members in one call");
        assert.equal(after.a.dropped, 0);
        assert.equal(
          a.rooms.length,
          100,
          "the sender's node delivered locally",
        );
        assert.deepEqual(a.rooms[5], ["lobby", 5, sender]);
        assert.deepEqual(b.rooms.map(([, byte]) => byte), [
          ...Array(100).keys(),
        ]);
        assert.deepEqual(b.rooms[0], ["lobby", 0, sender]);
        assert.equal(after.b.received - before.b.received, 100);
        // The node without members of the lobby received nothing at all.
        assert.equal(c.rooms.length, 0);
        assert.equal(after.c.received, 0);
        assert.equal(after.c.unwanted, 0);
        assert.equal(
          after.a.delivered - before.a.delivered,
          0,
          "echo not delivered",
        );

        // The last local member leaves: no more traffic for b.
        b.node.localLeave("lobby");
        assert.equal(b.node.localCount("lobby"), 0);
        await delay(100);
        const bReceived = b.node.stats().received;
        for (let i = 0; i < 20; i++) {
          a.node.broadcast("lobby", new Uint8Array([i]));
        }
        await delay(200);
        assert.equal(b.node.stats().received, bReceived);
        assert.equal(b.node.stats().unwanted, 0);
      } finally {
        await closeAll(nodes);
      }
    },
  });

  Deno.test({
    name:
      `${kind}: send-by-id reaches a session on another node; ids are unique across nodes`,
    ignore,
    async fn() {
      await using server = await BrokerServer.start(kind);
      const nodes = [
        await makeNode(server.url, 1),
        await makeNode(server.url, 2),
      ];
      const [a, b] = nodes as [TestNode, TestNode];
      try {
        const ids = new Set<number>();
        for (let i = 0; i < 1000; i++) {
          ids.add(a.node.nextSessionId());
          ids.add(b.node.nextSessionId());
        }
        assert.equal(ids.size, 2000);
        const bob = b.node.nextSessionId();
        assert.ok(Number.isSafeInteger(bob));
        assert.equal(ClusterNode.nodeOf(bob), 2);
        b.sessions.add(bob);
        const ann = a.node.nextSessionId();
        a.sessions.add(ann);
        assert.equal(a.node.sendTo(ann, new Uint8Array([1])), true, "local");
        assert.deepEqual(a.direct, [[ann, [1], 1]]);
        const deadline = Date.now() + 5000;
        while (b.direct.length === 0) {
          assert.ok(Date.now() < deadline, "direct message never arrived");
          assert.equal(a.node.sendTo(bob, new Uint8Array([0, 255, 7])), true);
          await delay(50);
        }
        assert.deepEqual(b.direct[0], [bob, [0, 255, 7], 1]);
        // A session that is gone: the owner node counts it.
        const undeliverable = b.node.stats().undeliverable;
        a.node.sendTo(bob + 1, new Uint8Array([1]));
        await until(() => b.node.stats().undeliverable === undeliverable + 1);
      } finally {
        await closeAll(nodes);
      }
    },
  });

  Deno.test({
    name:
      `${kind}: a node's frames to several subjects and its presence changes arrive in the order it made them`,
    ignore,
    async fn() {
      await using server = await BrokerServer.start(kind);
      const nodes = [
        await makeNode(server.url, 1),
        await makeNode(server.url, 2),
      ];
      const [a, b] = nodes as [TestNode, TestNode];
      try {
        b.node.localJoin("x");
        b.node.localJoin("y");
        const bob = b.node.nextSessionId();
        b.sessions.add(bob);
        await warmUp(a, "x", [b]);
        await warmUp(a, "y", [b]);
        const ann = a.node.nextSessionId();
        a.node.presence.track("x", ann, { nick: "ann" });
        await until(() => b.node.presence.count("x") === 1, 5000, "ann seen");
        b.log.length = 0;
        const before = a.node.stats().messages;
        // One turn: a run for x, a direct frame, y, x again, then ann
        // leaves (presence sends its change in a microtask).
        a.node.broadcast("x", new Uint8Array([1]));
        a.node.broadcast("x", new Uint8Array([2]));
        a.node.sendTo(bob, new Uint8Array([3]));
        a.node.broadcast("y", new Uint8Array([4]));
        a.node.broadcast("x", new Uint8Array([5]));
        a.node.broadcast("x", new Uint8Array([6]));
        a.node.presence.untrack("x", ann);
        await until(() => b.log.length === 7, 5000, "all of it");
        assert.deepEqual(b.log, [
          "x 1",
          "x 2",
          "direct 3",
          "y 4",
          "x 5",
          "x 6",
          "leave x ann",
        ]);
        // x, direct, y, x: four frame messages (plus presence's own).
        const frameMessages = a.node.stats().messages - before;
        assert.equal(frameMessages, 4);
      } finally {
        await closeAll(nodes);
      }
    },
  });

  Deno.test({
    name:
      `${kind}: presence across 3 nodes; a dead node disappears within nodeTimeout; a late node gets the full state`,
    ignore,
    async fn() {
      await using server = await BrokerServer.start(kind);
      const nodes: Array<TestNode | undefined> = [
        await makeNode(server.url),
        await makeNode(server.url),
        await makeNode(server.url),
      ];
      const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
      try {
        a.node.presence.track("lobby", a.node.nextSessionId(), { nick: "ann" });
        b.node.presence.track("lobby", b.node.nextSessionId(), { nick: "bob" });
        c.node.presence.track("lobby", c.node.nextSessionId(), { nick: "cy" });
        c.node.presence.track("side", c.node.nextSessionId(), { nick: "cy" });
        const who = (t: TestNode, room = "lobby") =>
          t.node.presence.list(room).map((e) => e.meta.nick).sort().join();
        for (const t of [a, b, c]) {
          await until(() => who(t) === "ann,bob,cy", 5000, "3 nodes agree");
        }
        // c dies: no goodbye; its broker connection just ends.
        await c.node.broker.close();
        const start = performance.now();
        await until(() => who(a) === "ann,bob" && who(b) === "ann,bob", 5000);
        const elapsed = performance.now() - start;
        assert.ok(elapsed < TIMEOUT + 3 * HEARTBEAT + 1500, `${elapsed} ms`);
        assert.ok(a.events.includes("leave lobby cy"));
        assert.ok(a.events.includes("leave side cy"));
        await c.node.close();
        nodes[2] = undefined;

        // A node started after the others already hold a room.
        const late = await makeNode(server.url);
        nodes.push(late);
        await until(() => who(late) === "ann,bob", 5000, "late node's view");
        assert.ok(late.events.includes("join lobby ann"));
        assert.deepEqual(
          a.events.filter((e) => e.startsWith("error")),
          [],
        );
      } finally {
        await closeAll(nodes);
      }
    },
  });

  Deno.test({
    name:
      `${kind}: broker restart mid-conversation: drops are counted, rooms and presence come back`,
    ignore,
    async fn() {
      await using server = await BrokerServer.start(kind);
      const nodes = [await makeNode(server.url), await makeNode(server.url)];
      const [a, b] = nodes as [TestNode, TestNode];
      try {
        a.node.localJoin("#general");
        b.node.localJoin("#general");
        b.node.presence.track("#general", b.node.nextSessionId(), {
          nick: "bob",
        });
        await warmUp(a, "#general", [b]);
        await until(() => a.node.presence.count("#general") === 1);

        await server.stop();
        await until(() => a.node.broker.state !== "connected", 5000);
        const dropped = a.node.stats().dropped;
        for (let i = 0; i < 10; i++) {
          assert.equal(
            a.node.broadcast("#general", new Uint8Array([i])),
            false,
          );
        }
        assert.equal(a.node.stats().dropped, dropped + 10);
        assert.equal(a.rooms.length, 10, "local delivery goes on");
        // The outage outlasts nodeTimeout: each side drops the other.
        await delay(TIMEOUT + 3 * HEARTBEAT);
        assert.equal(a.node.presence.count("#general"), 0);

        await server.restart();
        await until(
          () =>
            a.node.broker.state === "connected" &&
            b.node.broker.state === "connected",
          10_000,
          "reconnect",
        );
        b.rooms.length = 0;
        await warmUp(a, "#general", [b]);
        await until(
          () => a.node.presence.count("#general") === 1,
          5000,
          "resync",
        );
      } finally {
        await closeAll(nodes);
      }
    },
  });
}

Deno.test("room names of any shape map to distinct subjects", async () => {
  const hub = new MemoryBrokerHub();
  const got: string[] = [];
  await using a = new ClusterNode({
    broker: hub.connect(),
    deliverToRoom: () => {},
    deliverToSession: () => false,
  });
  await using b = new ClusterNode({
    broker: hub.connect(),
    deliverToRoom: (room) => got.push(room),
    deliverToSession: () => false,
  });
  const names = ["#general", "a.b", "a b", "ünï", "_61", "a", "A", "x-y_z"];
  for (const name of names) b.localJoin(name);
  for (const name of names) a.broadcast(name, new Uint8Array([1]));
  await until(() => got.length === names.length);
  assert.deepEqual(got, names);
  assert.throws(
    () => a.broadcast("é".repeat(60), new Uint8Array()),
    RangeError,
  );
  const options = {
    broker: hub.connect(),
    deliverToRoom: () => {},
    deliverToSession: () => false,
  };
  assert.throws(
    () => new ClusterNode({ ...options, nodeId: 2 ** 20 }),
    RangeError,
  );
  assert.throws(() => new ClusterNode({ ...options, nodeId: 0 }), RangeError);
  await options.broker.close();
});

Deno.test("malformed envelopes are counted and dropped; well-formed ones still arrive", async () => {
  const hub = new MemoryBrokerHub();
  const got: Array<[number[], number | undefined, number]> = [];
  await using a = new ClusterNode({
    broker: hub.connect(),
    nodeId: 1,
    deliverToRoom: () => {},
    deliverToSession: () => false,
  });
  await using b = new ClusterNode({
    broker: hub.connect(),
    nodeId: 2,
    deliverToRoom: (_room, frames, exceptId, count) =>
      got.push([[...frames], exceptId, count]),
    deliverToSession: () => false,
    onError: () => {},
  });
  b.localJoin("lobby");
  await using raw = hub.connect();
  const envelope = (...bytes: number[]) => new Uint8Array(bytes);
  const record = (count: number, length: number) => {
    const out = new Uint8Array(16);
    const view = new DataView(out.buffer);
    view.setFloat64(0, -1);
    view.setUint32(8, count);
    view.setUint32(12, length);
    return [...out];
  };
  const hostile = [
    envelope(),
    envelope(1),
    envelope(1, 0, 0, 0, 9), // a header and no record
    envelope(2, 0, 0, 0, 9, ...record(1, 1), 7), // direct kind on a room
    envelope(9, 0, 0, 0, 9, ...record(1, 1), 7), // unknown kind
    envelope(1, 0, 0, 0, 9, ...record(0, 1), 7), // no frame
    envelope(1, 0, 0, 0, 9, ...record(5, 2), 7, 7), // more frames than bytes
    envelope(1, 0, 0, 0, 9, ...record(1, 4), 7), // overruns the envelope
    envelope(1, 0, 0, 0, 9, ...record(1, 1), 7, 1, 2), // a cut second record
  ];
  for (const bytes of hostile) raw.publish("microsocket.room.lobby", bytes);
  a.broadcast("lobby", new Uint8Array([42]), 77);
  a.broadcast("lobby", new Uint8Array([43]), 77);
  a.broadcast("lobby", new Uint8Array([44]));
  await until(() => got.length === 2, 5000, "the good ones");
  assert.deepEqual(got, [[[42, 43], 77, 2], [[44], undefined, 1]]);
  const stats = b.stats();
  assert.equal(stats.malformed, hostile.length);
  assert.equal(stats.received, 3);
  assert.equal(stats.delivered, 3);
});
