// Flow control on real sockets: a fast sender never costs the room its
// messages, a reader that stops reading is cut by time or budget and the
// producers it held back resume, and rate limits throttle or close.
import assert from "node:assert/strict";
import {
  CloseReason,
  connect,
  lengthPrefixed,
  lines,
  Router,
  type Server,
  type ServerOptions,
  type Session,
} from "../../mod.ts";
import { dial, testServer } from "../_server.ts";
import { delay, LineReader, until, utf8, within, writeAll } from "../_util.ts";

const FIXTURE = new URL("../_fixtures/room_server.ts", import.meta.url);

interface RoomStats {
  rss: number;
  sessionsOpen: number;
  closedByReason: Record<string, number>;
}

/** The room server fixture in its own process, with a control connection. */
async function startRoomServer(options: object) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FIXTURE.pathname, JSON.stringify(options)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await within(stdout.read(), 10000, "the port");
    if (done) throw new Error("room server exited");
    text += value;
  }
  const port = JSON.parse(text.slice(0, text.indexOf("\n"))).port as number;
  const control = await dial(port);
  const replies = new LineReader(control);
  return {
    port,
    async stats(): Promise<RoomStats> {
      await writeAll(control, utf8("/stats\n"));
      return JSON.parse((await replies.next(20000))!);
    },
    async stop(): Promise<void> {
      control.close();
      child.kill("SIGTERM");
      await child.status;
      await stdout.cancel();
    },
  };
}

/** A 1000-byte line (newline included) carrying `seq`. */
function floodLine(seq: number, size: number): string {
  const head = `${seq} `;
  return head + "x".repeat(size - 1 - head.length) + "\n";
}

/**
 * Reads `count` lines as fast as it can and checks that they carry 0, 1, 2…
 * in order; resolves with how many arrived in order.
 */
async function readSequence(
  conn: Deno.Conn,
  count: number,
  ms: number,
): Promise<number> {
  const buffer = new Uint8Array(65536);
  let expected = 0;
  let atLineStart = true;
  let number = 0;
  let inNumber = false;
  const deadline = Date.now() + ms;
  while (expected < count) {
    const n = await within(
      conn.read(buffer),
      Math.max(1, deadline - Date.now()),
      `line ${expected} of ${count}`,
    );
    if (n === null) return expected;
    for (let i = 0; i < n; i++) {
      const byte = buffer[i]!;
      if (atLineStart) {
        atLineStart = false;
        inNumber = true;
        number = 0;
      }
      if (inNumber) {
        if (byte >= 48 && byte <= 57) {
          number = number * 10 + byte - 48;
          continue;
        }
        inNumber = false;
        if (number !== expected) {
          throw new Error(`expected line ${expected}, got ${number}`);
        }
      }
      if (byte === 10) {
        expected++;
        atLineStart = true;
      }
    }
  }
  return expected;
}

async function joinRoom(port: number): Promise<Deno.TcpConn> {
  const conn = await dial(port);
  await writeAll(conn, utf8("/join\n"));
  return conn;
}

