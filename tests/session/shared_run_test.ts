// A turn's broadcasts to the same receivers are queued on each receiver
// once (src/session/_shared_run.ts): the later ones only extend the run.
// These tests change the receivers, their queues and their budgets between
// broadcasts of one turn, and check that every peer gets exactly what it
// would have got message by message, in order.
import assert from "node:assert/strict";
import type { Session } from "../../mod.ts";
import { fanOut } from "../../src/_fan_out.ts";
import { SegmentWriter } from "../../src/_shared_segment.ts";
import { parts } from "../../src/session/_internals.ts";
import { dial, testServer } from "../_server.ts";
import { delay, LineReader, seededRandom, until } from "../_util.ts";

type S = Session<unknown, string, string>;
type Peer = { conn: Deno.TcpConn; lines: LineReader };

// A lines server with `count` raw peers, its sessions in the peers' order.
async function setup(
  count: number,
  options: {
    outboundBudget?: number;
    overflow?: "drop";
    frameTimeout?: number;
  } = {},
) {
  const server = testServer({ ...options });
  const peers: Peer[] = [];
  for (let i = 0; i < count; i++) {
    const conn = await dial(server);
    peers.push({ conn, lines: new LineReader(conn) });
    await until(() => server.sessions.size === i + 1);
  }
  const sessions = [...server.sessions] as S[];
  return {
    server,
    peers,
    sessions,
    async [Symbol.asyncDispose]() {
      for (const peer of peers) peer.conn.close();
      await server.close();
    },
  };
}

async function readLines(peer: Peer, count: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < count; i++) got.push((await peer.lines.next())!);
  return got;
}

// Nothing more arrives within a short while (the reader's read stays
// pending: call it last).
async function nothingMore(peer: Peer): Promise<void> {
  await assert.rejects(peer.lines.next(150), /reading a line/);
}

Deno.test("broadcast run: a private frame between broadcasts of one turn keeps its place", async () => {
  await using t = await setup(3);
  const [a, b, c] = t.sessions as [S, S, S];
  const manager = t.server.sessions;
  assert.equal(manager.broadcast("1"), 3);
  assert.equal(manager.broadcast("2"), 3);
  b.send("private to b");
  assert.equal(manager.broadcast("3"), 3);
  a.send("private to a");
  assert.equal(manager.broadcast("4"), 3);
  assert.deepEqual(await readLines(t.peers[0]!, 5), [
    "1",
    "2",
    "3",
    "private to a",
    "4",
  ]);
  assert.deepEqual(await readLines(t.peers[1]!, 5), [
    "1",
    "2",
    "private to b",
    "3",
    "4",
  ]);
  assert.deepEqual(await readLines(t.peers[2]!, 4), ["1", "2", "3", "4"]);
  assert.equal(c.framesOut, 4);
  assert.equal(b.framesOut, 5);
});

Deno.test("broadcast run: a member joining or leaving mid-turn gets exactly the broadcasts made while it was in", async () => {
  await using t = await setup(3);
  const [a, b, c] = t.sessions as [S, S, S];
  const manager = t.server.sessions;
  manager.join(a, "room");
  manager.join(b, "room");
  assert.equal(manager.broadcast("r1", { room: "room" }), 2);
  assert.equal(manager.broadcast("r2", { room: "room" }), 2);
  manager.join(c, "room");
  assert.equal(manager.broadcast("r3", { room: "room" }), 3);
  assert.equal(manager.broadcast("r4", { room: "room" }), 3);
  manager.leave(a, "room");
  assert.equal(manager.broadcast("r5", { room: "room" }), 2);
  assert.deepEqual(await readLines(t.peers[0]!, 4), ["r1", "r2", "r3", "r4"]);
  assert.deepEqual(await readLines(t.peers[1]!, 5), [
    "r1",
    "r2",
    "r3",
    "r4",
    "r5",
  ]);
  assert.deepEqual(await readLines(t.peers[2]!, 3), ["r3", "r4", "r5"]);
  await nothingMore(t.peers[0]!);
});

Deno.test("broadcast run: another exception or a filter mid-turn reaches the right members", async () => {
  await using t = await setup(3);
  const [a, b] = t.sessions as [S, S, S];
  const manager = t.server.sessions;
  assert.equal(manager.broadcast("x1", { except: a }), 2);
  assert.equal(manager.broadcast("x2", { except: a }), 2);
  assert.equal(manager.broadcast("x3", { except: b }), 2);
  assert.equal(manager.broadcast("x4", { filter: (s) => s === a }), 1);
  assert.equal(manager.broadcast("x5"), 3);
  assert.equal(manager.broadcast("x6"), 3);
  assert.deepEqual(await readLines(t.peers[0]!, 4), ["x3", "x4", "x5", "x6"]);
  assert.deepEqual(await readLines(t.peers[1]!, 4), ["x1", "x2", "x5", "x6"]);
  assert.deepEqual(await readLines(t.peers[2]!, 5), [
    "x1",
    "x2",
    "x3",
    "x5",
    "x6",
  ]);
});

