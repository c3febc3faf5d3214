// ClusterRecovery (src/cluster/cluster_recovery.ts) on every history engine:
// in memory, Redis Streams (redis-server started here) and NATS JetStream
// (nats-server -js started here). Three in-process nodes, each with its own
// engine connection; sessions on each, in rooms, with direct messages; one
// node dies mid-conversation (its engine connection closed, its
// subscriptions gone) and its sessions resume on the others: a per-session
// sequence checker finds 0 gaps, 0 duplicates, order kept. A gap (history
// trimmed, stream lost) gives recovered: false and nothing of it; tokens
// resume once, forged ones and positions from the future never.
import assert from "node:assert/strict";
import type {
  HistoryEntry,
  LiveEntry,
  LiveHandler,
  RoomHistory,
} from "../../src/cluster/history/history.ts";
import {
  checkHistoryOptions,
  ClusterRecovery,
  type EntrySink,
} from "../../src/cluster/cluster_recovery.ts";
import { delay, until } from "../_util.ts";
import { ENGINES, quiet, type TestLimits } from "./_history_servers.ts";

const LIMITS: TestLimits = {
  maxMessages: 1000,
  maxBytes: 10_000_000,
  maxAge: 60_000,
  window: 60_000,
};
const utf8 = new TextEncoder();
const text = new TextDecoder();

/** One client's view: the next sequence number it expects per channel. */
class Checker {
  readonly next = new Map<string, number>();
  readonly errors: string[] = [];
  position = 0;
  received = 0;
  readonly trace: string[] = [];
  readonly sink: EntrySink = (entry: HistoryEntry) => {
    const [channel, seq] = text.decode(entry.bytes).split("|");
    if (Deno.env.get("DEBUG_CR")) {
      this.trace.push(`${entry.position}:${channel}|${seq}`);
    }
    const expected = this.next.get(channel!) ?? 1;
    if (Number(seq) !== expected) {
      this.errors.push(
        `${channel}: got ${seq}, expected ${expected} (${
          Number(seq) < expected ? "duplicate" : "gap"
        })${
          Deno.env.get("DEBUG_CR")
            ? ` at position ${entry.position} after ${this.position}, message ${this.received}`
            : ""
        }`,
      );
    }
    if (entry.position <= this.position) {
      this.errors.push(`position ${entry.position} after ${this.position}`);
    }
    this.next.set(channel!, Math.max(expected, Number(seq) + 1));
    this.position = entry.position;
    this.received++;
  };
  has(channel: string, count: number): boolean {
    return (this.next.get(channel) ?? 1) > count;
  }
}

interface Client {
  id: number;
  rooms: string[];
  token: string;
  epoch: string;
  checker: Checker;
}

const ROOMS = ["r0", "r1", "r2"];