for (const stuckCount of [0, 4]) {
  Deno.test(
    `An unpaced sender's 20,000 1 KB lines reach all 20 readers in order${
      stuckCount > 0
        ? `, ${stuckCount} never-reading peers are cut and memory stays bounded`
        : ""
    }`,
    async () => {
      const LINES = 20_000;
      const budget = 1024 * 1024;
      const server = await startRoomServer({
        outboundBudget: budget,
        drainTimeout: 2000, // a healthy reader on a busy machine is never taken for a stuck one
      });
      const conns: Deno.TcpConn[] = [];
      try {
        const readers: Deno.TcpConn[] = [];
        for (let i = 0; i < 20; i++) readers.push(await joinRoom(server.port));
        conns.push(...readers);
        for (let i = 0; i < stuckCount; i++) {
          conns.push(await joinRoom(server.port));
        }
        const sender = await dial(server.port);
        conns.push(sender);
        for (let tries = 0;; tries++) {
          if ((await server.stats()).sessionsOpen === conns.length + 1) break;
          assert.ok(tries < 100, "everyone connected");
          await delay(50);
        }
        // Joined: wait until the server has read every /join.
        await delay(100);
        const baseline = (await server.stats()).rss;

        let text = "";
        for (let seq = 0; seq < LINES; seq++) text += floodLine(seq, 1000);
        const flood = utf8(text);
        let peak = baseline;
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            peak = Math.max(peak, (await server.stats()).rss);
            await delay(100);
          }
        })();
        const received = readers.map((conn) =>
          readSequence(conn, LINES, 60000)
        );
        // As fast as TCP lets it: no pacing, one big write.
        await writeAll(sender, flood);
        const counts = await Promise.all(received);
        sampling = false;
        await sampler;

        const stats = await server.stats();
        assert.deepEqual(
          counts,
          readers.map(() => LINES),
          `lines lost; closes: ${JSON.stringify(stats.closedByReason)}`,
        );
        assert.equal(
          stats.closedByReason[CloseReason.SlowConsumer] ?? 0,
          stuckCount,
          JSON.stringify(stats.closedByReason),
        );
        assert.equal(stats.sessionsOpen, 22, "a healthy session was closed");
        const growth = peak - baseline;
        const bound = stuckCount * budget + 20 * 1024 * 1024;
        assert.ok(
          growth <= bound,
          `RSS grew by ${(growth / 1048576).toFixed(1)} MB (bound ${
            (bound / 1048576).toFixed(1)
          } MB)`,
        );
      } finally {
        for (const conn of conns) conn.close();
        await server.stop();
      }
    },
  );
}

// The in-process cases: a producer's handler sends 12.8 MB to a peer that
// never reads. The producer must pause (flow control) until the stuck peer
// is cut by its drainTimeout, then go on reading.
const BIG = new Uint8Array(65536 - 4);

type Handlers = Partial<ServerOptions<unknown, Uint8Array, Uint8Array>>;

interface Scenario {
  server: Server<unknown, Uint8Array>;
  stuck: Session<unknown, Uint8Array> | undefined;
  /** Sends 200 × 64 KiB to the stuck session by id (the seed's WriteByid). */
  flood(from: Session<unknown, Uint8Array>): void;
}

async function pausesProducer(
  wire: (scenario: Scenario) => Handlers,
  options: { triggerFromOpen?: boolean } = {},
): Promise<void> {
  const scenario: Scenario = {
    server: undefined as unknown as Server<unknown, Uint8Array>,
    stuck: undefined,
    flood(from) {
      const stuck = scenario.stuck;
      if (stuck === undefined || from === stuck) return;
      for (let i = 0; i < 200; i++) {
        scenario.server.sessions.send(stuck.id, BIG);
      }
    },
  };
  const server = scenario.server = testServer<unknown, Uint8Array, Uint8Array>({
    codec: lengthPrefixed(),
    outboundBudget: 64 << 20,
    highWaterMark: 256 * 1024,
    drainTimeout: 300,
    ...wire(scenario),
  });
  try {
    using _stuck = await dial(server);
    await until(() => server.sessions.size === 1);
    const stuck = scenario.stuck = [...server.sessions][0]!;
    using producer = await dial(server);
    await until(() => server.sessions.size === 2);
    const producerSession = [...server.sessions][1]!;
    if (!options.triggerFromOpen) {
      await writeAll(producer, new Uint8Array([0, 0, 0, 1, 7]));
    }
    await until(() => producerSession.paused, 3000, "the producer paused");
    // Cut by its drainTimeout: its queue (12.8 MB at most) never reached
    // the 64 MiB budget.
    assert.equal(
      await within(stuck.closed, 3000, "the stuck session's close"),
      CloseReason.SlowConsumer,
    );
    await until(() => !producerSession.paused, 2000, "the producer resumed");
    assert.equal(producerSession.state, "open");
  } finally {
    await server.shutdown({ timeout: 200 });
  }
}

Deno.test("Flow control pauses a producer whose onMessage sends by id to a peer that never reads, until that peer is cut", async () => {
  await pausesProducer((scenario) => ({
    onMessage: (session) => scenario.flood(session),
  }));
});

