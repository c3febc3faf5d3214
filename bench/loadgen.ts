// The load generator: one Deno process, separate from the server under test,
// driven by bench/run.ts. It runs one workload against 127.0.0.1:<port> and
// reports JSON lines on stdout:
//   {"type":"progress",...}  every 250 ms while measuring
//   {"type":"checkpoint","name":...}  then waits for a line on stdin, so the
//                            orchestrator can read the server's RSS at a known
//                            moment (only when config.controlled is true)
//   {"type":"result",...}    once, last
//
// Usage: deno run --allow-net=127.0.0.1 bench/loadgen.ts '<config json>'
//
// Wire formats (shared with the servers):
// - fan-out records are 64-byte lines: "M" or "S" (data / sync), a 13-digit
//   send time in µs (performance.now() of this process, which also receives,
//   so the clocks agree), a space, a 10-digit sequence number, filler, "\n".
//   Every record has the same size, so a receiver finds record boundaries by
//   counting bytes and never decodes strings.
// - echo frames are a 4-byte big-endian length (64) and a 64-byte payload
//   that starts with the 13-digit send time.
//
// Fan-out is flow-controlled by a window: the sender keeps at most `window`
// messages ahead of the slowest reading receiver, so a fast server is
// measured at saturation while per-connection queues stay small (well under
// any outbound budget). Stuck receivers are not part of the window.

import process from "node:process";

/** Fan-out: 1 sender, `receivers` reading receivers, `stuck` that never read. */
export interface FanoutConfig {
  workload: "fanout";
  port: number;
  receivers: number;
  stuck: number;
  durationMs: number;
  maxMessages: number;
  window: number;
  /** Messages per sender write. */
  batch: number;
  controlled: boolean;
}

/** Echo: `connections` × `inflight` length-prefixed frames in flight. */
export interface EchoConfig {
  workload: "echo";
  port: number;
  connections: number;
  inflight: number;
  durationMs: number;
  controlled: boolean;
}

/** Idle: open `connections`, one echo round trip each, then hold them. */
export interface IdleConfig {
  workload: "idle";
  port: number;
  connections: number;
  concurrency: number;
  controlled: boolean;
}

/** Any workload configuration. */
export type LoadConfig = FanoutConfig | EchoConfig | IdleConfig;

const HOST = "127.0.0.1";
const RECORD = 64;
const NL = 10;
const CHAR_M = 77;
const CHAR_S = 83;
const STALL_MS = 5_000;
const ECHO_PAYLOAD = 64;
const ECHO_FRAME = 4 + ECHO_PAYLOAD;

// ---------------------------------------------------------------- helpers

function emit(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event));
}

function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(
      written === 0 ? bytes : bytes.subarray(written),
    );
  }
}

function writeDigits(
  buf: Uint8Array,
  offset: number,
  width: number,
  value: number,
): void {
  for (let i = offset + width - 1; i >= offset; i--) {
    buf[i] = 48 + (value % 10);
    value = Math.floor(value / 10);
  }
}

function readDigits(buf: Uint8Array, offset: number, width: number): number {
  let value = 0;
  for (let i = offset; i < offset + width; i++) {
    value = value * 10 + buf[i]! - 48;
  }
  return value;
}

let stdinReader: ReadableStreamDefaultReader<Uint8Array> | null = null;

/** Announces a checkpoint and waits for the orchestrator's go-ahead. */
async function checkpoint(
  config: LoadConfig,
  name: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  emit({ type: "checkpoint", name, ...extra });
  if (!config.controlled) return;
  stdinReader ??= Deno.stdin.readable.getReader();
  while (true) {
    const { value, done } = await stdinReader.read();
    if (done || value.includes(NL)) return;
  }
}

/** Opens `count` connections, at most `concurrency` handshakes at a time. */
async function connectMany(
  port: number,
  count: number,
  concurrency: number,
  then?: (conn: Deno.TcpConn) => Promise<void>,
): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = new Array(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      const conn = await Deno.connect({ hostname: HOST, port });
      conn.setNoDelay(true); // Deno 2.9 leaves Nagle on
      conns[index] = conn;
      if (then) await then(conn);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, worker),
  );
  return conns;
}

