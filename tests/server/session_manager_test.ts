import assert from "node:assert/strict";
import { CloseReason, lines, type Server } from "../../mod.ts";
import { dial, testServer } from "../_server.ts";
import {
  delay,
  LineReader,
  readToEnd,
  until,
  utf8,
  within,
  writeAll,
} from "../_util.ts";

/** A lines server whose sessions broadcast every line to everyone else. */
function chatServer(
  extra: { outboundBudget?: number; drainTimeout?: number } = {},
): Server<unknown, string> {
  const server: Server<unknown, string> = testServer({
    codec: lines(),
    ...extra,
    onMessage: (session, line) => {
      server.sessions.broadcast(line, { except: session });
    },
  });
  return server;
}

async function clients(server: Server<unknown, string>, count: number) {
  const conns = await Promise.all(
    Array.from({ length: count }, () => dial(server)),
  );
  await until(() => server.sessions.size === count, 5000, "sessions");
  return conns;
}

Deno.test("SessionManager.broadcast() reaches every other session exactly once", async () => {
  const server = chatServer();
  const conns = await clients(server, 20);
  const readers = conns.map((c) => new LineReader(c));
  await Promise.all(conns.map((c, i) => writeAll(c, utf8(`from ${i}\n`))));
  for (const [i, reader] of readers.entries()) {
    const got: string[] = [];
    for (let k = 0; k < 19; k++) got.push((await reader.next())!);
    const expected = conns.map((_, j) => `from ${j}`).filter((l) =>
      l !== `from ${i}`
    );
    assert.deepEqual(got.sort(), expected.sort());
  }
  for (const conn of conns) conn.close();
  await server.close();
  // Nothing more arrived: each reader saw exactly 19 lines (checked above)
  // and the stats agree: 20 messages × 19 receivers.
  assert.equal(server.stats().framesOut, 20 * 19);
});

Deno.test("SessionManager.send() by id returns false for unknown and closed ids", async () => {
  const server = testServer();
  const [conn] = await clients(server, 1);
  const [session] = [...server.sessions];
  assert.equal(server.sessions.send(session!.id, "hello"), true);
  assert.equal(await new LineReader(conn!).next(), "hello");
  assert.equal(server.sessions.send(9999, "nobody"), false);
  assert.equal(server.sessions.delete(session!.id), true);
  assert.equal(server.sessions.has(session!.id), false);
  assert.equal(server.sessions.send(session!.id, "gone"), false);
  assert.equal(server.sessions.delete(session!.id), false);
  await session!.closed;
  conn!.close();
  await server.close();
});

Deno.test("Sessions leave the manager and their rooms on close, reset and EOF", async () => {
  const server = testServer({
    onOpen: (session) => {
      server.sessions.join(session, "all");
      server.sessions.join(session, `own ${session.id}`);
    },
  });
  const conns = await clients(server, 3);
  await until(() => server.sessions.members("all").size === 3);
  const [byClose, byReset, byEof] = [...server.sessions];
  assert.deepEqual(
    [...server.sessions.roomsOf(byClose!)],
    ["all", `own ${byClose!.id}`],
  );

  await byClose!.close("kicked");
  assert.equal(server.sessions.has(byClose!.id), false);
  assert.equal(server.sessions.members(`own ${byClose!.id}`).size, 0);
  assert.equal(server.sessions.roomsOf(byClose!).size, 0);

  byReset!.send("unread"); // unread data turns the close into a reset
  await delay(20);
  conns[1]!.close();
  const resetReason = await within(byReset!.closed, 5000, "reset");
  assert.ok(
    [CloseReason.Reset, CloseReason.Eof].includes(resetReason as never),
  );

  await conns[2]!.closeWrite();
  assert.equal(await within(byEof!.closed, 5000, "eof"), CloseReason.Eof);

  assert.equal(server.sessions.size, 0);
  assert.deepEqual(server.sessions.rooms(), []);
  assert.equal(server.sessions.members("all").size, 0);
  conns[0]!.close();
  conns[2]!.close();
  await server.close();
});

