// Liveness on real loopback sockets: idle timeout, heartbeat, frame timeout
// (slowloris), and the rule that time we spend — blocked, in a slow handler,
// or sending to a slow reader — never counts against a peer.
//
// Timings are generous on purpose (the CI machine has 2 loaded cores): the
// assertions are about orders of magnitude, not milliseconds.
import assert from "node:assert/strict";
import {
  CloseReason,
  connect,
  json,
  lengthPrefixed,
  lines,
  listen,
  microSocket,
} from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import {
  delay,
  LineReader,
  readBytes,
  readToEnd,
  until,
  utf8,
  within,
  writeAll,
} from "../_util.ts";

/** Records when and why each session closed, relative to `start`. */
function closeLog() {
  const start = performance.now();
  const closes = new Map<number, { reason: string; at: number }>();
  return {
    start,
    closes,
    onClose: (session: { readonly id: number }, reason: string): void =>
      void closes.set(session.id, { reason, at: performance.now() - start }),
  };
}

Deno.test("idleTimeout closes a silent session with reason idle timeout and spares a chatty one", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: lines(),
    idleTimeout: 250,
    onClose: log.onClose,
  });
  const port = portOf(server.addr);
  using silent = await dial(port);
  using chatty = await dial(port);
  await until(() => server.sessions.size === 2);
  const [silentSession, chattySession] = [...server.sessions];
  const deadline = performance.now() + 800;
  while (performance.now() < deadline) {
    await writeAll(chatty, utf8("still here\n"));
    await delay(50);
  }
  const silentClose = log.closes.get(silentSession!.id);
  assert.equal(silentClose?.reason, CloseReason.IdleTimeout);
  assert.ok(silentClose.at >= 200, `closed too early: ${silentClose.at} ms`);
  assert.equal(chattySession!.state, "open");
  // The silent peer sees the connection end.
  assert.equal(await within(silent.read(new Uint8Array(1)), 2000), null);
  assert.equal(server.stats().closedByReason[CloseReason.IdleTimeout], 1);
});

Deno.test("idleTimeout is off by default", async () => {
  await using server = testServer();
  using conn = await dial(server);
  await until(() => server.sessions.size === 1);
  await delay(300);
  assert.equal([...server.sessions][0]!.state, "open");
  conn.close();
});

Deno.test("Liveness checks share one interval timer across sessions and stop it when the last closes", async () => {
  const realSetInterval = globalThis.setInterval;
  const realClearInterval = globalThis.clearInterval;
  const active = new Set<ReturnType<typeof setInterval>>();
  let created = 0;
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    const id = realSetInterval(...args);
    created++;
    active.add(id);
    return id;
  }) as typeof setInterval;
  globalThis.clearInterval = ((id?: ReturnType<typeof setInterval>) => {
    if (id !== undefined) active.delete(id);
    realClearInterval(id);
  }) as typeof clearInterval;
  try {
    await using server = testServer({
      codec: lines({ heartbeat: { ping: "PING", pong: "PONG" } }),
      idleTimeout: 5000,
      heartbeatInterval: 4000,
      frameTimeout: 3000,
    });
    const conns = await Promise.all(
      Array.from({ length: 100 }, () => dial(server)),
    );
    await until(() => server.sessions.size === 100);
    assert.equal(created, 1, "one timer for 100 sessions");
    assert.equal(active.size, 1);
    for (const conn of conns) conn.close();
    await until(() => server.sessions.size === 0);
    await until(() => server.stats().sessionsOpen === 0);
    assert.equal(active.size, 0, "the timer stops with the last session");
  } finally {
    globalThis.setInterval = realSetInterval;
    globalThis.clearInterval = realClearInterval;
  }
});