/** Log-linear latency histogram in µs (<1% bucket error), no allocation per sample. */
class Histogram {
  #counts = new Float64Array(1024 + 22 * 128);
  count = 0;
  max = 0;

  record(us: number): void {
    if (us < 0) us = 0;
    if (us > 0x7fffffff) us = 0x7fffffff;
    us = us | 0;
    let index: number;
    if (us < 1024) index = us;
    else {
      const e = 31 - Math.clz32(us);
      index = 1024 + (e - 10) * 128 + ((us >>> (e - 7)) & 127);
    }
    this.#counts[index]!++;
    this.count++;
    if (us > this.max) this.max = us;
  }

  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let index = 0; index < this.#counts.length; index++) {
      seen += this.#counts[index]!;
      if (seen >= rank) {
        if (index < 1024) return index;
        const e = 10 + Math.floor((index - 1024) / 128);
        const sub = (index - 1024) % 128;
        return (128 + sub + 0.5) * 2 ** (e - 7);
      }
    }
    return this.max;
  }
}

// ---------------------------------------------------------------- fan-out

interface Receiver {
  conn: Deno.TcpConn;
  count: number;
  nextSeq: number;
  synced: boolean;
  gaps: number;
  corrupt: number;
  lastAtUs: number;
  partial: Uint8Array;
  partialLength: number;
  reachedRound: number;
  closed: boolean;
  endedBy: string;
  /** Stuck receivers are not counted in the deliveries. */
  counted: boolean;
}

function newReceiver(conn: Deno.TcpConn, counted = true): Receiver {
  return {
    conn,
    count: 0,
    nextSeq: 0,
    synced: false,
    gaps: 0,
    corrupt: 0,
    lastAtUs: 0,
    partial: new Uint8Array(RECORD),
    partialLength: 0,
    reachedRound: 0,
    closed: false,
    endedBy: "open",
    counted,
  };
}

