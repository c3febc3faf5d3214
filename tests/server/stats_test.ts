// Server.stats() on real sockets: exact traffic counters, closes by reason
// for every policy, refusals, dropped frames, all surviving session closes.
import assert from "node:assert/strict";
import { CloseReason, lines, microSocket } from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import { delay, LineReader, until, utf8, writeAll } from "../_util.ts";

Deno.test("stats() counts frames and bytes in and out exactly, before and after sessions close", async () => {
  await using server = testServer({
    codec: lines(),
    onMessage: (session, line) => void session.send(`re: ${line}`),
  });
  const port = portOf(server.addr);
  const sent = ["a", "bb", "ccc", "héllo", ""];
  const bytesIn = sent.reduce((n, line) => n + utf8(line).length + 1, 0);
  const bytesOut = sent.reduce(
    (n, line) => n + utf8(`re: ${line}`).length + 1,
    0,
  );
  const conns = [await dial(port), await dial(port)];
  for (const conn of conns) {
    const reader = new LineReader(conn);
    await writeAll(conn, utf8(sent.map((line) => `${line}\n`).join("")));
    for (const line of sent) assert.equal(await reader.next(), `re: ${line}`);
  }
  const live = server.stats();
  assert.equal(live.sessionsOpen, 2);
  assert.equal(live.sessionsTotal, 2);
  assert.equal(live.framesIn, 2 * sent.length);
  assert.equal(live.bytesIn, 2 * bytesIn);
  assert.equal(live.framesOut, 2 * sent.length);
  assert.equal(live.bytesOut, 2 * bytesOut);
  assert.equal(live.framesDropped, 0);
  assert.deepEqual(live.closedByReason, {});
  for (const conn of conns) conn.close();
  await until(() => server.stats().sessionsOpen === 0);
  const after = server.stats();
  // Closed sessions' counters are kept, not lost nor counted twice.
  assert.deepEqual(
    { ...after, closedByReason: {}, sessionsOpen: 2 },
    { ...live, closedByReason: {} },
  );
  assert.deepEqual(after.closedByReason, { [CloseReason.Eof]: 2 });
});

Deno.test("stats() counts closes by reason for every policy, and refusals by cause", async () => {
  let veto = false;
  const server = testServer({
    codec: lines({ maxLineBytes: 32 }),
    idleTimeout: 600,
    frameTimeout: 250,
    outboundBudget: 8192,
    drainTimeout: 300,
    maxConnectionsPerIp: 9,
    onAccept: () => !veto,
    onError: () => {},
    onMessage: (session, line) => {
      if (line === "flood") {
        // More than the kernel's buffers take for a peer that never reads
        // (one big frame is taken whole), then sends the budget refuses:
        // the peer doesn't drain, so drainTimeout cuts it.
        session.send("x".repeat(8 << 20));
        for (let i = 0; i < 100; i++) session.send("x".repeat(1000));
      } else if (line === "ping") {
        session.send("pong");
      } else if (line === "kick") {
        void session.close("kicked");
      }
    },
  });
  const port = portOf(server.addr);
  const peers = {
    tooLarge: await dial(port),
    invalid: await dial(port),
    silent: await dial(port),
    loris: await dial(port),
    slow: await dial(port),
    kicked: await dial(port),
    leaving: await dial(port),
    resetting: await dial(port),
    staying: await dial(port),
  };
  await until(() => server.sessions.size === 9);
  // Over the per-IP limit, then vetoed.
  using extra = await dial(port);
  assert.equal(await new LineReader(extra).next(), null);
  veto = true;
  peers.leaving.close();
  await until(() => server.sessions.size === 8);
  using vetoed = await dial(port);
  assert.equal(await new LineReader(vetoed).next(), null);
  veto = false;

  await writeAll(peers.tooLarge, utf8("y".repeat(100) + "\n"));
  await writeAll(peers.invalid, new Uint8Array([0xc3, 0x28, 0x0a]));
  await writeAll(peers.loris, utf8("GET / HT"));
  await writeAll(peers.slow, utf8("flood\n"));
  await writeAll(peers.kicked, utf8("kick\n"));
  // A reset: the peer closes with our bytes unread.
  await writeAll(peers.resetting, utf8("ping\n"));
  await delay(100);
  peers.resetting.close();
  const deadline = performance.now() + 1200;
  while (performance.now() < deadline) {
    await writeAll(peers.staying, utf8("still here\n"));
    await delay(100);
  }
  await until(() => server.sessions.size === 1, 5000, "the policies");
  await server.shutdown({ timeout: 100 });
  const stats = server.stats();
  // Deno reports a reset peer's end as EOF or as a reset, depending on
  // timing: count the two together.
  const { eof = 0, reset = 0, ...byReason } = stats.closedByReason;
  assert.equal(eof + reset, 2);
  assert.deepEqual(byReason, {
    [CloseReason.FrameTooLarge]: 1,
    [CloseReason.DecodeError]: 1,
    [CloseReason.IdleTimeout]: 1,
    [CloseReason.FrameTimeout]: 1,
    [CloseReason.SlowConsumer]: 1,
    kicked: 1,
    [CloseReason.ServerShutdown]: 1,
  });
  assert.deepEqual(stats.rejected, {
    maxConnections: 0,
    maxConnectionsPerIp: 1,
    vetoed: 1,
  });
  // A TCP server has no WebSocket handshake counters.
  assert.equal(stats.websocket, undefined);
  assert.equal(stats.sessionsTotal, 9);
  assert.equal(stats.sessionsOpen, 0);
  for (const conn of Object.values(peers)) {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
});

Deno.test("stats() counts the frames the drop policy refused, and keeps them after the session closes", async () => {
  await using server = testServer({
    codec: lines(),
    outboundBudget: 64 * 1024,
    overflow: "drop",
    closeTimeout: 100,
  });
  using _stuck = await dial(server); // never reads
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  let refused = 0;
  const line = "z".repeat(1023);
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 1000; i++) if (!session.send(line)) refused++;
    await delay(5);
  }
  assert.ok(refused > 0, "the budget was hit");
  assert.equal(session.state, "open");
  assert.equal(server.stats().framesDropped, refused);
  assert.ok(session.queuedBytes <= 64 * 1024);
  await session.close();
  assert.equal(server.stats().framesDropped, refused);
  assert.equal(server.stats().framesOut, 20000 - refused);
});

Deno.test("stats() counts heartbeat timeouts and the pings that preceded them", async () => {
  await using server = testServer({
    codec: microSocket(),
    heartbeatInterval: 100,
    heartbeatMaxMissed: 2,
  });
  using conn = await dial(server);
  await until(
    () => server.stats().closedByReason[CloseReason.HeartbeatTimeout] === 1,
    5000,
  );
  const stats = server.stats();
  assert.equal(stats.framesOut, 2, "two pings");
  assert.equal(stats.bytesOut, 20);
  conn.close();
});

Deno.test("stats() returns a snapshot that callers cannot alter", async () => {
  await using server = testServer();
  const stats = server.stats();
  stats.sessionsTotal = 42;
  stats.rejected.vetoed = 7;
  stats.closedByReason["made up"] = 1;
  const fresh = server.stats();
  assert.equal(fresh.sessionsTotal, 0);
  assert.equal(fresh.rejected.vetoed, 0);
  assert.deepEqual(fresh.closedByReason, {});
});
