import assert from "node:assert/strict";
import {
  CloseReason,
  FrameTooLargeError,
  lengthPrefixed,
  lines,
  Session,
} from "../../mod.ts";
import { dial, testServer } from "../_server.ts";
import {
  delay,
  LineReader,
  readBytes,
  readToEnd,
  seededRandom,
  until,
  utf8,
  within,
  writeAll,
} from "../_util.ts";

/** A connected pair: `session` wraps the server end, `peer` is raw. */
async function pair<In, Out>(
  options: ConstructorParameters<typeof Session<unknown, In, Out>>[1],
): Promise<
  { session: Session<unknown, In, Out>; peer: Deno.TcpConn } & AsyncDisposable
> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = await dial(listener.addr.port);
  const session = new Session(await listener.accept(), options);
  return {
    session,
    peer,
    async [Symbol.asyncDispose]() {
      try {
        peer.close();
      } catch { /* closed by the test */ }
      await session.close();
    },
  };
}

Deno.test("Session.send() from many concurrent tasks delivers large frames intact and in order", async () => {
  const codec = lengthPrefixed({ maxFrameBytes: 1 << 20 });
  await using p = await pair({ codec, outboundBudget: 256 << 20 });
  const TASKS = 8;
  const PER_TASK = 40;
  const SIZE = 48 * 1024;
  // Each frame: [task, seq, fill...], fill derived from both.
  const tasks = Array.from({ length: TASKS }, async (_, task) => {
    for (let seq = 0; seq < PER_TASK; seq++) {
      const frame = new Uint8Array(SIZE).fill((task * 31 + seq) & 0xff);
      frame[0] = task;
      frame[1] = seq;
      assert.equal(p.session.send(frame), true);
      if (seq % 3 === task % 3) await delay(0);
    }
  });
  await Promise.all(tasks);

  const decoder = codec.decoder();
  const nextSeq = new Array<number>(TASKS).fill(0);
  let received = 0;
  const buffer = new Uint8Array(65536);
  while (received < TASKS * PER_TASK) {
    const n = await within(p.peer.read(buffer), 5000, "frames");
    assert.notEqual(n, null);
    decoder.decode(buffer.subarray(0, n!), (frame) => {
      const task = frame[0]!;
      const seq = frame[1]!;
      assert.equal(frame.length, SIZE);
      assert.equal(seq, nextSeq[task], `task ${task} out of order`);
      nextSeq[task]!++;
      const fill = (task * 31 + seq) & 0xff;
      for (let i = 2; i < SIZE; i++) {
        if (frame[i] !== fill) assert.fail(`corrupted byte ${i}`);
      }
      received++;
    });
  }
  assert.deepEqual(nextSeq, new Array(TASKS).fill(PER_TASK));
});

Deno.test("Session coalesces frames queued in one turn into one write", async () => {
  await using p = await pair({ codec: lines() });
  for (let i = 0; i < 100; i++) p.session.send(`line ${i}`);
  const expected = Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join(
    "",
  );
  const got = await readBytes(p.peer, expected.length);
  assert.equal(new TextDecoder().decode(got), expected);
  assert.equal(p.session.framesOut, 100);
  assert.equal(p.session.bytesOut, expected.length);
  assert.equal(p.session.writes, 1);
});

Deno.test("Session.send() after close returns false and never throws", async () => {
  await using p = await pair({ codec: lines() });
  const closing = p.session.close("bye");
  assert.notEqual(p.session.state, "open");
  assert.equal(p.session.send("late"), false);
  await closing;
  assert.equal(p.session.state, "closed");
  assert.equal(p.session.send("later"), false);
  assert.equal(p.session.sendFrame(utf8("x\n")), false);
  assert.equal(await p.session.closed, "bye");
});

Deno.test("Session.close() is idempotent and keeps the first reason", async () => {
  await using p = await pair({ codec: lines() });
  const first = p.session.close("first");
  const second = p.session.close("second");
  assert.equal(first, second);
  await first;
  await p.session.close("third");
  assert.equal(p.session.closeReason, "first");
  assert.equal(await p.session.closed, "first");
});

Deno.test("Session answers a peer that half-closed before the replies were ready", async () => {
  await using p = await pair({
    codec: lines(),
    onMessage: async (session, line) => {
      await delay(line === "slow" ? 50 : 0);
      session.send(`re: ${line}`);
    },
  });
  await writeAll(p.peer, utf8("one\nslow\nthree\n"));
  await p.peer.closeWrite();
  const text = new TextDecoder().decode(await readToEnd(p.peer));
  assert.equal(text, "re: one\nre: slow\nre: three\n");
  assert.equal(await p.session.closed, CloseReason.Eof);
});

