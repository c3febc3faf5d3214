// Graceful shutdown on real sockets: every byte accepted by send/broadcast
// reaches a peer that reads, within the timeout, even a peer that keeps
// talking meanwhile; peers that don't read are cut at the timeout.
import assert from "node:assert/strict";
import { CloseReason, lengthPrefixed, lines } from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import { delay, until, utf8, within } from "../_util.ts";

const FRAME = 1024;

/** Frame `seq`: its number, then bytes derived from it, so any loss, reorder or corruption shows. */
function numbered(seq: number): Uint8Array {
  const payload = new Uint8Array(FRAME);
  new DataView(payload.buffer).setUint32(0, seq);
  for (let i = 4; i < FRAME; i++) payload[i] = (seq + i) & 0xff;
  return payload;
}

/**
 * Reads length-prefixed numbered frames until EOF, checking each one, and
 * optionally pausing between reads (a slow reader) or sending a line after
 * each read (a peer that talks while the server shuts down).
 */
async function readNumbered(
  conn: Deno.Conn,
  options: { pause?: number; chatter?: boolean; ms?: number } = {},
): Promise<{ frames: number; eof: boolean; error?: unknown }> {
  const decoder = lengthPrefixed({ maxFrameBytes: FRAME }).decoder();
  const buffer = new Uint8Array(16384);
  let frames = 0;
  const check = (payload: Uint8Array) => {
    const seq = new DataView(payload.buffer, payload.byteOffset).getUint32(0);
    assert.equal(seq, frames, "frames arrive in order, none missing");
    assert.equal(payload.length, FRAME);
    for (let i = 4; i < FRAME; i += 97) {
      assert.equal(payload[i], (seq + i) & 0xff, `frame ${seq} intact`);
    }
    frames++;
  };
  const ping = utf8("still here\n");
  const deadline = Date.now() + (options.ms ?? 15000);
  try {
    for (;;) {
      const n = await within(
        conn.read(buffer),
        Math.max(1, deadline - Date.now()),
        "reading frames",
      );
      if (n === null) return { frames, eof: true };
      decoder.decode(buffer.subarray(0, n), check);
      if (options.chatter) await conn.write(ping);
      if (options.pause) await delay(options.pause);
    }
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    return { frames, eof: false, error };
  }
}

Deno.test("Server.shutdown() delivers a large queued backlog to a reading client that verifies every frame", async () => {
  const COUNT = 8192; // 8 MiB + headers: far more than the kernel buffers
  const server = testServer({
    codec: lengthPrefixed({ maxFrameBytes: FRAME }),
    outboundBudget: 16 << 20,
  });
  using conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  for (let seq = 0; seq < COUNT; seq++) {
    assert.equal(session.send(numbered(seq)), true);
  }
  assert.ok(session.queuedBytes > 8 << 20, "the backlog is queued, not sent");
  const reading = readNumbered(conn, { pause: 1 });
  const started = performance.now();
  await server.shutdown({ timeout: 15000 });
  const result = await reading;
  assert.deepEqual(result, { frames: COUNT, eof: true });
  assert.equal(session.closeReason, CloseReason.ServerShutdown);
  assert.ok(performance.now() - started < 15000);
  assert.equal(server.stats().bytesOut, COUNT * (FRAME + 4));
});

Deno.test("Server.shutdown() delivers everything to a peer that keeps sending while it reads", async () => {
  // Closing a socket with unread input makes Linux reset it, which throws
  // away whatever is still buffered for the peer. The server must keep
  // reading (and discarding) until the peer is done.
  const COUNT = 8192;
  const server = testServer({
    codec: lengthPrefixed({ maxFrameBytes: FRAME }),
    outboundBudget: 16 << 20,
    onError: () => {}, // the chatter is not length-prefixed: a decode error
  });
  using conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  for (let seq = 0; seq < COUNT; seq++) session.send(numbered(seq));
  const reading = readNumbered(conn, { chatter: true });
  await server.shutdown({ timeout: 15000 });
  assert.deepEqual(await reading, { frames: COUNT, eof: true });
});