async function runFanout(
  config: FanoutConfig,
): Promise<Record<string, unknown>> {
  const histogram = new Histogram();
  let delivered = 0;
  let reads = 0;
  let syncedCount = 0;
  let finishing = false;
  let lastProgressAt = performance.now();

  // Window bookkeeping: wait until every reading receiver has `waitTarget`.
  let waitRound = 0;
  let waitTarget = Infinity;
  let reached = 0;
  let wake: (() => void) | null = null;

  const record = (
    r: Receiver,
    buf: Uint8Array,
    o: number,
    atUs: number,
  ): void => {
    if (buf[o + RECORD - 1] !== NL) {
      r.corrupt++;
      return;
    }
    const type = buf[o];
    if (type === CHAR_M) {
      const seq = readDigits(buf, o + 15, 10);
      if (seq !== r.nextSeq) r.gaps++;
      r.nextSeq = seq + 1;
      r.count++;
      if (r.counted) {
        delivered++;
        histogram.record(atUs - readDigits(buf, o + 1, 13));
      }
    } else if (type === CHAR_S) {
      if (!r.synced) {
        r.synced = true;
        syncedCount++;
      }
    } else r.corrupt++;
  };

  const consume = (
    r: Receiver,
    buf: Uint8Array,
    n: number,
    atUs: number,
  ): void => {
    let pos = 0;
    if (r.partialLength > 0) {
      const take = Math.min(RECORD - r.partialLength, n);
      r.partial.set(buf.subarray(0, take), r.partialLength);
      r.partialLength += take;
      pos = take;
      if (r.partialLength === RECORD) {
        record(r, r.partial, 0, atUs);
        r.partialLength = 0;
      }
    }
    while (pos + RECORD <= n) {
      record(r, buf, pos, atUs);
      pos += RECORD;
    }
    if (pos < n) {
      r.partial.set(buf.subarray(pos, n), 0);
      r.partialLength = n - pos;
    }
  };

  const markReached = (r: Receiver): void => {
    if (r.reachedRound === waitRound) return;
    r.reachedRound = waitRound;
    if (++reached >= receivers.length) {
      waitTarget = Infinity;
      const w = wake;
      wake = null;
      w?.();
    }
  };

  const readLoop = async (
    r: Receiver,
    bufferSize: number,
    onChunk: boolean,
  ): Promise<void> => {
    const buf = new Uint8Array(bufferSize);
    try {
      while (true) {
        const n = await r.conn.read(buf);
        if (n === null) {
          r.endedBy = "eof";
          break;
        }
        const atUs = nowUs();
        reads++;
        consume(r, buf, n, atUs);
        r.lastAtUs = atUs;
        if (onChunk) {
          lastProgressAt = performance.now();
          if (r.count >= waitTarget) markReached(r);
        }
      }
    } catch (error) {
      r.endedBy = finishing ? "closed" : `error: ${(error as Error).name}`;
    }
    r.closed = true;
    if (onChunk && waitTarget !== Infinity) markReached(r);
  };

  // Stuck receivers connect first so the server has them before any data.
  const stuckConns = await connectMany(config.port, config.stuck, 1);
  const receiverConns = await connectMany(config.port, config.receivers, 64);
  const receivers = receiverConns.map((conn) => newReceiver(conn));
  const readBuffer = config.receivers > 200 ? 16 * 1024 : 64 * 1024;
  const loops = receivers.map((r) => readLoop(r, readBuffer, true));
  const sender = await Deno.connect({ hostname: HOST, port: config.port });
  sender.setNoDelay(true);

  // Template records: only the digits change.
  const template = new Uint8Array(RECORD).fill(120); // "x"
  template[0] = CHAR_M;
  template[14] = 32;
  template[RECORD - 1] = NL;
  const batchBytes = new Uint8Array(RECORD * config.batch);
  for (let i = 0; i < config.batch; i++) batchBytes.set(template, i * RECORD);
  const syncRecord = template.slice();
  syncRecord[0] = CHAR_S;

  // Sync: repeat S records until every reading receiver has seen one, so
  // every receiver is registered before the first data message.
  const syncDeadline = performance.now() + 15_000;
  while (syncedCount < receivers.length) {
    if (performance.now() > syncDeadline) {
      return {
        error: `sync timed out: ${syncedCount}/${receivers.length} receivers`,
      };
    }
    writeDigits(syncRecord, 1, 13, nowUs());
    await writeAll(sender, syncRecord);
    const until = performance.now() + 50;
    while (syncedCount < receivers.length && performance.now() < until) {
      await delay(5);
    }
  }
  await checkpoint(config, "synced");

  const waitAll = async (target: number): Promise<boolean> => {
    waitRound++;
    reached = 0;
    waitTarget = target;
    for (const r of receivers) {
      if (r.count >= target || r.closed) markReached(r);
      if (waitTarget === Infinity) return true;
    }
    lastProgressAt = performance.now();
    // The progress timer wakes us too, to notice a stall.
    while (waitTarget !== Infinity) {
      await new Promise<void>((resolve) => (wake = resolve));
      if (
        waitTarget !== Infinity && performance.now() - lastProgressAt > STALL_MS
      ) {
        waitTarget = Infinity;
        wake = null;
        return false;
      }
    }
    return true;
  };

  const cpu0 = cpuSeconds();
  const reads0 = reads;
  const t0 = performance.now();
  const t0Us = t0 * 1000;
  const deadline = t0 + config.durationMs;
  const progress = setInterval(() => {
    emit({
      type: "progress",
      elapsedMs: performance.now() - t0,
      delivered,
      rate: delivered / ((performance.now() - t0) / 1000),
    });
    const w = wake;
    wake = null;
    w?.();
  }, 250);

  let seq = 0;
  let confirmed = 0; // every reading receiver has at least this many
  const half = Math.max(1, config.window >> 1);
  let stalled = false;
  while (seq < config.maxMessages && performance.now() < deadline) {
    if (seq - confirmed >= config.window) {
      // Wait until at least `half` slots are free again.
      const target = seq - config.window + half;
      if (!(await waitAll(target))) {
        stalled = true;
        break;
      }
      confirmed = target;
    }
    const count = Math.min(
      config.batch,
      config.maxMessages - seq,
      confirmed + config.window - seq,
    );
    const ts = nowUs();
    for (let i = 0; i < count; i++) {
      writeDigits(batchBytes, i * RECORD + 1, 13, ts);
      writeDigits(batchBytes, i * RECORD + 15, 10, seq + i);
    }
    await writeAll(sender, batchBytes.subarray(0, count * RECORD));
    seq += count;
  }
  const sent = seq;
  const sendMs = performance.now() - t0;
  if (!stalled) stalled = !(await waitAll(sent));
  clearInterval(progress);
  const cpu = cpuSeconds() - cpu0;
  emit({ type: "mark", name: "measured" });

  let lastUs = t0Us;
  let gaps = 0;
  let corrupt = 0;
  let closedEarly = 0;
  for (const r of receivers) {
    if (r.lastAtUs > lastUs) lastUs = r.lastAtUs;
    gaps += r.gaps;
    corrupt += r.corrupt;
    if (r.closed) closedEarly++;
  }
  const elapsedMs = (lastUs - t0Us) / 1000;

  // Stuck receivers: now read what they were owed, until the server ends
  // them, they go quiet for a second, or 5 s pass.
  const stuckReport = [];
  if (stuckConns.length > 0) {
    const stuck = stuckConns.map((conn) => newReceiver(conn, false));
    const stuckLoops = stuck.map((r) => readLoop(r, 256 * 1024, false));
    const stuckDeadline = performance.now() + 5_000;
    while (performance.now() < stuckDeadline) {
      await delay(100);
      const quiet = stuck.every((r) =>
        r.closed || nowUs() - r.lastAtUs > 1_000_000
      );
      if (quiet) break;
    }
    finishing = true;
    for (const r of stuck) {
      stuckReport.push({
        received: r.count,
        owed: sent,
        endedBy: r.endedBy,
        gaps: r.gaps,
      });
      try {
        r.conn.close();
      } catch {
        // already closed
      }
    }
    await Promise.all(stuckLoops);
  }

  finishing = true;
  for (const r of receivers) {
    try {
      r.conn.close();
    } catch {
      // already closed
    }
  }
  sender.close();
  await Promise.all(loops);

  return {
    receivers: config.receivers,
    stuck: config.stuck,
    sent,
    delivered,
    expected: sent * config.receivers,
    lost: sent * config.receivers - delivered,
    gaps,
    corrupt,
    closedEarly,
    stalled,
    sendMs,
    elapsedMs,
    rate: delivered / (elapsedMs / 1000),
    reads: reads - reads0,
    p50Us: histogram.percentile(50),
    p99Us: histogram.percentile(99),
    maxUs: histogram.max,
    loadgenCpu: cpu / (elapsedMs / 1000),
    stuckReport,
  };
}

