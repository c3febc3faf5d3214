// Hostile peers: fuzzed decoders (in memory and over sockets), connection
// churn, and peers that vanish mid-frame, mid-write and during shutdown. The
// server must never throw out of its loop, must stay within its memory, and
// must not let one peer harm another.
import assert from "node:assert/strict";
import {
  CloseReason,
  connect,
  DecodeError,
  type Decoder,
  lengthPrefixed,
  lines,
  TruncatedFrameError,
} from "../../mod.ts";
import { FUZZ_CASES, garbage, pick } from "./_hostile_util.ts";
import { dial, portOf, testServer } from "../_server.ts";
import {
  delay,
  LineReader,
  seededRandom,
  until,
  utf8,
  within,
  writeAll,
} from "../_util.ts";

/**
 * Feeds `bytes` to `decoder` in random chunks through a reused scratch
 * buffer (as a session does), checking `buffered` after every call.
 * Returns the messages and the error that stopped decoding, if any.
 */
function feedChunks(
  decoder: Decoder<unknown>,
  bytes: Uint8Array,
  random: () => number,
  bound: number,
): { messages: unknown[]; error: unknown } {
  const messages: unknown[] = [];
  const emit = (message: unknown) => void messages.push(message);
  const scratch = new Uint8Array(4096);
  let offset = 0;
  while (offset < bytes.length) {
    const size = Math.min(
      1 + Math.floor(random() * (random() < 0.5 ? 8 : 4096)),
      bytes.length - offset,
    );
    scratch.set(bytes.subarray(offset, offset + size));
    offset += size;
    try {
      decoder.decode(scratch.subarray(0, size), emit);
    } catch (error) {
      return { messages, error };
    } finally {
      scratch.fill(0xaa, 0, size);
    }
    assert.ok(
      decoder.buffered >= 0 && decoder.buffered <= bound,
      `buffered ${decoder.buffered} > ${bound}`,
    );
  }
  return { messages, error: undefined };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

for (const fuzz of FUZZ_CASES) {
  Deno.test(`Fuzz: the ${fuzz.name} decoder survives random bytes, random chunking and hostile headers with bounded memory`, () => {
    const random = seededRandom(0x5eed + fuzz.name.length);
    const codec = fuzz.codec();
    let errors = 0;
    for (let run = 0; run < 300; run++) {
      // Valid frames first, then a mix of valid frames, garbage and
      // hostile headers.
      const valid = Array.from(
        { length: Math.floor(random() * 8) },
        () => fuzz.message(random),
      );
      const parts = valid.map((message) => codec.encode(message));
      const prefix = concat(parts);
      const tail: Uint8Array[] = [];
      for (let i = 0, n = Math.floor(random() * 6); i < n; i++) {
        const roll = random();
        if (roll < 0.4) tail.push(garbage(random, Math.floor(random() * 600)));
        else if (roll < 0.7) tail.push(pick(random, fuzz.hostile));
        else tail.push(codec.encode(fuzz.message(random)));
      }
      const decoder = codec.decoder();
      const { messages, error } = feedChunks(
        decoder,
        concat([prefix, ...tail]),
        random,
        fuzz.bound,
      );
      // Whatever follows, the valid prefix decodes exactly.
      assert.deepEqual(
        structuredClone(messages.slice(0, valid.length)),
        valid,
        `run ${run}`,
      );
      if (error !== undefined) {
        errors++;
        assert.ok(
          error instanceof DecodeError,
          `run ${run}: ${error} is not a DecodeError`,
        );
      }
    }
    assert.ok(errors > 50, `only ${errors} runs hit an error`);
  });
}

Deno.test("Fuzz: 8 MiB of garbage never makes any decoder hold more than its limit", () => {
  const random = seededRandom(99);
  for (const fuzz of FUZZ_CASES) {
    let decoder = fuzz.codec().decoder();
    let fed = 0;
    let restarts = 0;
    while (fed < 8 << 20) {
      const chunk = garbage(random, 65536);
      fed += chunk.length;
      try {
        decoder.decode(chunk, () => {});
      } catch (error) {
        assert.ok(error instanceof DecodeError, `${fuzz.name}: ${error}`);
        decoder = fuzz.codec().decoder(); // a new session would start over
        restarts++;
      }
      assert.ok(decoder.buffered <= fuzz.bound, fuzz.name);
    }
    assert.ok(restarts > 0, `${fuzz.name} accepted 8 MiB of garbage`);
  }
});

for (const fuzz of FUZZ_CASES) {
  Deno.test(`Fuzz over sockets (${fuzz.name}): hostile peers are closed, never crash the server, and an honest peer is unaffected`, async () => {
    const errors: unknown[] = [];
    const reasons: string[] = [];
    await using server = testServer({
      codec: fuzz.codec(),
      outboundBudget: 64 * 1024,
      onMessage: (session, message) => void session.send(message),
      onError: (error) => void errors.push(error),
      onClose: (_session, reason) => void reasons.push(reason),
    });
    const port = portOf(server.addr);
    const before = Deno.memoryUsage().heapUsed;
    // The honest peer: round trips in order while the others attack.
    const random = seededRandom(7 + fuzz.name.length);
    const replies: unknown[] = [];
    await using honest = await connect({
      port,
      codec: fuzz.codec(),
      onMessage: (_session, message) => void replies.push(message),
    });
    const hostile = Array.from({ length: 12 }, async (_, i) => {
      const r = seededRandom(1000 * i + fuzz.name.length);
      using conn = await dial(port);
      const codec = fuzz.codec();
      try {
        for (let k = 0; k < 40; k++) {
          const roll = r();
          const bytes = roll < 0.5
            ? codec.encode(fuzz.message(r))
            : roll < 0.8
            ? garbage(r, 1 + Math.floor(r() * 2048))
            : pick(r, fuzz.hostile);
          await conn.write(bytes);
          if (r() < 0.2) await delay(1);
        }
      } catch {
        // Closed by the server: expected.
      }
    });
    const sent: unknown[] = [];
    for (let i = 0; i < 200; i++) {
      const message = fuzz.message(random);
      sent.push(message);
      assert.ok(honest.send(message));
      if (i % 20 === 19) await until(() => replies.length === sent.length);
    }
    await Promise.all(hostile);
    await until(() => replies.length === sent.length, 5000, "the echoes");
    assert.deepEqual(structuredClone(replies), sent);
    await until(
      () => server.sessions.size === 1,
      5000,
      "hostile sessions to go",
    );
    await until(() => reasons.length === 12, 5000, "their closes");
    const allowed = new Set<string>([
      CloseReason.DecodeError,
      CloseReason.FrameTooLarge,
      CloseReason.Eof,
      CloseReason.Reset,
      CloseReason.SlowConsumer,
    ]);
    for (const reason of reasons) assert.ok(allowed.has(reason), reason);
    for (const error of errors) {
      assert.ok(error instanceof DecodeError, `onError got ${error}`);
    }
    const grown = Deno.memoryUsage().heapUsed - before;
    assert.ok(grown < 64 << 20, `heap grew by ${grown} bytes`);
  });
}

Deno.test("Churn: 2,000 connect, send, abrupt-close cycles leave the manager, every room and per-IP slot empty", async () => {
  const perSession = new Map<number, { nick: string }>();
  await using server = testServer({
    codec: lines(),
    maxConnectionsPerIp: 200, // 50 peers at a time, and the closing ones
    onOpen: (session) => {
      perSession.set(session.id, { nick: `guest${session.id}` });
      server.sessions.join(session, "all");
      server.sessions.join(session, `room${session.id % 7}`);
      session.send("welcome"); // unread by half the peers: their close is a reset
    },
    onMessage: (session, line) => {
      server.sessions.broadcast(`${session.id}: ${line}`, {
        room: `room${session.id % 7}`,
        except: session,
      });
    },
    onClose: (session) => void perSession.delete(session.id),
  });
  const port = portOf(server.addr);
  const before = Deno.memoryUsage().heapUsed;
  const CYCLES = 2000;
  let next = 0;
  const worker = async () => {
    while (next < CYCLES) {
      const i = next++;
      const conn = await dial(port);
      try {
        await conn.write(utf8(i % 3 === 0 ? "hello\n" : "half a li"));
        if (i % 2 === 0) await delay(0);
      } catch {
        // Reset by the server's own close racing ours: fine.
      }
      conn.close();
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  // Connections closed before they were accepted are still accepted (and
  // close at once), so every cycle ends up counted, as a session or as a
  // refusal: the peers don't wait to be accepted, so the accept loop can run
  // ahead of the closes and meet the per-IP limit.
  await until(
    () => {
      const { sessionsTotal, sessionsOpen } = server.stats();
      const refused = server.stats().rejected.maxConnectionsPerIp;
      return sessionsTotal + refused === CYCLES && sessionsOpen === 0;
    },
    10000,
    "every cycle to be accepted and closed",
  );
  const stats = server.stats();
  assert.ok(stats.sessionsTotal > CYCLES / 2);
  assert.equal(
    Object.values(stats.closedByReason).reduce((a, b) => a + b, 0),
    stats.sessionsTotal,
  );
  for (const reason of Object.keys(stats.closedByReason)) {
    assert.ok(
      reason === CloseReason.Eof || reason === CloseReason.Reset,
      reason,
    );
  }
  assert.equal(server.sessions.size, 0);
  assert.deepEqual(server.sessions.rooms(), []);
  assert.equal(server.sessions.members("all").size, 0);
  assert.equal(perSession.size, 0);
  // Every per-IP slot was released: the full allowance is available again.
  const conns = await Promise.all(
    Array.from({ length: 200 }, () => dial(port)),
  );
  const greeted = await Promise.all(
    conns.map((conn) => new LineReader(conn).next(5000)),
  );
  assert.ok(greeted.every((line) => line === "welcome"));
  for (const conn of conns) conn.close();
  await until(() => server.stats().sessionsOpen === 0);
  const grown = Deno.memoryUsage().heapUsed - before;
  assert.ok(grown < 64 << 20, `heap grew by ${grown} bytes`);
});

Deno.test("A peer that disconnects mid-frame is closed as a truncated frame (or reset) and its partial frame never reaches a handler", async () => {
  const messages: Uint8Array[] = [];
  const errors: unknown[] = [];
  const reasons: string[] = [];
  await using server = testServer({
    codec: lengthPrefixed(),
    onMessage: (_session, payload) => void messages.push(payload),
    onError: (error) => void errors.push(error),
    onClose: (_session, reason) => void reasons.push(reason),
  });
  const port = portOf(server.addr);
  // A header that promises 1000 bytes, then 10 of them, then gone.
  for (const abrupt of [false, true]) {
    const conn = await dial(port);
    await writeAll(
      conn,
      new Uint8Array([0, 0, 3, 0xe8, ...new Uint8Array(10)]),
    );
    if (abrupt) {
      // Unread bytes at close make it a reset.
      await until(() => server.sessions.size === 1);
      [...server.sessions][0]!.send(new Uint8Array(100));
      await delay(20);
    }
    conn.close();
    await until(() => reasons.length === (abrupt ? 2 : 1));
  }
  assert.deepEqual(messages, []);
  // A clean end inside a frame is a truncated frame, said once, not a
  // silent "eof"; a reset is the network's fault and reports nothing.
  assert.equal(reasons[0], CloseReason.TruncatedFrame);
  assert.ok(
    reasons[1] === CloseReason.TruncatedFrame ||
      reasons[1] === CloseReason.Reset,
    reasons[1],
  );
  assert.equal(
    errors.length,
    reasons.filter((r) => r === CloseReason.TruncatedFrame).length,
  );
  for (const error of errors) assert.ok(error instanceof TruncatedFrameError);
});

Deno.test("A peer that disconnects mid-write releases its queue; flush() says false; other sessions carry on", async () => {
  const reasons = new Map<number, string>();
  await using server = testServer({
    codec: lengthPrefixed({ maxFrameBytes: 65536 }),
    outboundBudget: 32 << 20,
    onClose: (session, reason) => void reasons.set(session.id, reason),
  });
  const port = portOf(server.addr);
  const leaver = await dial(port);
  const got: number[] = [];
  await using _stayer = await connect({
    port,
    codec: lengthPrefixed({ maxFrameBytes: 65536 }),
    onMessage: (_session, payload) => void got.push(payload.length),
  });
  await until(() => server.sessions.size === 2);
  const [leaving, staying] = [...server.sessions];
  const frame = new Uint8Array(65536 - 4);
  for (let i = 0; i < 256; i++) leaving!.send(frame); // 16 MiB
  const flushed = leaving!.flush();
  await leaver.read(new Uint8Array(65536)); // a little, then gone
  leaver.close();
  assert.equal(await within(flushed, 5000, "the flush"), false);
  await until(() => reasons.has(leaving!.id));
  const reason = reasons.get(leaving!.id)!;
  assert.ok(reason === CloseReason.Reset || reason === CloseReason.Eof, reason);
  assert.equal(leaving!.queuedBytes, 0);
  assert.equal(leaving!.send(frame), false);
  for (let i = 0; i < 10; i++) staying!.send(new Uint8Array(i));
  await until(() => got.length === 10);
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

Deno.test("Peers that disconnect during shutdown let it finish at once instead of at the timeout", async () => {
  const server = testServer({
    codec: lengthPrefixed({ maxFrameBytes: 65536 }),
    outboundBudget: 32 << 20,
  });
  const port = portOf(server.addr);
  const conns = await Promise.all([1, 2, 3, 4].map(() => dial(port)));
  await until(() => server.sessions.size === 4);
  const frame = new Uint8Array(65536 - 4);
  for (const session of server.sessions) {
    for (let i = 0; i < 128; i++) session.send(frame); // 8 MiB each
  }
  const started = performance.now();
  const stopping = server.shutdown({ timeout: 20000 });
  await delay(50);
  for (const conn of conns) conn.close(); // gone with megabytes unread
  await within(stopping, 10000, "the shutdown");
  const took = performance.now() - started;
  assert.ok(took < 5000, `shutdown took ${took} ms`);
  const stats = server.stats();
  assert.equal(stats.sessionsOpen, 0);
  assert.equal(stats.closedByReason[CloseReason.ServerShutdown], 4);
});
