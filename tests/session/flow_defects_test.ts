// Flow control as a user meets it: every wait on a peer is bounded (a peer
// that holds a waiter past drainTimeout is cut; drained() and flush() take a
// timeout and a signal), and a burst bigger than the budget is refused (send
// returns false) without cutting a peer that keeps up.
import assert from "node:assert/strict";
import {
  type Client,
  CloseReason,
  connect,
  lengthPrefixed,
  lines,
  type Session,
  SessionClosedError,
} from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import { delay, until, within } from "../_util.ts";

/** Reads everything a connection gets, counting bytes, until it ends. */
function drainConn(conn: Deno.Conn): { bytes: number; done: Promise<void> } {
  const state = { bytes: 0, done: Promise.resolve() };
  state.done = (async () => {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) return;
        state.bytes += n;
      }
    } catch {
      // Closed by the test.
    }
  })();
  return state;
}

/** The server's session for a raw client connection. */
function sessionOf<Data, In, Out>(
  sessions: Iterable<Session<Data, In, Out>>,
  conn: Deno.TcpConn,
): Session<Data, In, Out> {
  const port = conn.localAddr.port;
  for (const session of sessions) {
    if ((session.remoteAddr as Deno.NetAddr).port === port) return session;
  }
  throw new Error(`no session for port ${port}`);
}

Deno.test("The README's timer broadcast with sessions.drained() keeps reaching healthy readers and cuts one that never reads within drainTimeout", async () => {
  const drainTimeout = 1000;
  await using server = testServer({
    codec: lines(),
    highWaterMark: 64 * 1024,
    drainTimeout,
    onOpen: (session) => void session.join("ticker"),
  });
  const port = portOf(server.addr);
  const healthy = await Promise.all([0, 1, 2, 3].map(() => dial(port)));
  const stuck = await dial(port); // never reads
  await until(() => server.sessions.size === 5);
  await until(() => [...server.sessions].every((s) => s.rooms.has("ticker")));
  const stuckSession = sessionOf(server.sessions, stuck);
  const readers = healthy.map(drainConn);
  const line = "t".repeat(32 * 1024 - 1);
  const start = performance.now();
  let cutAt: number | undefined;
  let atCut: number[] = [];
  let longestWait = 0;
  try {
    while (performance.now() - start < 8000) {
      const before = performance.now();
      await within(
        server.sessions.drained({ room: "ticker" }),
        drainTimeout + 1500,
        "sessions.drained() on a room with a peer that never reads",
      );
      longestWait = Math.max(longestWait, performance.now() - before);
      server.sessions.broadcast(line, { room: "ticker" });
      await delay(2);
      if (cutAt === undefined && stuckSession.state !== "open") {
        cutAt = performance.now();
        atCut = readers.map((r) => r.bytes);
      }
      if (cutAt !== undefined && performance.now() - cutAt > 300) break;
    }
    assert.equal(stuckSession.closeReason, CloseReason.SlowConsumer);
    assert.ok(
      longestWait < drainTimeout + 500,
      `one drained() took ${Math.round(longestWait)} ms`,
    );
    // Broadcasts went on after the cut, and reached every healthy reader.
    await until(() => readers.every((r, i) => r.bytes > atCut[i]! + 65536));
    assert.equal(server.sessions.size, healthy.length);
  } finally {
    for (const conn of healthy) conn.close();
    stuck.close();
    await Promise.all(readers.map((r) => r.done));
  }
});

/** A server session whose peer never reads, over its high-water mark. */
async function stuckPair(drainTimeout: number) {
  const server = testServer({
    codec: lengthPrefixed(),
    highWaterMark: 1024,
    outboundBudget: 64 << 20,
    drainTimeout,
  });
  const conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  // Far more than the kernel's buffers take, sent outside any handler.
  const big = new Uint8Array(65536 - 4);
  for (let i = 0; i < 300; i++) assert.ok(session.send(big));
  await delay(50);
  assert.equal(session.backpressure, true);
  return {
    server,
    conn,
    session,
    async [Symbol.asyncDispose]() {
      conn.close();
      await server.close();
    },
  };
}

Deno.test("session.drained() on a peer that never reads resolves false once drainTimeout cuts it", async () => {
  await using p = await stuckPair(400);
  const start = performance.now();
  const drained = await within(p.session.drained(), 3000, "drained()");
  assert.equal(drained, false);
  assert.equal(p.session.closeReason, CloseReason.SlowConsumer);
  const took = performance.now() - start;
  assert.ok(took >= 350 && took < 1500, `cut after ${Math.round(took)} ms`);
});

Deno.test("session.drained({ timeout }) rejects with a TimeoutError in time; { signal } rejects with its reason", async () => {
  await using p = await stuckPair(0); // never cut on time
  const start = performance.now();
  await within(
    assert.rejects(
      p.session.drained({ timeout: 200 }),
      (error: unknown) =>
        error instanceof DOMException && error.name === "TimeoutError",
    ),
    2000,
    "drained({ timeout: 200 })",
  );
  const took = performance.now() - start;
  assert.ok(took >= 190 && took < 1000, `took ${Math.round(took)} ms`);
  const controller = new AbortController();
  const waiting = p.session.drained({ signal: controller.signal });
  setTimeout(() => controller.abort(new Error("enough")), 50);
  await within(
    assert.rejects(waiting, /enough/),
    2000,
    "drained({ signal })",
  );
  await assert.rejects(
    p.session.drained({ signal: AbortSignal.abort(new Error("early")) }),
    /early/,
  );
  assert.equal(p.session.state, "open");
});