Deno.test("idleTimeout does not reap a session while its async handler runs", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: lines(),
    idleTimeout: 200,
    onClose: log.onClose,
    onMessage: async (session, line) => {
      if (line === "slow") await delay(600); // 3 idle timeouts
      session.send(`done ${line}`);
    },
  });
  using conn = await dial(server);
  const reader = new LineReader(conn);
  await writeAll(conn, utf8("slow\n"));
  assert.equal(await reader.next(3000), "done slow");
  assert.equal(log.closes.size, 0, "not reaped while our handler was busy");
  // Once our handler is done, the peer's own silence counts again.
  assert.equal(await reader.next(3000), null);
  await until(() => log.closes.has(1));
  assert.equal(log.closes.get(1)?.reason, CloseReason.IdleTimeout);
});

Deno.test("idleTimeout does not reap a session while its async onOpen runs", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: lines(),
    idleTimeout: 200,
    onClose: log.onClose,
    onOpen: async (session) => {
      await delay(600); // e.g. an authentication lookup
      session.send("welcome");
    },
    onMessage: (session, line) => void session.send(`echo ${line}`),
  });
  using conn = await dial(server);
  const reader = new LineReader(conn);
  await writeAll(conn, utf8("hello\n")); // sent at once, read after onOpen
  assert.equal(await reader.next(3000), "welcome");
  assert.equal(await reader.next(3000), "echo hello");
  assert.equal(log.closes.size, 0);
});

Deno.test("Time the event loop spends blocked does not count against peers whose bytes arrived meanwhile", async () => {
  const IDLE = 600;
  const log = closeLog();
  let blockEnded = 0;
  await using server = testServer({
    codec: lines(),
    idleTimeout: IDLE,
    onClose: log.onClose,
    onMessage: (_session, line) => {
      if (line !== "block") return;
      // A synchronous handler hogging the loop for 2.5 idle timeouts.
      const end = performance.now() + IDLE * 2.5;
      while (performance.now() < end) { /* busy */ }
      blockEnded = performance.now() - log.start;
    },
  });
  const port = portOf(server.addr);
  using blocker = await dial(port);
  using peer = await dial(port);
  await until(() => server.sessions.size === 2);
  const peerId = [...server.sessions][1]!.id;
  await writeAll(peer, utf8("hello\n"));
  await delay(IDLE / 3); // the peer is quiet for a third of its allowance
  // The blocker's line starts the busy loop; the peer's line lands in the
  // kernel while the server cannot read.
  await writeAll(blocker, utf8("block\n"));
  await writeAll(peer, utf8("still here\n"));
  await until(() => blockEnded > 0, 10000, "the block");
  await delay(IDLE / 2);
  assert.equal(
    log.closes.get(peerId),
    undefined,
    `peer reaped ${
      (log.closes.get(peerId)?.at ?? 0) - blockEnded
    } ms after the block`,
  );
  // Both are reaped for their own silence after the block, not before.
  await until(() => log.closes.size === 2, 5000, "idle closes");
  for (const { reason, at } of log.closes.values()) {
    assert.equal(reason, CloseReason.IdleTimeout);
    assert.ok(
      at - blockEnded >= IDLE / 2,
      `reaped ${at - blockEnded} ms after`,
    );
  }
});