Deno.test("Session.close() after a decode error still delivers the last reply to a peer that keeps sending", async () => {
  const server = testServer({
    codec: lines({ maxLineBytes: 64 }),
    outboundBudget: 16 << 20,
    onOpen: (session) => {
      // A large welcome is still in flight when the peer misbehaves.
      for (let i = 0; i < 40000; i++) {
        session.send(`welcome ${i} ${"=".repeat(200)}`);
      }
    },
    onError: (_error, session) => void session?.send("bye: line too long"),
  });
  try {
    using conn = await dial(server);
    // The peer floods over-long lines while it slowly reads.
    const flood = utf8("x".repeat(4096));
    let text = "";
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(16384);
    const deadline = Date.now() + 15000;
    for (;;) {
      try {
        await conn.write(flood);
      } catch { /* our side may be reset too */ }
      const n = await within(
        conn.read(buffer),
        Math.max(1, deadline - Date.now()),
        "reading the reply",
      );
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    const got = text.split("\n");
    assert.equal(got.at(-2), "bye: line too long");
    assert.equal(got.length, 40002);
  } finally {
    await server.shutdown();
  }
});

Deno.test("Server.shutdown() cuts a peer that doesn't read at the timeout while a reading peer gets everything", async () => {
  const COUNT = 8192;
  const server = testServer({
    codec: lengthPrefixed({ maxFrameBytes: FRAME }),
    outboundBudget: 16 << 20,
  });
  const port = portOf(server.addr);
  using reader = await dial(port);
  using _stuck = await dial(port); // never reads
  await until(() => server.sessions.size === 2);
  const [readerSession, stuckSession] = [...server.sessions];
  for (let seq = 0; seq < COUNT; seq++) {
    server.sessions.broadcast(numbered(seq));
  }
  const reading = readNumbered(reader);
  const started = performance.now();
  await server.shutdown({ timeout: 1500 });
  const took = performance.now() - started;
  assert.deepEqual(await reading, { frames: COUNT, eof: true });
  assert.ok(took >= 1200, `cut before the timeout: ${took} ms`);
  assert.ok(took < 6000, `shutdown took ${took} ms`);
  assert.equal(readerSession!.closeReason, CloseReason.ServerShutdown);
  assert.equal(stuckSession!.closeReason, CloseReason.ServerShutdown);
  assert.ok(
    stuckSession!.bytesOut < COUNT * (FRAME + 4),
    "the stuck peer was cut",
  );
  assert.equal(stuckSession!.queuedBytes, 0, "its queue is released");
});

Deno.test("Server.shutdown() returns at once when nothing is queued, even with many sessions", async () => {
  const server = testServer();
  const conns = await Promise.all(
    Array.from({ length: 200 }, () => dial(server)),
  );
  await until(() => server.sessions.size === 200);
  const started = performance.now();
  await server.shutdown({ timeout: 10000 });
  const took = performance.now() - started;
  assert.ok(took < 3000, `shutdown of 200 idle sessions took ${took} ms`);
  assert.equal(server.stats().closedByReason[CloseReason.ServerShutdown], 200);
  for (const conn of conns) {
    assert.equal(await within(conn.read(new Uint8Array(1)), 2000), null);
    conn.close();
  }
});

Deno.test("Server.shutdown() stops accepting, delivers exactly the sends it accepted, then refuses them", async () => {
  const server = testServer({
    codec: lines(),
    outboundBudget: 16 << 20,
  });
  const port = portOf(server.addr);
  using conn = await dial(port);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  const expected: string[] = [];
  for (let i = 0; i < 1000; i++) {
    session.send(`line ${i}`);
    expected.push(`line ${i}`);
  }
  const stopping = server.shutdown({ timeout: 5000 });
  assert.equal(server.shutdown(), stopping, "idempotent");
  // Sends racing with the shutdown are either refused or delivered.
  for (let i = 0; i < 10; i++) {
    if (session.send(`late ${i}`)) expected.push(`late ${i}`);
    await delay(0);
  }
  await assert.rejects(() => dial(port), Deno.errors.ConnectionRefused);
  const text = new TextDecoder().decode(await readAll(conn));
  assert.deepEqual(text.split("\n"), [...expected, ""]);
  await stopping;
  await server.closed;
  assert.equal(session.send("after"), false);
  assert.equal(server.sessions.broadcast("after"), 0);
});

Deno.test("Server.shutdown() waits for onClose handlers and resolves once every session is closed", async () => {
  const closed: string[] = [];
  const server = testServer({
    onClose: async (session, reason) => {
      await delay(50);
      closed.push(`${session.id} ${reason}`);
    },
  });
  const conns = await Promise.all(
    [1, 2, 3].map(() => dial(server)),
  );
  await until(() => server.sessions.size === 3);
  await server.shutdown({ reason: "maintenance" });
  assert.deepEqual(closed.sort(), [
    "1 maintenance",
    "2 maintenance",
    "3 maintenance",
  ]);
  assert.equal(server.stats().sessionsOpen, 0);
  for (const conn of conns) conn.close();
});

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  for (;;) {
    const n = await within(conn.read(buffer), 5000, "reading to EOF");
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