Deno.test("Session closes with reason reset when the peer resets the connection", async () => {
  await using p = await pair({ codec: lines() });
  p.session.send("unread data makes the peer's close a reset");
  await delay(20);
  p.peer.close(); // unread bytes in its receive buffer: the kernel sends RST
  const reason = await within(p.session.closed, 5000, "close");
  assert.ok(
    reason === CloseReason.Reset || reason === CloseReason.Eof,
    `unexpected reason ${reason}`,
  );
});

Deno.test("Session handles async handlers one message at a time, in order", async () => {
  const seen: string[] = [];
  let running = 0;
  await using p = await pair({
    codec: lines(),
    onMessage: async (_session, line) => {
      running++;
      assert.equal(running, 1, "handlers overlapped");
      await delay(Number(line) % 3);
      seen.push(line);
      running--;
    },
  });
  const sent = Array.from({ length: 30 }, (_, i) => String(i));
  await writeAll(p.peer, utf8(sent.join("\n") + "\n"));
  await until(() => seen.length === 30);
  assert.deepEqual(seen, sent);
});

Deno.test("Session reports a throwing or rejecting handler and keeps working", async () => {
  const errors: unknown[] = [];
  await using p = await pair({
    codec: lines(),
    onMessage: (session, line) => {
      if (line === "throw") throw new Error("sync boom");
      if (line === "reject") return Promise.reject(new Error("async boom"));
      session.send(`ok ${line}`);
    },
    onError: (error, session) => {
      assert.ok(session instanceof Session);
      errors.push(error);
    },
  });
  const reader = new LineReader(p.peer);
  await writeAll(p.peer, utf8("throw\nreject\nstill here\n"));
  assert.equal(await reader.next(), "ok still here");
  assert.deepEqual(
    errors.map((e) => (e as Error).message),
    ["sync boom", "async boom"],
  );
  assert.equal(p.session.state, "open");
});

Deno.test("Session gives onError a chance to reply before closing on a decode error", async () => {
  await using p = await pair({
    codec: lines({ maxLineBytes: 16 }),
    onError: (error, session) => {
      if (error instanceof FrameTooLargeError) session.send("! line too long");
    },
  });
  await writeAll(p.peer, utf8("x".repeat(100) + "\n"));
  const text = new TextDecoder().decode(await readToEnd(p.peer));
  assert.equal(text, "! line too long\n");
  assert.equal(await p.session.closed, CloseReason.FrameTooLarge);
  assert.ok(p.session.closeError instanceof FrameTooLargeError);
});

Deno.test("Session closes a consumer that never reads once its budget is full and it doesn't drain within drainTimeout", async () => {
  const budget = 256 * 1024;
  await using p = await pair({
    codec: lines(),
    outboundBudget: budget,
    drainTimeout: 500,
  });
  const line = "y".repeat(1000);
  let accepted = 0;
  let peak = 0;
  for (let i = 0; i < 100_000 && p.session.state === "open"; i++) {
    if (p.session.send(line)) accepted++;
    peak = Math.max(peak, p.session.queuedBytes);
    if (i % 100 === 0) await delay(0); // let writes fill the socket buffers
  }
  assert.ok(peak <= budget, `queued ${peak} > budget ${budget}`);
  assert.equal(await p.session.closed, CloseReason.SlowConsumer);
  assert.ok(accepted > 0);
});

Deno.test("Session with overflow 'drop' refuses frames past the budget and stays open", async () => {
  const budget = 64 * 1024;
  await using p = await pair({
    codec: lines(),
    outboundBudget: budget,
    overflow: "drop",
  });
  const line = "z".repeat(1000);
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    if (!p.session.send(line)) refused++;
    assert.ok(p.session.queuedBytes <= budget);
    if (i % 100 === 0) await delay(0);
  }
  assert.ok(refused > 0);
  assert.equal(p.session.framesDropped, refused);
  assert.equal(p.session.state, "open");
});

Deno.test("Session.flush() resolves once queued bytes are written, false if closed first", async () => {
  await using p = await pair({
    codec: lengthPrefixed({ maxFrameBytes: 1 << 22 }),
  });
  p.session.send(new Uint8Array(1 << 20));
  const flushed = p.session.flush();
  const reading = readBytes(p.peer, 4 + (1 << 20));
  assert.equal(await flushed, true);
  assert.equal((await reading).length, 4 + (1 << 20));
  assert.equal(await p.session.flush(), true);

  // A peer that never reads: close() with a short timeout cuts it off.
  p.session.send(new Uint8Array(32 << 20));
  const stuck = p.session.flush();
  await p.session.close("cut", 50);
  assert.equal(await stuck, false);
});