Deno.test("Flow control follows an async onMessage across its awaits", async () => {
  await pausesProducer((scenario) => ({
    async onMessage(session) {
      await delay(5);
      await Promise.resolve();
      scenario.flood(session);
    },
  }));
});

Deno.test("Flow control pauses a producer whose onOpen sends to a peer that never reads", async () => {
  await pausesProducer((scenario) => ({
    onOpen: (session) => scenario.flood(session),
  }), { triggerFromOpen: true });
});

Deno.test("Flow control pauses a producer whose Router handler broadcasts to a room with a stuck member", async () => {
  await pausesProducer((scenario) => {
    const router = new Router<
      Uint8Array,
      Uint8Array,
      Session<unknown, Uint8Array>
    >({
      key: () => "go",
    }).on("go", (session) => {
      const { sessions } = scenario.server;
      sessions.join(scenario.stuck!, "room");
      for (let i = 0; i < 200; i++) {
        sessions.broadcast(BIG, { room: "room", except: session });
      }
    });
    return { onMessage: router.handler };
  });
});

Deno.test("Flow control pauses a producer that broadcasts to everyone", async () => {
  await pausesProducer((scenario) => ({
    onMessage(session) {
      for (let i = 0; i < 200; i++) {
        scenario.server.sessions.broadcast(BIG, { except: session });
      }
    },
  }));
});

Deno.test("drained() lets a timer keep pace with a slow reader: nothing lost, the queue stays near its high-water mark", async () => {
  const highWaterMark = 64 * 1024;
  await using server = testServer({
    codec: lines(),
    highWaterMark,
    outboundBudget: 1024 * 1024,
  });
  using conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  const LINES = 3000;
  const line = "y".repeat(999);
  let peak = 0;
  // Outside any handler: flow control can't pause this producer, drained()
  // does. The reader is slow: it starts late and reads small chunks.
  const producing = (async () => {
    for (let i = 0; i < LINES; i++) {
      if (!await session.drained()) break;
      assert.ok(session.send(`${i} ${line}`));
      peak = Math.max(peak, session.queuedBytes);
    }
  })();
  await delay(200);
  const got = await readSequence(conn, LINES, 30000);
  await producing;
  assert.equal(got, LINES);
  assert.ok(peak <= highWaterMark + 1024, `queue peaked at ${peak} bytes`);
  assert.equal(await session.drained(), true);
  assert.equal(session.state, "open");
});

Deno.test("sessions.drained() waits for every backlogged member of a room", async () => {
  await using server = testServer({
    codec: lines(),
    highWaterMark: 16 * 1024,
  });
  using a = await dial(server);
  using b = await dial(server);
  await until(() => server.sessions.size === 2);
  for (const session of server.sessions) server.sessions.join(session, "r");
  const LINES = 2000;
  const producing = (async () => {
    for (let i = 0; i < LINES; i++) {
      await server.sessions.drained({ room: "r" });
      for (const session of server.sessions) {
        assert.ok(!session.backpressure || session.queuedBytes < 20 * 1024);
      }
      server.sessions.broadcast(`${i} ${"z".repeat(500)}`, { room: "r" });
    }
  })();
  const [gotA, gotB] = await Promise.all([
    readSequence(a, LINES, 30000),
    readSequence(b, LINES, 30000),
  ]);
  await producing;
  assert.deepEqual([gotA, gotB], [LINES, LINES]);
});

Deno.test("drained() resolves false once the session closes", async () => {
  await using server = testServer({
    codec: lengthPrefixed(),
    highWaterMark: 1024,
    outboundBudget: 64 << 20,
    drainTimeout: 0,
  });
  using _conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  for (let i = 0; i < 200; i++) session.send(BIG);
  assert.equal(session.backpressure, true);
  const waiting = session.drained();
  await session.close("bye", 0);
  assert.equal(await waiting, false);
  assert.equal(await session.drained(), false);
});

