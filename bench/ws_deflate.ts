// permessage-deflate bench (issue 19 section 2): a chat-like text broadcast
// to N WebSocket clients with compression off and on, against the same
// server (bench/servers/ws_chat.ts, in its own process). One client sends
// bursts of chat messages (JSON, 150–300 bytes of English-like text); the
// server broadcasts each to every client. Reports the bytes on the wire per
// delivery and the server's CPU time (utime + stime from /proc) per
// delivery, and their ratios (targets: bytes ≤ 1/3, CPU ≤ 1.3×).
//
// The clients count frames without inflating them: what they cost is the
// load generator's, not the server's.
//
//   deno run -A bench/ws_deflate.ts [--n=100] [--messages=4000]
//                                   [--repeat=2] [--smoke] [--json]

import { constants, createDeflateRaw } from "node:zlib";

const here = new URL(".", import.meta.url).pathname;

interface Options {
  n: number;
  messages: number;
  repeat: number;
  burst: number;
  batch: number;
  json: boolean;
}

function parse(args: string[]): Options {
  const options: Options = {
    n: 100,
    messages: 4000,
    repeat: 2,
    burst: 20,
    batch: 1,
    json: false,
  };
  for (const arg of args) {
    const [name, value = ""] = arg.replace(/^--/, "").split("=");
    if (name === "smoke") {
      options.n = 10;
      options.messages = 200;
      options.repeat = 1;
    } else if (name === "n") options.n = Number(value);
    else if (name === "messages") options.messages = Number(value);
    else if (name === "repeat") options.repeat = Number(value);
    else if (name === "burst") options.burst = Number(value);
    else if (name === "batch") options.batch = Number(value);
    else if (name === "json") options.json = true;
    else throw new Error(`unknown option ${arg}`);
  }
  return options;
}

// English-like chat text from a fixed vocabulary and a seeded generator, so
// that both runs send the same messages.
const WORDS = (
  "the be to of and a in that have I it for not on with he as you do at " +
  "this but his by from they we say her she or an will my one all would " +
  "there their what so up out if about who get which go me when make can " +
  "like time no just him know take people into year your good some could " +
  "them see other than then now look only come its over think also back " +
  "after use two how our work first well way even new want because any " +
  "these give day most us meeting tomorrow deploy build release lunch " +
  "coffee weekend server client message room bug fix test review merge"
).split(" ");

// `batch` > 1: each message is a JSON array of that many chat messages (a
// page of history, a presence list: larger messages compress better).
function chatMessages(count: number, batch = 1): string[] {
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const out: string[] = [];
  for (let i = 0; i < count * batch; i++) {
    const words: string[] = [];
    const length = 12 + Math.floor(random() * 25);
    for (let w = 0; w < length; w++) {
      words.push(WORDS[Math.floor(random() * WORDS.length)]!);
    }
    out.push(JSON.stringify({
      type: "chat",
      room: "lobby",
      from: `user${Math.floor(random() * 1000)}`,
      ts: 1764720000000 + i * 1375,
      text: words.join(" "),
    }));
  }
  if (batch === 1) return out;
  const batches: string[] = [];
  for (let i = 0; i < count; i++) {
    batches.push(`[${out.slice(i * batch, (i + 1) * batch).join(",")}]`);
  }
  return batches;
}

// Counts a server's (unmasked) frames and the bytes they took, without
// looking at payloads.
class FrameCounter {
  frames = 0;
  bytes = 0;
  #skip = 0;
  readonly #head = new Uint8Array(14);
  #filled = 0;

  feed(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    let p = 0;
    while (p < chunk.length) {
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, chunk.length - p);
        this.#skip -= take;
        p += take;
        continue;
      }
      const head = this.#head;
      head[this.#filled++] = chunk[p++]!;
      if (this.#filled < 2) continue;
      const l7 = head[1]! & 0x7f;
      const size = 2 + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0);
      if (this.#filled < size) continue;
      this.#filled = 0;
      this.#skip = l7 === 126
        ? (head[2]! << 8) | head[3]!
        : l7 === 127
        ? ((head[6]! << 24) >>> 0) + (head[7]! << 16) + (head[8]! << 8) +
          head[9]!
        : l7;
      const opcode = head[0]! & 0x0f;
      if (opcode === 1 || opcode === 2) this.frames++;
    }
  }
}

const encoder = new TextEncoder();

interface Client {
  conn: Deno.TcpConn;
  counter: FrameCounter;
  reading: Promise<void>;
  deflate: boolean;
}

