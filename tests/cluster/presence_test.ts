// Presence without a broker server: nodes in one process over the
// in-memory broker, with short heartbeats so timeouts show in well under a
// second. What is checked: replication both ways, events, a silent node
// dropped within nodeTimeout, a late node's full state (several parts), a
// restarted node told apart by its incarnation, a lost delta repaired.
import assert from "node:assert/strict";
import {
  type MemoryBroker,
  MemoryBrokerHub,
  Presence,
  type PresenceEntry,
} from "../../cluster.ts";
import { delay, until } from "../_util.ts";

type Meta = { nick: string };
const HEARTBEAT = 50;
const TIMEOUT = 400;

interface Node {
  presence: Presence<Meta>;
  broker: MemoryBroker;
  events: string[];
}

function node(hub: MemoryBrokerHub, name: string): Node {
  const events: string[] = [];
  const broker = hub.connect();
  const record = (kind: string) => (entry: PresenceEntry<Meta>) =>
    events.push(`${kind} ${entry.room} ${entry.meta.nick}@${entry.node}`);
  const presence = new Presence<Meta>({
    broker,
    node: name,
    heartbeatInterval: HEARTBEAT,
    nodeTimeout: TIMEOUT,
    onJoin: record("join"),
    onLeave: record("leave"),
    onUpdate: record("update"),
    onError: (error) => events.push(`error ${error}`),
  });
  return { presence, broker, events };
}

async function closeAll(...nodes: Node[]): Promise<void> {
  for (const n of nodes) {
    await n.presence.close();
    await n.broker.close();
  }
}

const nicks = (p: Presence<Meta>, room: string): string[] =>
  p.list(room).map((e) => e.meta.nick).sort();

Deno.test("presence: joins, updates and leaves reach every node, with events", async () => {
  const hub = new MemoryBrokerHub();
  const [a, b, c] = [node(hub, "a"), node(hub, "b"), node(hub, "c")];
  try {
    assert.equal(a.presence.track("lobby", 1, { nick: "ann" }), true);
    assert.equal(a.presence.track("lobby", 1, { nick: "ann" }), false);
    b.presence.track("lobby", 2, { nick: "bob" });
    c.presence.track("other", 3, { nick: "cy" });
    for (const n of [a, b, c]) {
      await until(
        () =>
          n.presence.count("lobby") === 2 && n.presence.count("other") === 1,
        3000,
        "replication",
      );
      assert.deepEqual(nicks(n.presence, "lobby"), ["ann", "bob"]);
      assert.deepEqual(n.presence.rooms().sort(), ["lobby", "other"]);
    }
    assert.ok(c.events.includes("join lobby ann@a"));
    assert.ok(a.events.includes("join lobby ann@a"), "local joins emit too");
    assert.equal(c.presence.get("lobby", 1)?.node, "a");
    assert.ok(c.presence.get("lobby", 1)!.since <= Date.now());

    a.presence.update("lobby", 1, { nick: "anna" });
    await until(() => c.presence.get("lobby", 1)?.meta.nick === "anna");
    assert.ok(c.events.includes("update lobby anna@a"));

    assert.equal(b.presence.untrackAll(2), 1);
    await until(() =>
      a.presence.count("lobby") === 1 && c.presence.count("lobby") === 1
    );
    assert.ok(a.events.includes("leave lobby bob@b"));
    assert.deepEqual(a.events.filter((e) => e.startsWith("error")), []);
  } finally {
    await closeAll(a, b, c);
  }
});

Deno.test("presence: a node that stops heartbeating disappears within nodeTimeout, its members leave", async () => {
  const hub = new MemoryBrokerHub();
  const [a, b, c] = [node(hub, "a"), node(hub, "b"), node(hub, "c")];
  try {
    c.presence.track("lobby", 30, { nick: "cy" });
    c.presence.track("lobby", 31, { nick: "cyd" });
    await until(() =>
      a.presence.count("lobby") === 2 && b.presence.count("lobby") === 2
    );
    // The node dies without a goodbye: its broker connection just ends.
    await c.broker.close();
    const start = performance.now();
    await until(() => a.presence.count("lobby") === 0, 5000, "a drops c");
    const elapsed = performance.now() - start;
    await until(() => b.presence.count("lobby") === 0, 5000, "b drops c");
    assert.ok(elapsed < TIMEOUT + 3 * HEARTBEAT + 1000, `took ${elapsed} ms`);
    assert.ok(elapsed >= TIMEOUT - HEARTBEAT, `too early: ${elapsed} ms`);
    assert.ok(a.events.includes("leave lobby cy@c"));
    assert.ok(a.events.includes("leave lobby cyd@c"));
    assert.deepEqual(a.presence.nodes().map((n) => n.name), ["b"]);
    assert.equal(a.presence.stats().nodesTimedOut, 1);
  } finally {
    await closeAll(a, b, c);
  }
});

