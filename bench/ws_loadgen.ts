// The load generator of bench/ws_fanout.ts, in its own process: one sender
// and N receivers on raw sockets, speaking either WebSocket (masked 64-byte
// text messages up, unmasked frames down) or TCP lines (64-byte lines). It
// never parses what it receives: every record has the same size, so a
// receiver counts bytes. The sender keeps at most `window` messages ahead
// of the slowest receiver, so the server is measured at saturation with
// small queues.
//
// Usage: deno run --allow-net=127.0.0.1 bench/ws_loadgen.ts '<config json>'
// Prints one JSON line: { deliveries, seconds, perSecond }.

interface Config {
  protocol: "websocket" | "tcp";
  port: number;
  receivers: number;
  durationMs: number;
  window: number;
}

const config = JSON.parse(Deno.args[0]!) as Config;
const ws = config.protocol === "websocket";
const PAYLOAD = 64;
// What each record takes on the wire from the server.
const DOWN = ws ? PAYLOAD + 2 : PAYLOAD;

function record(): Uint8Array {
  const text = "M".padEnd(PAYLOAD - 1, "x");
  if (!ws) return new TextEncoder().encode(text + "\n");
  // A masked text frame with a zero key (XOR with zero: payload as is).
  const frame = new Uint8Array(6 + PAYLOAD);
  frame[0] = 0x81;
  frame[1] = 0x80 | PAYLOAD;
  frame.set(new TextEncoder().encode(text + "y"), 6);
  return frame;
}

async function open(): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: config.port });
  conn.setNoDelay(true);
  if (!ws) return conn;
  const request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
    "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
    "Sec-WebSocket-Version: 13\r\n\r\n";
  await conn.write(new TextEncoder().encode(request));
  // Servers send nothing else before a message arrives: read the 101.
  const buffer = new Uint8Array(1024);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("closed during the handshake");
    head += new TextDecoder().decode(buffer.subarray(0, n));
  }
  if (!head.startsWith("HTTP/1.1 101")) throw new Error(head.split("\r\n")[0]);
  return conn;
}

const receivers: Deno.TcpConn[] = [];
for (let i = 0; i < config.receivers; i++) receivers.push(await open());
const sender = await open();
const received = new Float64Array(config.receivers); // bytes
let wake: (() => void) | undefined;
let stop = false;

async function receive(i: number): Promise<void> {
  const conn = receivers[i]!;
  const buffer = new Uint8Array(65536);
  try {
    while (!stop) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received[i]! += n;
      if (wake !== undefined) {
        const w = wake;
        wake = undefined;
        w();
      }
    }
  } catch {
    // Closed at the end.
  }
}

// Waits for any receiver to read, failing after 10 s of silence.
async function progress(): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await new Promise<void>((resolve, reject) => {
    wake = resolve;
    timer = setTimeout(
      () => reject(new Error("no progress for 10 s")),
      10_000,
    );
  });
  clearTimeout(timer);
}

function slowest(): number {
  let min = Infinity;
  for (let i = 0; i < received.length; i++) {
    if (received[i]! < min) min = received[i]!;
  }
  return Math.floor(min / DOWN);
}

function total(): number {
  let sum = 0;
  for (let i = 0; i < received.length; i++) sum += received[i]!;
  return Math.floor(sum / DOWN);
}

const loops = receivers.map((_, i) => receive(i));
const one = record();
const batch = new Uint8Array(one.length * config.window);
for (let i = 0; i < config.window; i++) batch.set(one, i * one.length);

let sent = 0;
// Warm-up: every receiver gets one message (all sessions are registered).
await sender.write(one);
sent = 1;
while (slowest() < 1) await progress();

const started = performance.now();
const base = total();
const deadline = started + config.durationMs;
while (performance.now() < deadline) {
  const room = config.window - (sent - slowest());
  if (room <= 0) {
    await progress();
    continue;
  }
  await sender.write(batch.subarray(0, room * one.length));
  sent += room;
}
const seconds = (performance.now() - started) / 1000;
const deliveries = total() - base;
stop = true;
for (const conn of [...receivers, sender]) {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
await Promise.all(loops);
console.log(
  JSON.stringify({ deliveries, seconds, perSecond: deliveries / seconds }),
);