for (const engine of ENGINES) {
  const name = (what: string) => `cluster recovery ${engine.name}: ${what}`;
  const { ignore } = engine;

  Deno.test({
    name: name(
      "a node dies: its sessions resume on the others with every message, once, in order",
    ),
    ignore,
    async fn() {
      await using fixture = await engine.start(LIMITS);
      const nodes: ClusterRecovery[] = [];
      for (let n = 0; n < 3; n++) {
        nodes.push(
          new ClusterRecovery({ engine: await fixture.connect() }, (e) => {
            throw e;
          }),
        );
      }
      try {
        await warm(nodes[1]!);
        const clients: Client[][] = [[], [], []];
        for (let n = 0; n < 3; n++) {
          for (let i = 0; i < 6; i++) {
            const id = (n + 1) * 100 + i;
            const checker = new Checker();
            const opened = await nodes[n]!.open(
              id,
              { nick: `c${id}` },
              checker.sink,
            );
            checker.position = opened.position;
            const rooms = [ROOMS[i % 3]!, ROOMS[(i + 1) % 3]!];
            for (const room of rooms) await nodes[n]!.join(id, room);
            clients[n]!.push({
              id,
              rooms,
              token: opened.token,
              epoch: opened.epoch,
              checker,
            });
          }
        }
        const all = clients.flat();
        const PER_ROOM = 60;
        const DIRECT = 10;
        let published = 0;
        let firstRoom = 0;
        // One sequential publisher per room (on the live nodes 2 and 3, and
        // node 1 until it dies) and one for the direct messages.
        const publishers = ROOMS.map(async (room, r) => {
          for (let seq = 1; seq <= PER_ROOM; seq++) {
            const node = seq <= 10 && r === 0 ? nodes[0]! : nodes[1 + (r % 2)]!;
            await node.broadcast(room, utf8.encode(`${room}|${seq}`));
            published++;
            if (r === 0) firstRoom = seq;
            if (seq % 10 === 0) await delay(5);
          }
        });
        publishers.push((async () => {
          for (let seq = 1; seq <= DIRECT; seq++) {
            for (const client of all) {
              await nodes[2]!.send(client.id, utf8.encode(`direct|${seq}`));
            }
            await delay(3);
          }
        })());
        // Node 1 dies mid-conversation.
        await until(
          () => published >= 60 && firstRoom > 10,
          10_000,
          "the conversation",
        );
        nodes[0]!.close();
        await nodes[0]!.engine.close();
        const dead = clients[0]!;
        const before = dead.map((c) => c.checker.received);
        if (Deno.env.get("DEBUG_CR")) {
          console.log(
            dead.map((c) =>
              `${c.id}: ${c.checker.received} @${c.checker.position}`
            ).join(", "),
          );
        }
        // Its sessions come back on nodes 2 and 3 while the others talk.
        await delay(20);
        const results = await Promise.all(
          dead.map((client, i) =>
            nodes[1 + (i % 2)]!.resume({
              id: client.id,
              token: client.token,
              epoch: client.epoch,
              position: client.checker.position,
            }, client.checker.sink)
          ),
        );
        for (const [i, result] of results.entries()) {
          assert.equal(result.recovered, true, JSON.stringify(result));
          if (result.recovered) {
            assert.deepEqual(result.data, { nick: `c${dead[i]!.id}` });
            assert.deepEqual(
              [...result.rooms].sort(),
              [...dead[i]!.rooms].sort(),
            );
          }
        }
        await Promise.all(publishers);
        await until(
          () =>
            all.every((c) =>
              c.rooms.every((room) => c.checker.has(room, PER_ROOM)) &&
              c.checker.has("direct", DIRECT)
            ),
          15_000,
          "every message at every client",
        );
        await delay(50);
        for (const client of all) {
          if (Deno.env.get("DEBUG_CR") && client.checker.errors.length > 0) {
            console.log(
              client.id,
              client.rooms,
              client.checker.trace.join(" "),
            );
          }
          assert.deepEqual(client.checker.errors, [], `client ${client.id}`);
          assert.equal(
            client.checker.received,
            client.rooms.length * PER_ROOM + DIRECT,
            `client ${client.id}: exactly once`,
          );
          for (const room of ROOMS) {
            if (!client.rooms.includes(room)) {
              assert.equal(client.checker.next.get(room), undefined);
            }
          }
        }
        // The dead node's clients did miss something, and got it back.
        assert.ok(
          dead.some((c, i) => c.checker.received > before[i]!),
          "replayed or live after the resume",
        );
      } finally {
        for (const node of nodes) node.close();
      }
    },
  });

  Deno.test({
    name: name("history trimmed or lost: recovered false, nothing of the gap"),
    ignore,
    async fn() {
      await using fixture = await engine.start({ ...LIMITS, maxMessages: 5 });
      const a = new ClusterRecovery({ engine: await fixture.connect() }, quiet);
      const b = new ClusterRecovery({ engine: await fixture.connect() }, quiet);
      try {
        await warm(b);
        const checker = new Checker();
        const opened = await a.open(7, null, checker.sink);
        checker.position = opened.position;
        await a.join(7, "room");
        await b.broadcast("room", utf8.encode("room|1"));
        await until(() => checker.received === 1, 5000, "the first message");
        a.close(); // the node dies
        for (let seq = 2; seq <= 20; seq++) {
          await b.broadcast("room", utf8.encode(`room|${seq}`));
        }
        const late = new Checker();
        const result = await b.resume({
          id: 7,
          token: opened.token,
          epoch: opened.epoch,
          position: checker.position,
        }, late.sink);
        assert.deepEqual(result, { recovered: false, reason: "trimmed" });
        await delay(50);
        assert.equal(late.received, 0, "nothing of the gap");
        // The record is gone: the token is dead too.
        assert.equal(
          (await b.resume({
            id: 7,
            token: opened.token,
            epoch: opened.epoch,
            position: 1,
          }, late.sink)).recovered,
          false,
        );

        // The stream is lost (restart without data): never a replay.
        const c = new Checker();
        const second = await b.open(8, null, c.sink);
        c.position = second.position;
        await b.join(8, "room");
        b.detach(8);
        b.close();
        await fixture.lose();
        // The old connections come back (their reconnect timers end).
        await eventually(() => a.engine.head());
        await eventually(() => b.engine.head());
        const d = new ClusterRecovery(
          { engine: await fixture.connect() },
          quiet,
        );
        try {
          const after = new Checker();
          const lost = await eventually(() =>
            d.resume({
              id: 8,
              token: second.token,
              epoch: second.epoch,
              position: c.position,
            }, after.sink)
          );
          assert.equal(lost.recovered, false);
          await d.broadcast("room", utf8.encode("room|1"));
          await delay(50);
          assert.equal(after.received, 0);
        } finally {
          d.close();
        }
      } finally {
        a.close();
        b.close();
      }
    },
  });

  Deno.test({
    name: name(
      "a token resumes once; forged tokens and future positions never",
    ),
    ignore,
    async fn() {
      await using fixture = await engine.start(LIMITS);
      const a = new ClusterRecovery({ engine: await fixture.connect() }, quiet);
      const b = new ClusterRecovery({ engine: await fixture.connect() }, quiet);
      const c = new ClusterRecovery({ engine: await fixture.connect() }, quiet);
      try {
        await warm(b);
        const checker = new Checker();
        const opened = await a.open(9, "secret", checker.sink);
        checker.position = opened.position;
        await a.join(9, "room");
        a.detach(9);
        const request = {
          id: 9,
          token: opened.token,
          epoch: opened.epoch,
          position: opened.position,
        };
        // Forged token, and an id that never was.
        const forged = { ...request, token: "A".repeat(24) };
        assert.deepEqual(await b.resume(forged, checker.sink), {
          recovered: false,
          reason: "bad_token",
        });
        assert.deepEqual(await b.resume({ ...request, id: 99 }, checker.sink), {
          recovered: false,
          reason: "unknown_session",
        });
        // Two nodes race with one token: one wins.
        const race = await Promise.all([
          b.resume(request, new Checker().sink),
          c.resume(request, new Checker().sink),
        ]);
        assert.equal(
          race.filter((r) => r.recovered).length,
          1,
          JSON.stringify(race),
        );
        const winner = race[0]!.recovered ? b : c;
        const next = race.find((r) => r.recovered)!;
        assert.ok(next.recovered);
        // The spent token again: refused.
        assert.equal((await a.resume(request, checker.sink)).recovered, false);
        // The new token with a position from the future: never entries.
        winner.detach(9);
        const future = new Checker();
        const result = await a.resume({
          ...request,
          token: next.token,
          position: opened.position + 1_000_000_000_000,
        }, future.sink);
        assert.deepEqual(result, { recovered: false, reason: "future" });
        assert.equal(future.received, 0);
      } finally {
        a.close();
        b.close();
        c.close();
      }
    },
  });

  Deno.test({
    name: name(
      "a node that missed its client resuming elsewhere learns it, never restores the old token",
    ),
    ignore,
    async fn() {
      await using fixture = await engine.start(LIMITS);
      const lost: number[] = [];
      const a = new ClusterRecovery(
        { engine: await fixture.connect() },
        quiet,
        (id) => lost.push(id),
      );
      const b = new ClusterRecovery({ engine: await fixture.connect() }, quiet);
      try {
        await warm(b);
        const old = new Checker();
        const opened = await a.open(5, { n: 1 }, old.sink);
        await a.join(5, "room");
        // The client resumes on B while A still takes it for attached.
        const moved = new Checker();
        const result = await b.resume({
          id: 5,
          token: opened.token,
          epoch: opened.epoch,
          position: opened.position,
        }, moved.sink);
        assert.equal(result.recovered, true);
        await a.update(5, { n: 2 });
        assert.deepEqual(lost, [5]);
        assert.equal(a.position(5), undefined, "forgotten on A");
        // The record is still B's: its data, and the old token is dead.
        assert.deepEqual((await b.engine.sessions.get(5))?.data, { n: 1 });
        await b.broadcast("room", utf8.encode("room|1"));
        await until(() => moved.received === 1, 5000, "live on B");
        await delay(30);
        assert.equal(old.received, 0, "nothing on A");
        // The session ends for good: its record goes.
        await b.end(5);
        assert.equal(await b.engine.sessions.get(5), undefined);
        assert.equal(b.rooms, 0, "unsubscribed");
      } finally {
        a.close();
        b.close();
      }
    },
  });

  Deno.test({
    name: name("a live entry lost on the way is replayed, in order, once"),
    ignore,
    async fn() {
      await using fixture = await engine.start(LIMITS);
      let seen = 0;
      // Node A's broker connection loses every 3rd live entry.
      const a = new ClusterRecovery(
        { engine: lossy(await fixture.connect(), () => ++seen % 3 === 0) },
        quiet,
      );
      const b = new ClusterRecovery({ engine: await fixture.connect() }, quiet);
      try {
        await warm(b);
        const checker = new Checker();
        const opened = await a.open(3, null, checker.sink);
        checker.position = opened.position;
        await a.join(3, "room");
        for (let seq = 1; seq <= 10; seq++) {
          await b.broadcast("room", utf8.encode(`room|${seq}`));
        }
        await until(() => checker.has("room", 10), 5000, "the messages");
        await delay(50);
        assert.deepEqual(checker.errors, []);
        assert.equal(checker.received, 10);
        // One per loss, fewer when a loss came during a replay.
        assert.ok(a.repairs >= 1 && a.repairs <= 3, `${a.repairs} repairs`);
      } finally {
        a.close();
        b.close();
      }
    },
  });

  Deno.test({
    name: name(
      "a live entry lost behind another channel's: the session is lost, never resumed past it",
    ),
    ignore,
    async fn() {
      await using fixture = await engine.start(LIMITS);
      let seen = 0;
      const lost: number[] = [];
      // Loses the room's 2nd entry; the inbox's next one arrives first.
      const a = new ClusterRecovery(
        { engine: lossy(await fixture.connect(), () => ++seen === 3) },
        quiet,
        (id) => lost.push(id),
      );
      const b = new ClusterRecovery({ engine: await fixture.connect() }, quiet);
      try {
        await warm(b);
        const checker = new Checker();
        const opened = await a.open(4, null, checker.sink);
        checker.position = opened.position;
        await a.join(4, "room");
        for (let seq = 1; seq <= 3; seq++) {
          await b.broadcast("room", utf8.encode(`room|${seq}`));
          await b.send(4, utf8.encode(`direct|${seq}`));
        }
        await until(() => lost.length === 1, 5000, "the loss");
        assert.deepEqual(lost, [4]);
        assert.deepEqual(checker.errors, [], "nothing out of order");
        // Its client can't resume past the lost entry anywhere.
        await delay(50);
        const result = await b.resume({
          id: 4,
          token: opened.token,
          epoch: opened.epoch,
          position: checker.position,
        }, new Checker().sink);
        assert.equal(result.recovered, false);
      } finally {
        a.close();
        b.close();
      }
    },
  });
}