for (const mode of ["a refilled stream", "one large backlog"] as const) {
  Deno.test(`idleTimeout does not reap a session sending ${mode} to a slow but steady reader`, async () => {
    // A Unix socket keeps kernel buffering small (no TCP autotuning), so the
    // server's queue really waits on the reader for most of the transfer.
    const path = await Deno.makeTempFile({ suffix: ".sock" });
    await Deno.remove(path);
    const TOTAL = 1024 * 1024;
    const FRAME = 64 * 1024;
    const log = closeLog();
    const server = listen({
      transport: "unix",
      path,
      codec: lengthPrefixed({ maxFrameBytes: FRAME }),
      idleTimeout: 300,
      outboundBudget: TOTAL,
      onClose: log.onClose,
      onMessage: async (session) => {
        const payload = new Uint8Array(FRAME - 4);
        for (let sent = 0; sent < TOTAL; sent += FRAME) {
          if (!session.send(payload)) return;
          // Streaming keeps two frames queued and refills as they drain.
          if (
            mode === "a refilled stream" && session.queuedBytes >= 2 * FRAME
          ) {
            await session.flush();
          }
        }
      },
    });
    try {
      using conn = await Deno.connect({ transport: "unix", path });
      await writeAll(conn, lengthPrefixed().encode(new Uint8Array([1])));
      await until(() => server.sessions.size === 1);
      const session = [...server.sessions][0]!;
      // When the server's last write completed: from then on it is no longer
      // sending, and the peer's silence may count.
      let doneSending = Infinity;
      const watch = setInterval(() => {
        if (session.bytesOut >= TOTAL + 0 && doneSending === Infinity) {
          doneSending = performance.now() - log.start;
        }
      }, 5);
      const buffer = new Uint8Array(8192);
      let received = 0;
      const started = performance.now();
      try {
        while (received < TOTAL) {
          const n = await within(conn.read(buffer), 5000, "reading");
          if (n === null) break;
          received += n;
          await delay(10); // ~800 KB/s: the transfer lasts several timeouts
        }
      } finally {
        clearInterval(watch);
      }
      const took = performance.now() - started;
      assert.equal(received, TOTAL, `stream cut after ${received} bytes`);
      assert.ok(took > 700, `transfer too fast to prove anything: ${took} ms`);
      const closed = log.closes.get(session.id);
      if (closed !== undefined) {
        // Reaped for the silence after sending ended, never during it.
        assert.ok(
          closed.at - doneSending >= 200,
          `reaped ${closed.at - doneSending} ms after sending ended`,
        );
      }
    } finally {
      await server.shutdown();
    }
  });
}

Deno.test("frameTimeout closes a slowloris peer that dribbles a line and never finishes it", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: lines(),
    frameTimeout: 300,
    onClose: log.onClose,
    onMessage: (session, line) => void session.send(`echo ${line}`),
  });
  const port = portOf(server.addr);
  using loris = await dial(port);
  using steady = await dial(port);
  await until(() => server.sessions.size === 2);
  const [lorisSession, steadySession] = [...server.sessions];
  const steadyReader = new LineReader(steady);
  // The loris sends a byte every 40 ms (so it is never idle); the steady
  // peer sends a complete line every 100 ms, each in a single write.
  let stop = false;
  const dribble = (async () => {
    try {
      for (let i = 0; !stop && i < 200; i++) {
        await loris.write(utf8("x"));
        await delay(40);
      }
    } catch { /* cut */ }
  })();
  let cutAt = 0;
  for (let i = 0; i < 10; i++) {
    await writeAll(steady, utf8(`line ${i}\n`));
    assert.equal(await steadyReader.next(3000), `echo line ${i}`);
    if (cutAt === 0 && lorisSession!.state !== "open") {
      cutAt = performance.now() - log.start;
    }
    await delay(100);
  }
  // Cut while still dribbling (its last bytes are drained, then dropped).
  assert.equal(lorisSession!.closeReason, CloseReason.FrameTimeout);
  assert.ok(cutAt >= 200, `cut after ${cutAt} ms`);
  assert.equal(steadySession!.state, "open");
  stop = true;
  await dribble;
  await until(() => log.closes.has(lorisSession!.id));
});

Deno.test("frameTimeout also covers a peer that stops inside a binary header", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: lengthPrefixed(),
    frameTimeout: 300,
    onClose: log.onClose,
  });
  using conn = await dial(server);
  await writeAll(conn, new Uint8Array([0, 0])); // half a length header
  assert.equal(await within(conn.read(new Uint8Array(1)), 5000), null);
  await until(() => log.closes.has(1));
  assert.equal(log.closes.get(1)?.reason, CloseReason.FrameTimeout);
});