Deno.test("broadcast run: a member closing mid-turn gets nothing more, the others everything", async () => {
  await using t = await setup(3);
  const [a] = t.sessions as [S, S, S];
  const manager = t.server.sessions;
  assert.equal(manager.broadcast("c1"), 3);
  a.close("bye");
  assert.equal(manager.broadcast("c2"), 2);
  assert.equal(manager.broadcast("c3"), 2);
  assert.deepEqual(await readLines(t.peers[0]!, 1), ["c1"]);
  assert.equal(await t.peers[0]!.lines.next(), null);
  for (const peer of t.peers.slice(1)) {
    assert.deepEqual(await readLines(peer, 3), ["c1", "c2", "c3"]);
  }
});

Deno.test("broadcast run: the budget refuses the same frames as message by message", async () => {
  // 40-byte lines against a 1,000-byte budget with overflow "drop": the
  // frames past the budget are refused whether or not a run carries them.
  const line = (i: number) => `${String(i).padStart(3, "0")}${"x".repeat(36)}`;
  await using t = await setup(2, { outboundBudget: 1000, overflow: "drop" });
  const manager = t.server.sessions;
  const accepted: number[] = [];
  for (let i = 0; i < 60; i++) accepted.push(manager.broadcast(line(i)));
  // 25 whole lines fit in 1,000 bytes; the rest are refused to both.
  const expected = Array.from({ length: 60 }, (_, i) => i < 25 ? 2 : 0);
  assert.deepEqual(accepted, expected);
  for (const session of t.sessions) {
    assert.equal(session.framesDropped, 35);
  }
  for (const peer of t.peers) {
    assert.deepEqual(
      await readLines(peer, 25),
      Array.from({ length: 25 }, (_, i) => line(i)),
    );
  }
  // After the drain, the next turn's broadcasts go out again, right after
  // the 25 lines (nothing refused arrived).
  assert.equal(manager.broadcast("after"), 2);
  for (const peer of t.peers) assert.equal(await peer.lines.next(), "after");
});

Deno.test("broadcast run: later broadcasts, in this turn and the next ones, don't visit the members again", async () => {
  await using t = await setup(3);
  let visits = 0;
  const targets: Iterable<S> = {
    *[Symbol.iterator]() {
      for (const session of t.sessions) {
        visits++;
        yield session;
      }
    },
  };
  const writer = new SegmentWriter();
  for (let i = 0; i < 10; i++) {
    assert.equal(fanOut(targets, writer, `t${i}`, -1, undefined), 3);
  }
  // One loop over the three members, for the first broadcast only.
  assert.equal(visits, 3);
  for (const peer of t.peers) {
    assert.deepEqual(
      await readLines(peer, 10),
      Array.from({ length: 10 }, (_, i) => `t${i}`),
    );
  }
  // Nor do later turns' (after the flush passes wrote them): the members
  // keep following the run, asleep until it grows.
  for (let turn = 0; turn < 3; turn++) {
    await delay(10);
    assert.equal(fanOut(targets, writer, `next${turn}`, -1, undefined), 3);
    for (const peer of t.peers) {
      assert.equal(await peer.lines.next(), `next${turn}`);
    }
  }
  assert.equal(visits, 3);
  // Until the receivers change (the manager and rooms end the run then).
  writer.endRun();
  assert.equal(fanOut(targets, writer, "again", -1, undefined), 3);
  assert.equal(visits, 6);
  for (const peer of t.peers) assert.equal(await peer.lines.next(), "again");
});