// ---------------------------------------------------------------- echo

async function runEcho(config: EchoConfig): Promise<Record<string, unknown>> {
  const histogram = new Histogram();
  const conns = await connectMany(config.port, config.connections, 50);
  await checkpoint(config, "connected");
  let frames = 0;
  let corrupt = 0;
  let lastUs = 0;
  let errors = 0;

  const fill = (buf: Uint8Array, count: number): void => {
    const ts = nowUs();
    for (let i = 0; i < count; i++) {
      writeDigits(buf, i * ECHO_FRAME + 4, 13, ts);
    }
  };

  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  const deadline = t0 + config.durationMs;
  const progress = setInterval(() => {
    emit({
      type: "progress",
      elapsedMs: performance.now() - t0,
      delivered: frames,
      rate: frames / ((performance.now() - t0) / 1000),
    });
  }, 250);

  const loop = async (conn: Deno.TcpConn): Promise<void> => {
    const scratch = new Uint8Array(ECHO_FRAME * config.inflight).fill(120);
    for (let i = 0; i < config.inflight; i++) {
      scratch.set([0, 0, 0, ECHO_PAYLOAD], i * ECHO_FRAME);
    }
    const buf = new Uint8Array(16 * 1024);
    const partial = new Uint8Array(ECHO_FRAME);
    let partialLength = 0;
    let outstanding = config.inflight;
    fill(scratch, config.inflight);
    try {
      await writeAll(conn, scratch);
      while (outstanding > 0) {
        const n = await conn.read(buf);
        if (n === null) throw new Error("closed by server");
        const atUs = nowUs();
        let complete = 0;
        const frame = (b: Uint8Array, o: number): void => {
          if (
            b[o] !== 0 || b[o + 1] !== 0 || b[o + 2] !== 0 ||
            b[o + 3] !== ECHO_PAYLOAD
          ) {
            corrupt++;
          }
          histogram.record(atUs - readDigits(b, o + 4, 13));
          complete++;
        };
        let pos = 0;
        if (partialLength > 0) {
          const take = Math.min(ECHO_FRAME - partialLength, n);
          partial.set(buf.subarray(0, take), partialLength);
          partialLength += take;
          pos = take;
          if (partialLength === ECHO_FRAME) {
            frame(partial, 0);
            partialLength = 0;
          }
        }
        while (pos + ECHO_FRAME <= n) {
          frame(buf, pos);
          pos += ECHO_FRAME;
        }
        if (pos < n) {
          partial.set(buf.subarray(pos, n), 0);
          partialLength = n - pos;
        }
        if (complete === 0) continue;
        frames += complete;
        lastUs = atUs;
        if (performance.now() < deadline) {
          fill(scratch, complete);
          await writeAll(conn, scratch.subarray(0, complete * ECHO_FRAME));
        } else outstanding -= complete;
      }
    } catch {
      errors++;
    }
  };

  await Promise.all(conns.map(loop));
  clearInterval(progress);
  const cpu = cpuSeconds() - cpu0;
  emit({ type: "mark", name: "measured" });
  for (const conn of conns) conn.close();
  const elapsedMs = lastUs / 1000 - t0;
  return {
    connections: config.connections,
    inflight: config.inflight,
    frames,
    corrupt,
    errors,
    elapsedMs,
    rate: frames / (elapsedMs / 1000),
    p50Us: histogram.percentile(50),
    p99Us: histogram.percentile(99),
    maxUs: histogram.max,
    loadgenCpu: cpu / (elapsedMs / 1000),
  };
}