Deno.test("frameTimeout does not close a large frame that keeps arriving, nor a quiet peer between frames", async () => {
  const log = closeLog();
  let received = 0;
  await using server = testServer({
    codec: lengthPrefixed({ maxFrameBytes: 1 << 20 }),
    frameTimeout: 300,
    onClose: log.onClose,
    onMessage: (_session, payload) => void (received += payload.length),
  });
  using conn = await dial(server);
  await delay(600); // quiet between frames: not a frame timeout
  // One 512 KiB frame sent in one go, then a few small ones.
  await writeAll(
    conn,
    lengthPrefixed({ maxFrameBytes: 1 << 20 }).encode(
      new Uint8Array(512 * 1024),
    ),
  );
  await until(() => received === 512 * 1024, 5000, "the large frame");
  assert.equal(log.closes.size, 0);
});

Deno.test("heartbeat pings a silent raw peer and closes it after heartbeatMaxMissed unanswered pings", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: microSocket(),
    heartbeatInterval: 150,
    heartbeatMaxMissed: 2,
    onClose: log.onClose,
  });
  using conn = await dial(server);
  // Two pings (empty microSocket frames), then the connection ends.
  const ping = [...utf8("Header"), 0, 0, 0, 0];
  const got = await readBytes(conn, 30, 5000);
  assert.deepEqual([...got], [...ping, ...ping]);
  await until(() => log.closes.has(1));
  const closed = log.closes.get(1);
  assert.equal(closed?.reason, CloseReason.HeartbeatTimeout);
  assert.ok(closed.at >= 300 && closed.at < 5000, `at ${closed.at} ms`);
});

Deno.test("heartbeat keeps a raw peer that answers every ping", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: microSocket(),
    heartbeatInterval: 100,
    heartbeatMaxMissed: 1,
    onClose: log.onClose,
  });
  using conn = await dial(server);
  const keepalive = new Uint8Array([...utf8("Header"), 0, 0, 0, 0]);
  let pings = 0;
  const deadline = performance.now() + 600;
  while (performance.now() < deadline) {
    const ping = await readBytes(conn, 10, 3000);
    assert.deepEqual(ping, keepalive);
    pings++;
    await writeAll(conn, keepalive); // the pong
  }
  assert.ok(pings >= 3, `only ${pings} pings in 600 ms`);
  assert.equal(log.closes.size, 0);
});

Deno.test("heartbeat: a connect() client answers the server's pings on its own", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: microSocket(),
    heartbeatInterval: 100,
    heartbeatMaxMissed: 2,
    onClose: log.onClose,
  });
  const messages: unknown[] = [];
  await using client = await connect({
    port: portOf(server.addr),
    codec: microSocket(),
    onMessage: (_session, message) => void messages.push(message),
  });
  await delay(600);
  assert.equal(log.closes.size, 0, JSON.stringify([...log.closes]));
  assert.ok(client.session !== undefined);
  assert.deepEqual(messages, [], "pings never reach handlers");
  const stats = server.stats();
  assert.ok(stats.framesIn >= 3, `server saw ${stats.framesIn} pongs`);
});

Deno.test("heartbeat on both sides does not ping-pong forever", async () => {
  await using server = testServer({
    codec: microSocket(),
    heartbeatInterval: 100,
  });
  await using client = await connect({
    port: portOf(server.addr),
    codec: microSocket(),
    heartbeatInterval: 100,
  });
  await delay(500);
  const stats = server.stats();
  assert.equal(stats.sessionsOpen, 1);
  // About one ping and one pong per interval each way, never a storm.
  assert.ok(stats.framesIn < 25, `${stats.framesIn} frames in 500 ms`);
  assert.ok(client.session !== undefined);
});