Deno.test("broadcast run: random turns of broadcasts, private frames, joins and leaves deliver exactly the model's lines, in order", async () => {
  const random = seededRandom(19);
  const pick = <T>(items: readonly T[]): T =>
    items[Math.floor(random() * items.length)]!;
  await using t = await setup(5);
  const manager = t.server.sessions;
  const sessions = t.sessions;
  const expected: string[][] = sessions.map(() => []);
  const rooms = new Map<string, Set<number>>([["r1", new Set()], [
    "r2",
    new Set(),
  ]]);
  let serial = 0;
  const deliver = (line: string, to: Iterable<number>) => {
    for (const i of to) expected[i]!.push(line);
  };
  const all = sessions.map((_, i) => i);
  for (let turn = 0; turn < 60; turn++) {
    const ops = 1 + Math.floor(random() * 25);
    for (let op = 0; op < ops; op++) {
      const line = `m${serial++}`;
      // Odd turns only broadcast to rooms and change their members, so
      // that a room's run meets joins and leaves between its broadcasts.
      const roll = turn % 2 === 0
        ? random()
        : random() < 0.7
        ? 0.45 + random() * 0.25
        : 0.9;
      const except = random() < 0.3 ? pick(all) : -1;
      const exceptOption = except < 0 ? {} : { except: sessions[except]! };
      if (roll < 0.45) {
        manager.broadcast(line, exceptOption);
        deliver(line, all.filter((i) => i !== except));
      } else if (roll < 0.7) {
        const room = pick(["r1", "r2"]);
        manager.broadcast(line, { room, ...exceptOption });
        deliver(line, [...rooms.get(room)!].filter((i) => i !== except));
      } else if (roll < 0.78) {
        const chosen = new Set(all.filter(() => random() < 0.5));
        manager.broadcast(line, {
          filter: (session) => chosen.has(sessions.indexOf(session)),
        });
        deliver(line, chosen);
      } else if (roll < 0.88) {
        const i = pick(all);
        sessions[i]!.send(line);
        deliver(line, [i]);
      } else {
        const i = pick(all);
        const room = pick(["r1", "r2"]);
        if (rooms.get(room)!.has(i)) {
          manager.leave(sessions[i]!, room);
          rooms.get(room)!.delete(i);
        } else {
          manager.join(sessions[i]!, room);
          rooms.get(room)!.add(i);
        }
      }
    }
    // Sometimes the next ops share the turn (a microtask), sometimes a flush
    // pass runs in between, sometimes the writes complete too.
    const wait = random();
    if (wait < 0.3) await Promise.resolve();
    else if (wait < 0.7) await delay(0);
    else await delay(5);
  }
  manager.broadcast("end");
  for (let i = 0; i < sessions.length; i++) {
    const got: string[] = [];
    for (;;) {
      const line = await t.peers[i]!.lines.next();
      if (line === null || line === "end") break;
      got.push(line);
    }
    assert.deepEqual(got, expected[i], `peer ${i}`);
  }
});

Deno.test("broadcast run: quiet followers let the run go and give their queues back; the next broadcast reaches everyone", async () => {
  // Liveness ticks every 50 ms with this frame timeout; a tick gives back
  // the queue of a session with nothing queued (issue 19 §4), which ends
  // the run it follows.
  await using t = await setup(3, { frameTimeout: 200 });
  const manager = t.server.sessions;
  const holdsQueue = (session: S): boolean =>
    (session[parts].writer as unknown as { holdsQueue: boolean }).holdsQueue;
  assert.equal(manager.broadcast("q1"), 3);
  assert.equal(manager.broadcast("q2"), 3);
  for (const peer of t.peers) {
    assert.deepEqual(await readLines(peer, 2), ["q1", "q2"]);
  }
  assert.ok(t.sessions.every(holdsQueue), "followers hold their queues");
  await until(() => !t.sessions.some(holdsQueue), 2000);
  assert.equal(manager.broadcast("q3"), 3);
  for (const peer of t.peers) assert.equal(await peer.lines.next(), "q3");
});

Deno.test("broadcast run: a message the codec can't encode throws and ends the run; the next broadcasts reach everyone", async () => {
  await using t = await setup(2);
  const manager = t.server.sessions;
  assert.equal(manager.broadcast("e1"), 2);
  assert.equal(manager.broadcast("e2"), 2);
  // lines() refuses a message with a line break inside.
  assert.throws(() => manager.broadcast("bad\nline"), TypeError);
  assert.equal(manager.broadcast("e3"), 2);
  assert.equal(manager.broadcast("e4"), 2);
  for (const peer of t.peers) {
    assert.deepEqual(await readLines(peer, 4), ["e1", "e2", "e3", "e4"]);
  }
});

Deno.test("broadcast run: channels that alternate stop starting runs that go unused, and start again once one is used", async () => {
  await using t = await setup(3);
  const targets: Iterable<S> = t.sessions;
  const a = new SegmentWriter();
  const b = new SegmentWriter();
  const sent: string[] = [];
  const send = (writer: SegmentWriter, line: string) => {
    assert.equal(fanOut(targets, writer, line, -1, undefined), 3);
    sent.push(line);
  };
  // Alternating: each broadcast ends the other channel's run unused.
  for (let i = 0; i < 12; i++) send(i % 2 === 0 ? a : b, `alt${i}`);
  assert.ok(a.unusedRuns >= 4 && b.unusedRuns >= 4);
  const started = [a.run, b.run].filter((run) => run !== undefined).length;
  assert.ok(started <= 1, "no run started on every broadcast");
  // One channel alone: within a probe period a run starts and is used.
  for (let i = 0; i < 20; i++) send(a, `one${i}`);
  assert.equal(a.unusedRuns, 0);
  assert.ok(a.run?.open, "a run carries the channel again");
  for (const peer of t.peers) {
    assert.deepEqual(await readLines(peer, sent.length), sent);
  }
});