Deno.test("session.flush({ timeout }) and sessions.drained({ timeout }) reject in time on a peer that never reads", async () => {
  await using p = await stuckPair(0);
  await within(
    assert.rejects(
      p.session.flush({ timeout: 150 }),
      (error: unknown) =>
        error instanceof DOMException && error.name === "TimeoutError",
    ),
    2000,
    "flush({ timeout: 150 })",
  );
  await within(
    assert.rejects(
      p.server.sessions.drained({ timeout: 150 }),
      (error: unknown) =>
        error instanceof DOMException && error.name === "TimeoutError",
    ),
    2000,
    "sessions.drained({ timeout: 150 })",
  );
  assert.equal(p.session.state, "open");
});

Deno.test("In onOpen, send('hi') then one 5 MiB send reach a peer that reads: no slow consumer", async () => {
  const big = "b".repeat(5 << 20);
  const sent = Promise.withResolvers<boolean[]>();
  await using server = testServer({
    codec: lines({ maxLineBytes: 8 << 20 }),
    onOpen: (session) => sent.resolve([session.send("hi"), session.send(big)]),
  });
  using conn = await dial(server);
  assert.deepEqual(await sent.promise, [true, true]);
  const expected = 3 + big.length + 1;
  const buffer = new Uint8Array(65536);
  let got = 0;
  while (got < expected) {
    const n = await within(conn.read(buffer), 5000, "the big line");
    if (n === null) break;
    got += n;
  }
  assert.equal(got, expected);
  const session = [...server.sessions][0]!;
  assert.equal(session.state, "open");
  assert.equal(session.framesDropped, 0);
});

Deno.test("100,000 synchronous client.send() calls: those past the budget return false, the rest arrive, the client stays open", async () => {
  let received = 0;
  await using server = testServer({
    codec: lengthPrefixed(),
    onMessage: () => void received++,
  });
  await using client = await connect({
    port: portOf(server.addr),
    codec: lengthPrefixed(),
  });
  const message = new Uint8Array(8);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 100_000; i++) {
    if (client.send(message)) accepted++;
    else refused++;
  }
  assert.ok(accepted > 0 && refused > 0, `${accepted} / ${refused}`);
  assert.equal(client.session?.framesDropped, refused);
  await until(() => received === accepted, 5000, "the accepted frames");
  await delay(50);
  assert.equal(received, accepted);
  assert.equal(client.session?.state, "open");
  // Once the burst has drained, sends are accepted again.
  assert.equal(client.send(message), true);
  await until(() => received === accepted + 1);
});

Deno.test("for await over a client cut as a slow consumer ends with a SessionClosedError naming the reason", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const client: Client<unknown, Uint8Array> = await connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
    codec: lengthPrefixed(),
    highWaterMark: 64 * 1024,
    outboundBudget: 64 << 20,
    drainTimeout: 300,
    onOpen: (session) => {
      const big = new Uint8Array(65536 - 4);
      for (let i = 0; i < 200; i++) session.send(big);
    },
  });
  using _server = await accepted; // never reads
  await within(
    assert.rejects(
      (async () => {
        for await (const _ of client) assert.fail("no message");
      })(),
      (error: unknown) =>
        error instanceof SessionClosedError &&
        error.reason === CloseReason.SlowConsumer,
    ),
    5000,
    "the end of the loop",
  );
  assert.equal(await client.closed, CloseReason.SlowConsumer);
  await client.close();
});

Deno.test("A send that doesn't fit, on a peer that never reads, is refused and the peer is cut after drainTimeout (overflow 'close')", async () => {
  await using server = testServer({
    codec: lines(),
    outboundBudget: 256 * 1024,
    drainTimeout: 300,
  });
  using _conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  const line = "y".repeat(1000);
  let refused = 0;
  let peak = 0;
  const start = performance.now();
  while (session.state === "open" && performance.now() - start < 5000) {
    for (let i = 0; i < 100; i++) if (!session.send(line)) refused++;
    peak = Math.max(peak, session.queuedBytes);
    await delay(1);
  }
  assert.equal(session.closeReason, CloseReason.SlowConsumer);
  assert.ok(refused > 0);
  assert.ok(peak <= 256 * 1024, `queued ${peak} bytes`);
  await session.closed;
});

Deno.test("drained() and flush() name a wait option they don't know, and refuse a bad timeout", async () => {
  await using server = testServer();
  using _conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  assert.throws(
    // @ts-expect-error: not a wait option
    () => session.drained({ timeOut: 100 }),
    /Unknown wait option: timeOut/,
  );
  assert.throws(() => session.flush({ timeout: -1 }), RangeError);
  assert.throws(() => session.drained({ timeout: NaN }), RangeError);
  assert.equal(await session.drained({ timeout: 100 }), true);
  assert.equal(await session.flush({ timeout: 100 }), true);
});