Deno.test("SessionManager rooms: join, leave, members, broadcast to a room", async () => {
  const server = testServer();
  const conns = await clients(server, 3);
  const [a, b, c] = [...server.sessions];
  assert.equal(server.sessions.join(a!, "red"), true);
  assert.equal(server.sessions.join(a!, "red"), false);
  server.sessions.join(b!, "red");
  server.sessions.join(c!, "blue");
  assert.deepEqual(server.sessions.rooms(), ["red", "blue"]);
  assert.equal(server.sessions.broadcast("to red", { room: "red" }), 2);
  assert.equal(
    server.sessions.broadcast("to red but a", { room: "red", except: a!.id }),
    1,
  );
  assert.equal(server.sessions.broadcast("nobody", { room: "green" }), 0);
  assert.equal(
    server.sessions.broadcast("filtered", { filter: (s) => s === c }),
    1,
  );
  assert.equal(server.sessions.leave(c!, "blue"), true);
  assert.equal(server.sessions.leave(c!, "blue"), false);
  assert.deepEqual(server.sessions.rooms(), ["red"]);

  const [ra, rb, rc] = conns.map((conn) => new LineReader(conn));
  assert.equal(await ra!.next(), "to red");
  assert.equal(await rb!.next(), "to red");
  assert.equal(await rb!.next(), "to red but a");
  assert.equal(await rc!.next(), "filtered");
  await server.close();
  for (const conn of conns) {
    const rest = new TextDecoder().decode(await readToEnd(conn));
    assert.equal(rest, "", "no other broadcast arrived");
    conn.close();
  }
});

Deno.test("A peer that never reads stalls broadcasts only until its drainTimeout, and its memory stays within budget", async () => {
  const budget = 256 * 1024;
  // Flow control holds the sender back while the stuck peer is over its
  // high-water mark; after drainTimeout it is cut and the room goes on.
  const server = chatServer({ outboundBudget: budget, drainTimeout: 300 });
  const [sender, stuck, ...readers] = await clients(server, 5);
  const stuckSession = [...server.sessions][1]!;
  // Enough traffic to fill the stuck peer's kernel buffers and then its
  // budget; paced by the readers so that they never fall behind.
  const BATCHES = 200;
  const PER_BATCH = 100;
  const line = "m".repeat(1000);
  let peak = 0;
  const lineReaders = readers.map((conn) => new LineReader(conn));
  for (let batch = 0; batch < BATCHES; batch++) {
    let text = "";
    for (let i = 0; i < PER_BATCH; i++) text += `${line} ${batch}.${i}\n`;
    await writeAll(sender!, utf8(text));
    for (const reader of lineReaders) {
      for (let i = 0; i < PER_BATCH; i++) {
        assert.equal(await reader.next(), `${line} ${batch}.${i}`);
      }
    }
    peak = Math.max(peak, stuckSession.queuedBytes);
  }
  assert.equal(
    await within(stuckSession.closed, 5000, "stuck session"),
    CloseReason.SlowConsumer,
  );
  assert.ok(peak <= budget, `stuck session queued ${peak} bytes`);
  assert.equal(server.stats().closedByReason[CloseReason.SlowConsumer], 1);
  assert.equal(server.sessions.size, 4);
  for (const conn of [sender!, stuck!, ...readers]) conn.close();
  await server.close();
});

Deno.test("members() and roomsOf() hand out snapshots, not the manager's own sets", async () => {
  const server = chatServer();
  const [a, b] = await clients(server, 2);
  try {
    const [first, second] = [...server.sessions];
    server.sessions.join(first!, "r");
    const members = server.sessions.members("r") as Set<unknown>;
    members.add(second);
    members.delete(first);
    assert.deepEqual([...server.sessions.members("r")], [first]);
    const rooms = server.sessions.roomsOf(first!) as Set<string>;
    rooms.add("elsewhere");
    assert.deepEqual([...server.sessions.roomsOf(first!)], ["r"]);
    assert.deepEqual(server.sessions.rooms(), ["r"]);
  } finally {
    a!.close();
    b!.close();
    await server.close();
  }
});