// ---------------------------------------------------------------- idle

async function runIdle(config: IdleConfig): Promise<Record<string, unknown>> {
  const frame = new Uint8Array(ECHO_FRAME).fill(120);
  frame.set([0, 0, 0, ECHO_PAYLOAD]);
  writeDigits(frame, 4, 13, 0);
  const t0 = performance.now();
  const progress = setInterval(() => {
    emit({
      type: "progress",
      elapsedMs: performance.now() - t0,
      delivered: opened,
    });
  }, 250);
  let opened = 0;
  let conns: Deno.TcpConn[];
  try {
    conns = await connectMany(
      config.port,
      config.connections,
      config.concurrency,
      async (conn) => {
        // One round trip proves the server accepted and serves this session.
        await writeAll(conn, frame);
        const buf = new Uint8Array(ECHO_FRAME);
        let got = 0;
        while (got < ECHO_FRAME) {
          const n = await conn.read(buf.subarray(got));
          if (n === null) throw new Error("closed by server");
          got += n;
        }
        opened++;
      },
    );
  } catch (error) {
    clearInterval(progress);
    return {
      error: `after ${opened} connections: ${(error as Error).message}`,
    };
  }
  clearInterval(progress);
  const acceptMs = performance.now() - t0;
  await checkpoint(config, "ready", { acceptMs });
  for (const conn of conns) conn.close();
  return { connections: config.connections, opened, acceptMs };
}

// ---------------------------------------------------------------- main

if (import.meta.main) {
  const config = JSON.parse(Deno.args[0] ?? "{}") as LoadConfig;
  let result: Record<string, unknown>;
  try {
    if (config.workload === "fanout") result = await runFanout(config);
    else if (config.workload === "echo") result = await runEcho(config);
    else if (config.workload === "idle") result = await runIdle(config);
    else result = { error: `unknown workload ${JSON.stringify(config)}` };
  } catch (error) {
    result = { error: String(error) };
  }
  emit({ type: "result", workload: config.workload, ...result });
  Deno.exit(0);
}