Deno.test("Session data, ids and timestamps are set", async () => {
  const server = testServer({
    data: (session) => ({ nick: `guest${session.id}` }),
  });
  const a = await dial(server);
  const b = await dial(server);
  await until(() => server.sessions.size === 2);
  const [first, second] = [...server.sessions];
  assert.ok(first!.id < second!.id);
  assert.equal(first!.data.nick, `guest${first!.id}`);
  assert.ok(first!.connectedAt <= Date.now());
  assert.equal(first!.remoteAddr.transport, "tcp");
  const before = first!.lastSeen;
  await delay(5);
  await writeAll(a, utf8("ping\n"));
  await until(() => first!.lastSeen > before);
  a.close();
  b.close();
  await server.close();
});

Deno.test("Session closes promptly when writes fail, not after closeTimeout", async () => {
  await using p = await pair({ codec: lines(), closeTimeout: 5000 });
  const sending = setInterval(() => p.session.send("x".repeat(1000)), 1);
  await delay(30);
  p.peer.close(); // unread data: the peer resets, and our writes then fail
  const started = performance.now();
  const reason = await within(p.session.closed, 10_000, "close");
  const took = performance.now() - started;
  clearInterval(sending);
  assert.ok(took < 2000, `closing took ${took} ms (${reason})`);
});

Deno.test("Session turns off Nagle: small frames sent in separate turns don't wait for delayed ACKs", async () => {
  // With Nagle on, the second of two small writes waits for the ACK of the
  // first, which Linux delays by up to 40 ms: 20 rounds would take ~800 ms.
  await using p = await pair({
    codec: lines(),
    onMessage: (session) => {
      session.send("a");
      setTimeout(() => session.send("b"), 0);
    },
  });
  const reader = new LineReader(p.peer);
  const started = performance.now();
  for (let round = 0; round < 20; round++) {
    await writeAll(p.peer, utf8("go\n"));
    assert.equal(await reader.next(), "a");
    assert.equal(await reader.next(), "b");
  }
  const took = performance.now() - started;
  assert.ok(took < 400, `20 rounds took ${took.toFixed(0)} ms`);
});

Deno.test("Session keeps mixed small and large frames intact and in order across pooled chunks", async () => {
  const codec = lengthPrefixed({ maxFrameBytes: 1 << 20 });
  // Two sessions at once, so pooled chunks pass from one to the other.
  await using a = await pair({ codec, outboundBudget: 64 << 20 });
  await using b = await pair({ codec, outboundBudget: 64 << 20 });
  const random = seededRandom(5);
  const COUNT = 3000;
  const sizes = Array.from(
    { length: COUNT },
    () =>
      random() < 0.1
        ? 8000 + Math.floor(random() * 30000)
        : Math.floor(random() * 300),
  );
  const fill = (i: number, size: number) => {
    const frame = new Uint8Array(size);
    for (let k = 0; k < size; k++) frame[k] = (i * 7 + k) & 0xff;
    return frame;
  };
  const check = async (peer: Deno.Conn) => {
    const decoder = codec.decoder();
    const buffer = new Uint8Array(65536);
    let next = 0;
    while (next < COUNT) {
      const n = await within(peer.read(buffer), 5000, "frames");
      assert.notEqual(n, null);
      decoder.decode(buffer.subarray(0, n!), (frame) => {
        assert.equal(frame.length, sizes[next]);
        for (let k = 0; k < frame.length; k++) {
          if (frame[k] !== ((next * 7 + k) & 0xff)) {
            assert.fail(`frame ${next}`);
          }
        }
        next++;
      });
    }
  };
  const reading = Promise.all([check(a.peer), check(b.peer)]);
  for (let i = 0; i < COUNT; i++) {
    a.session.send(fill(i, sizes[i]!));
    b.session.send(fill(i, sizes[i]!));
    if (i % 50 === 0) await delay(0);
  }
  await reading;
});

Deno.test("await session.close() inside onClose does not deadlock, and shutdown finishes", async () => {
  const server = testServer({
    onClose: async (session) => {
      await session.close("again");
    },
  });
  using _conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  await within(
    session.close("bye"),
    2000,
    "close() with onClose awaiting close()",
  );
  assert.equal(await session.closed, "bye");
  await within(server.shutdown(), 2000, "shutdown");
});

Deno.test("A handler that returns null (or any non-promise) is fine", async () => {
  const errors: unknown[] = [];
  const got: string[] = [];
  await using server = testServer({
    onMessage: (session, line) => {
      got.push(line);
      return session.send(line) ? null : 0;
    },
    onError: (error) => void errors.push(error),
  });
  using conn = await dial(server);
  await writeAll(conn, utf8("a\nb\n"));
  const reader = new LineReader(conn);
  assert.equal(await reader.next(), "a");
  assert.equal(await reader.next(), "b");
  assert.deepEqual(got, ["a", "b"]);
  assert.deepEqual(errors, []);
});