Deno.test("presence: a graceful close removes the node at once", async () => {
  const hub = new MemoryBrokerHub();
  const [a, b] = [node(hub, "a"), node(hub, "b")];
  try {
    b.presence.track("lobby", 2, { nick: "bob" });
    await until(() => a.presence.count("lobby") === 1);
    await b.presence.close();
    await until(() => a.presence.count("lobby") === 0, HEARTBEAT * 3, "bye");
    assert.equal(a.presence.stats().nodesTimedOut, 0);
  } finally {
    await closeAll(a, b);
  }
});

Deno.test("presence: a late node receives the full state, in several parts", async () => {
  const hub = new MemoryBrokerHub();
  const [a, b] = [node(hub, "a"), node(hub, "b")];
  let late: Node | undefined;
  try {
    for (let i = 0; i < 700; i++) {
      a.presence.track(`r${i % 3}`, i, { nick: `a${i}` });
    }
    b.presence.track("r0", 10_000, { nick: "bob" });
    await until(() => b.presence.count("r0") === 235);
    late = node(hub, "late");
    // Its hello is answered at once, well before the next heartbeat.
    await until(
      () =>
        late!.presence.count("r0") === 235 &&
        late!.presence.count("r1") === 233 &&
        late!.presence.count("r2") === 233,
      HEARTBEAT * 10,
      "late node's full state",
    );
    assert.equal(late.events.filter((e) => e.startsWith("join")).length, 701);
    assert.ok(late.presence.stats().snapshotsApplied >= 2);
    // And the others learn about it.
    late.presence.track("r1", 20_000, { nick: "lou" });
    await until(() => a.presence.get("r1", 20_000)?.meta.nick === "lou");
  } finally {
    await closeAll(a, b, ...(late ? [late] : []));
  }
});

Deno.test("presence: a restarted node (same name, new incarnation) replaces its old state", async () => {
  const hub = new MemoryBrokerHub();
  const a = node(hub, "a");
  let b = node(hub, "b");
  try {
    b.presence.track("lobby", 1, { nick: "old" });
    await until(() => a.presence.count("lobby") === 1);
    const first = b.presence.incarnation;
    // Crash (no goodbye), then a new process with the same name.
    await b.broker.close();
    await b.presence.close();
    b = node(hub, "b");
    assert.notEqual(b.presence.incarnation, first);
    b.presence.track("lobby", 2, { nick: "new" });
    await until(() => nicks(a.presence, "lobby").join() === "new", 2000);
    assert.ok(a.events.includes("leave lobby old@b"));
    assert.equal(a.presence.nodes()[0]?.incarnation, b.presence.incarnation);
  } finally {
    await closeAll(a, b);
  }
});

Deno.test("presence: a lost delta is repaired at the next heartbeat", async () => {
  const hub = new MemoryBrokerHub();
  const [a, b] = [node(hub, "a"), node(hub, "b")];
  try {
    a.presence.track("lobby", 1, { nick: "ann" });
    await until(() => b.presence.count("lobby") === 1);
    // b misses a's next delta (its connection is down for a moment).
    const cut = hub.cut(b.broker, HEARTBEAT / 2);
    a.presence.track("lobby", 2, { nick: "al" });
    await cut;
    await until(
      () => b.presence.count("lobby") === 2,
      HEARTBEAT * 10,
      "repair",
    );
    assert.ok(b.presence.stats().resyncRequests >= 1);
  } finally {
    await closeAll(a, b);
  }
});

Deno.test("presence: after a whole-broker outage every node converges again", async () => {
  const hub = new MemoryBrokerHub();
  const [a, b, c] = [node(hub, "a"), node(hub, "b"), node(hub, "c")];
  try {
    a.presence.track("lobby", 1, { nick: "ann" });
    b.presence.track("lobby", 2, { nick: "bob" });
    await until(() => c.presence.count("lobby") === 2);
    hub.stop();
    // Changes during the outage can't leave; the outage outlasts nodeTimeout.
    a.presence.untrack("lobby", 1);
    c.presence.track("lobby", 3, { nick: "cy" });
    await delay(TIMEOUT + 3 * HEARTBEAT);
    assert.deepEqual(nicks(b.presence, "lobby"), ["bob"], "others timed out");
    hub.start();
    for (const n of [a, b, c]) {
      await until(
        () => nicks(n.presence, "lobby").join() === "bob,cy",
        3000,
        `node ${n.presence.node} converges`,
      );
    }
  } finally {
    await closeAll(a, b, c);
  }
});

Deno.test("presence: misuse is refused", async () => {
  const hub = new MemoryBrokerHub();
  await using broker = hub.connect();
  assert.throws(() => new Presence({ broker, node: "a.b" }), TypeError);
  assert.throws(
    () =>
      new Presence({
        broker,
        node: "a",
        heartbeatInterval: 100,
        nodeTimeout: 150,
      }),
    RangeError,
  );
  await using p = new Presence<{ bio: string }>({
    broker,
    node: "a",
    maxMetaBytes: 64,
  });
  assert.throws(() => p.track("r", 1, { bio: "x".repeat(100) }), RangeError);
  assert.equal(p.count("r"), 0);
  await p.close();
  assert.throws(() => p.track("r", 1, { bio: "" }), TypeError);
  assert.equal(p.untrack("r", 1), false);
});