/** A first append: a Redis history that never had one has head 0, and a
 * position that old is a gap for a room whose stream never existed. */
async function warm(node: ClusterRecovery): Promise<void> {
  await node.broadcast("warm-up", utf8.encode("x"));
}

/** An engine whose live entries are dropped where `drop` says. */
function lossy(
  engine: RoomHistory,
  drop: (entry: LiveEntry) => boolean,
): RoomHistory {
  const filter = (handler: LiveHandler): LiveHandler => (entry) => {
    if (!drop(entry)) handler(entry);
  };
  return new Proxy(engine, {
    get(target, key) {
      if (key === "subscribeRoom") {
        return (room: string, handler: LiveHandler) =>
          target.subscribeRoom(room, filter(handler));
      }
      if (key === "subscribeDirect") {
        return (id: number, handler: LiveHandler) =>
          target.subscribeDirect(id, filter(handler));
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("cluster recovery: the history option is checked, naming the key", () => {
  const engine = { appendRoom() {}, replay() {}, sessions: {} };
  assert.throws(
    () => checkHistoryOptions({ engine, windw: 5 }),
    { name: "TypeError", message: "Unknown option history.windw" },
  );
  assert.throws(
    () => checkHistoryOptions({ engine, maxMessages: 5 }),
    (e) => e instanceof TypeError && /history\.maxMessages/.test(e.message),
  );
  assert.throws(() => checkHistoryOptions({}), {
    name: "TypeError",
    message: "history.engine must be a RoomHistory",
  });
  assert.throws(() => checkHistoryOptions({ engine, window: 0 }), RangeError);
  assert.throws(() => checkHistoryOptions(null), TypeError);
});

/** Retries `fn` until it resolves (an engine reconnecting after a restart). */
async function eventually<T>(fn: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await delay(100);
    }
  }
}