Deno.test("heartbeat counts any inbound frame as alive, not only pongs", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: lines({ heartbeat: { ping: "PING", pong: "PONG" } }),
    heartbeatInterval: 100,
    heartbeatMaxMissed: 2,
    onClose: log.onClose,
  });
  const port = portOf(server.addr);
  using silent = await dial(port);
  using chatty = await dial(port);
  await until(() => server.sessions.size === 2);
  const [silentSession, chattySession] = [...server.sessions];
  const deadline = performance.now() + 600;
  while (performance.now() < deadline) {
    await writeAll(chatty, utf8("hi\n"));
    await delay(60);
  }
  assert.equal(
    log.closes.get(silentSession!.id)?.reason,
    CloseReason.HeartbeatTimeout,
  );
  assert.equal(chattySession!.state, "open");
  assert.equal(chattySession!.bytesOut, 0, "a talking peer is never pinged");
  assert.equal(
    new TextDecoder().decode(await readToEnd(silent, 2000)),
    "PING\nPING\n",
  );
});

Deno.test("idleTimeout counts a frame the codec swallows (a blank JSON line) as a sign of life", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: json(),
    idleTimeout: 250,
    onClose: log.onClose,
  });
  using conn = await dial(server);
  const deadline = performance.now() + 700;
  while (performance.now() < deadline) {
    await writeAll(conn, utf8("\n")); // json() documents blank lines as keepalives
    await delay(60);
  }
  assert.equal(log.closes.size, 0, JSON.stringify([...log.closes]));
});

Deno.test("idleTimeout still reaps a peer that stops reading while bytes are queued for it", async () => {
  const log = closeLog();
  await using server = testServer({
    codec: lengthPrefixed(),
    idleTimeout: 300,
    outboundBudget: 64 << 20,
    closeTimeout: 100,
    onClose: log.onClose,
    onOpen: (session) => {
      // Far more than the kernel buffers hold: the queue gets stuck.
      const payload = new Uint8Array(65536 - 4);
      for (let i = 0; i < 512; i++) session.send(payload);
    },
  });
  using conn = await dial(server);
  await until(() => log.closes.size === 1, 8000, "the idle close");
  assert.equal(log.closes.get(1)?.reason, CloseReason.IdleTimeout);
  conn.close();
});

Deno.test("A peer that never reads cannot get an innocent broadcaster reaped (the seed's bug)", async () => {
  // A Unix socket keeps kernel buffers small, so the stuck peer really is
  // stuck within the test's few megabytes.
  const path = await Deno.makeTempFile({ suffix: ".sock" });
  await Deno.remove(path);
  const log = closeLog();
  const LINE = "m".repeat(32 * 1024);
  const server = listen({
    transport: "unix",
    path,
    codec: lines(),
    idleTimeout: 300,
    outboundBudget: 256 * 1024,
    // Flow control pauses the sender while the stuck peer holds it back; cut
    // the stuck peer well within the reader's idle timeout (a reader that
    // never talks is reaped by a room that stays quiet for 300 ms).
    drainTimeout: 100,
    onClose: log.onClose,
    onMessage: (session, line) => {
      server.sessions.broadcast(line, { except: session });
    },
  });
  try {
    const open = () => Deno.connect({ transport: "unix", path });
    using sender = await open();
    await until(() => server.sessions.size === 1);
    using reader = await open();
    await until(() => server.sessions.size === 2);
    using _stuck = await open(); // never reads, never writes
    await until(() => server.sessions.size === 3);
    const [senderSession, readerSession, stuckSession] = [...server.sessions];
    const lineReader = new LineReader(reader);
    let received = 0;
    const reading = (async () => {
      while (received < 100) {
        const line = await lineReader.next(5000);
        if (line !== LINE) break;
        received++;
      }
    })();
    // 3.2 MB over a second, far more than the stuck peer's buffers and
    // budget take: in the seed, this stalls the sender's broadcast and the
    // reaper then disconnects the sender.
    for (let i = 0; i < 100; i++) {
      await writeAll(sender, utf8(`${LINE}\n`));
      await delay(10);
    }
    await reading;
    assert.equal(received, 100, "the reader got every broadcast");
    assert.equal(stuckSession!.closeReason, CloseReason.SlowConsumer);
    assert.equal(senderSession!.state, "open", "the sender was reaped");
    assert.equal(readerSession!.state, "open", "the reader was reaped");
  } finally {
    await server.shutdown();
  }
});