async function openClient(port: number, deflate: boolean): Promise<Client> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const request =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
    "Sec-WebSocket-Version: 13\r\n" +
    (deflate
      ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
      : "") +
    "\r\n";
  await conn.write(encoder.encode(request));
  const buffer = new Uint8Array(65536);
  let head = "";
  let rest = new Uint8Array(0);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("EOF during the handshake");
    head += new TextDecoder("latin1").decode(buffer.subarray(0, n));
    const end = head.indexOf("\r\n\r\n");
    if (end < 0) continue;
    rest = buffer.slice(end + 4 - (head.length - n), n);
    head = head.slice(0, end);
    break;
  }
  if (!head.startsWith("HTTP/1.1 101")) throw new Error(head);
  const negotiated = /sec-websocket-extensions: permessage-deflate/i.test(head);
  if (negotiated !== deflate) throw new Error(`negotiation: ${head}`);
  const counter = new FrameCounter();
  counter.feed(rest);
  const reading = (async () => {
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        counter.feed(buffer.subarray(0, n));
      }
    } catch {
      // Closed by us at the end.
    }
  })();
  return { conn, counter, reading, deflate };
}

// A masked client text frame (mask 0: the payload is unchanged).
function textFrame(text: string): Uint8Array {
  const payload = encoder.encode(text);
  const len = payload.length;
  const head = len < 126 ? 6 : 8;
  const frame = new Uint8Array(head + len);
  frame[0] = 0x81;
  if (len < 126) frame[1] = 0x80 | len;
  else {
    frame[1] = 0x80 | 126;
    frame[2] = len >> 8;
    frame[3] = len & 0xff;
  }
  frame.set(payload, head);
  return frame;
}

function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based), in clock ticks (100/s).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Result {
  deflate: boolean;
  deliveries: number;
  wireBytes: number;
  payloadBytes: number;
  cpuSeconds: number;
  seconds: number;
}

async function run(options: Options, deflate: boolean): Promise<Result> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      `${here}servers/ws_chat.ts`,
      ...(deflate ? ["--deflate"] : []),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("server ended");
    out += value;
  }
  const port = Number(/listening (\d+)/.exec(out)![1]);
  const clients: Client[] = [];
  try {
    for (let i = 0; i < options.n; i++) {
      clients.push(await openClient(port, deflate));
    }
    const messages = chatMessages(1000, options.batch);
    const frames = messages.map(textFrame);
    const payloadBytes = messages.reduce((sum, m) => sum + m.length, 0) /
      messages.length;
    // Warm up (JIT, buffers), then measure.
    const sender = clients[0]!;
    let sent = 0;
    const deliver = async (count: number) => {
      for (let done = 0; done < count;) {
        const burst = Math.min(options.burst, count - done);
        const parts = [];
        for (let i = 0; i < burst; i++) parts.push(frames[(sent + i) % 1000]!);
        const bytes = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
        let at = 0;
        for (const p of parts) {
          bytes.set(p, at);
          at += p.length;
        }
        for (let w = 0; w < bytes.length;) {
          w += await sender.conn.write(bytes.subarray(w));
        }
        sent += burst;
        done += burst;
        const deadline = Date.now() + 30000;
        while (clients.some((c) => c.counter.frames < sent)) {
          if (Date.now() > deadline) throw new Error("stalled");
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      }
    };
    await deliver(Math.min(500, options.messages));
    const bytes0 = clients.reduce((s, c) => s + c.counter.bytes, 0);
    const cpu0 = cpuSeconds(child.pid);
    const t0 = performance.now();
    await deliver(options.messages);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(child.pid) - cpu0;
    const wire = clients.reduce((s, c) => s + c.counter.bytes, 0) - bytes0;
    return {
      deflate,
      deliveries: options.messages * options.n,
      wireBytes: wire,
      payloadBytes,
      cpuSeconds: cpu,
      seconds,
    };
  } finally {
    for (const c of clients) {
      try {
        c.conn.close();
      } catch {
        // Closed.
      }
    }
    await Promise.all(clients.map((c) => c.reading));
    child.kill("SIGTERM");
    await reader.cancel().catch(() => {});
    await child.status;
  }
}