Deno.test("A connect() client is paced too: replying to a server that never reads pauses it, then cuts it by drainTimeout", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const closed = Promise.withResolvers<string>();
  let pausedSeen = false;
  const client = await connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
    codec: lengthPrefixed(),
    highWaterMark: 64 * 1024,
    outboundBudget: 64 << 20,
    drainTimeout: 300,
    onOpen: (session) => {
      // Its own queue holds it back: it produced for a peer that never reads.
      for (let i = 0; i < 200; i++) session.send(BIG);
      queueMicrotask(() => pausedSeen = session.paused);
    },
    onClose: (_session, reason) => closed.resolve(reason),
  });
  using _server = await accepted; // never reads
  assert.equal(
    await within(closed.promise, 5000, "the client's close"),
    CloseReason.SlowConsumer,
  );
  assert.ok(pausedSeen, "the client did not pause");
  await client.close();
});

Deno.test("rateLimit throttle: 60 lines at 50/s (burst 10) all arrive, paced", async () => {
  const got: number[] = [];
  const done = Promise.withResolvers<void>();
  await using server = testServer({
    codec: lines(),
    rateLimit: { messagesPerSecond: 50, messageBurst: 10 },
    onMessage: (_session, line) => {
      got.push(Number(line));
      if (got.length === 60) done.resolve();
    },
  });
  using conn = await dial(server);
  const started = performance.now();
  let text = "";
  for (let i = 0; i < 60; i++) text += `${i}\n`;
  await writeAll(conn, utf8(text));
  await within(done.promise, 10000, "60 lines");
  const elapsed = performance.now() - started;
  assert.deepEqual(got, Array.from({ length: 60 }, (_, i) => i));
  // 10 at once, then 50 at 50/s: about a second.
  assert.ok(elapsed >= 900, `took only ${elapsed.toFixed(0)} ms`);
  assert.equal([...server.sessions][0]!.state, "open");
});

Deno.test("rateLimit close: a peer past its message rate is closed with reason flood", async () => {
  const handled: string[] = [];
  await using server = testServer({
    codec: lines(),
    rateLimit: { messagesPerSecond: 5, messageBurst: 5, policy: "close" },
    onMessage: (_session, line) => void handled.push(line),
  });
  using conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  await writeAll(conn, utf8("a\nb\nc\nd\ne\nf\ng\n"));
  assert.equal(await within(session.closed, 3000, "close"), CloseReason.Flood);
  assert.deepEqual(handled, ["a", "b", "c", "d", "e"]);
  assert.equal(server.stats().closedByReason[CloseReason.Flood], 1);
});

Deno.test("rateLimit on bytes: throttle paces reads, close ends the flood", async () => {
  let bytes = 0;
  const done = Promise.withResolvers<void>();
  const TOTAL = 300 * 1024;
  await using throttled = testServer({
    codec: lengthPrefixed(),
    rateLimit: { bytesPerSecond: 200 * 1024, byteBurst: 64 * 1024 },
    onMessage: (_session, frame) => {
      bytes += frame.byteLength + 4;
      if (bytes >= TOTAL) done.resolve();
    },
  });
  const frames = new Uint8Array(TOTAL);
  const view = new DataView(frames.buffer);
  for (let offset = 0; offset < TOTAL; offset += 1024) {
    view.setUint32(offset, 1020);
  }
  using conn = await dial(throttled);
  const started = performance.now();
  await writeAll(conn, frames);
  await within(done.promise, 10000, "every byte");
  const elapsed = performance.now() - started;
  // 64 KiB at once, the other 236 KiB at 200 KiB/s: over a second.
  assert.ok(elapsed >= 1000, `took only ${elapsed.toFixed(0)} ms`);

  await using closing = testServer({
    codec: lengthPrefixed(),
    rateLimit: { bytesPerSecond: 10 * 1024, policy: "close" },
  });
  using flooder = await dial(closing);
  await until(() => closing.sessions.size === 1);
  const session = [...closing.sessions][0]!;
  await writeAll(flooder, frames.subarray(0, 128 * 1024)).catch(() => {});
  assert.equal(await within(session.closed, 3000, "close"), CloseReason.Flood);
});