// For reference: the compressed size of the same messages through ONE
// compressor with context takeover (each message may refer to the earlier
// ones), i.e. a compressor per receiver, which a shared broadcast frame
// can't have. Returns compressed ÷ raw.
async function contextTakeoverRatio(batch: number): Promise<number> {
  const messages = chatMessages(1000, batch).map((m) => encoder.encode(m));
  const deflate = createDeflateRaw();
  let out = 0;
  deflate.on("data", (chunk: Uint8Array) => void (out += chunk.length));
  for (const message of messages) {
    await new Promise<void>((resolve) => {
      deflate.write(message);
      deflate.flush(constants.Z_SYNC_FLUSH, () => resolve());
    });
    out -= 4; // the 00 00 ff ff tail is not sent
  }
  deflate.close();
  return out / messages.reduce((sum, m) => sum + m.length, 0);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The figures of one bench run, compression off and on. */
export interface DeflateBenchSummary {
  n: number;
  batch: number;
  messages: number;
  payloadBytes: number;
  off: { bytesPerDelivery: number; cpuUsPerDelivery: number; rate: number };
  on: { bytesPerDelivery: number; cpuUsPerDelivery: number; rate: number };
  bytesRatio: number;
  cpuRatio: number;
  /** Compressed ÷ raw payload with context takeover, for reference. */
  contextTakeoverRatio: number;
}

/**
 * Runs the bench: compression off and on, alternating, `repeat` times each.
 *
 * @param args Command-line arguments (see the file's header).
 * @returns The medians and the ratios.
 */
export async function deflateBench(
  args: string[] = [],
): Promise<DeflateBenchSummary> {
  const options = parse(args);
  const results: Result[] = [];
  for (let r = 0; r < options.repeat; r++) {
    results.push(await run(options, false));
    results.push(await run(options, true));
  }
  const side = (deflate: boolean) => {
    const mine = results.filter((r) => r.deflate === deflate);
    return {
      bytesPerDelivery: median(mine.map((r) => r.wireBytes / r.deliveries)),
      cpuUsPerDelivery: median(
        mine.map((r) => (r.cpuSeconds / r.deliveries) * 1e6),
      ),
      rate: median(mine.map((r) => r.deliveries / r.seconds)),
    };
  };
  const off = side(false);
  const on = side(true);
  return {
    n: options.n,
    batch: options.batch,
    messages: options.messages,
    payloadBytes: results[0]!.payloadBytes,
    off,
    on,
    bytesRatio: on.bytesPerDelivery / off.bytesPerDelivery,
    cpuRatio: on.cpuUsPerDelivery / off.cpuUsPerDelivery,
    contextTakeoverRatio: await contextTakeoverRatio(options.batch),
  };
}

/**
 * The summary as a Markdown table.
 *
 * @param s The summary.
 * @returns The table.
 */
export function deflateTable(s: DeflateBenchSummary): string {
  const f = (x: number, d = 2) => x.toFixed(d);
  return [
    `Chat broadcast, 1 sender → ${s.n} WebSocket clients, ${s.messages} messages of ~${
      Math.round(s.payloadBytes)
    } bytes${
      s.batch > 1 ? ` (${s.batch} chat messages each)` : ""
    } (permessage-deflate off vs on):`,
    "",
    "| | off | on | on ÷ off | target |",
    "|---|---:|---:|---:|---:|",
    `| wire bytes per delivery | ${f(s.off.bytesPerDelivery, 1)} | ${
      f(s.on.bytesPerDelivery, 1)
    } | ${f(s.bytesRatio)} | ≤ 0.33 |`,
    `| server CPU µs per delivery | ${f(s.off.cpuUsPerDelivery)} | ${
      f(s.on.cpuUsPerDelivery)
    } | ${f(s.cpuRatio)} | ≤ 1.3 |`,
    `| deliveries/s | ${Math.round(s.off.rate)} | ${Math.round(s.on.rate)} | ${
      f(s.on.rate / s.off.rate)
    } | |`,
    "",
    `For reference, the same messages through one compressor with context ` +
    `takeover (a compressor per receiver, which a frame shared by a ` +
    `broadcast can't use) come to ${
      f(s.contextTakeoverRatio)
    } of their size; compressed on their own, as here, to ${
      f(s.bytesRatio)
    } (with the frame headers).`,
  ].join("\n");
}

if (import.meta.main) {
  // Without --batch: single chat messages, then pages of 8.
  const runs = Deno.args.some((a) => a.startsWith("--batch"))
    ? [Deno.args]
    : [[...Deno.args, "--batch=1"], [...Deno.args, "--batch=8"]];
  const summaries = [];
  for (const args of runs) summaries.push(await deflateBench(args));
  if (Deno.args.includes("--json")) console.log(JSON.stringify(summaries));
  else console.log(summaries.map(deflateTable).join("\n\n"));
}
