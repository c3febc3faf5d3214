// The Bun baseline (issue 19 §1): a `Bun.listen` server (uSockets, C++) the
// way a careful Bun user writes one. `socket.write()` returns the bytes the
// kernel took and buffers nothing itself, so every socket has a queue of
// what it could not take, written on `drain`. Each read chunk's complete
// lines go to every other socket in one write per receiver (the same
// coalescing as the raw Deno floor). Flow control mirrors microsocket's
// defaults, so the flood and slow-consumer rows compare like with like: a
// receiver's queue above 256 KiB pauses the sender that filled it until the
// queue drains to half that; a queue that would pass 1 MiB, or that keeps a
// sender paused for 5 s, gets its socket cut (ended: what the kernel holds
// still goes out, as when microsocket cuts a slow consumer).
//
// Usage: bun bench/servers/bun_net.mjs fanout|chat|echo
// (same protocols as floor.ts). Prints "listening <port>" once ready, and
// its call counters ("stats {...}") on SIGTERM.

import process from "node:process";

const mode = process.argv[2];
if (mode !== "fanout" && mode !== "chat" && mode !== "echo") {
  console.error("usage: bun_net.mjs fanout|chat|echo");
  process.exit(2);
}

const BUDGET = 1024 * 1024;
const HIGH = BUDGET / 4;
const LOW = HIGH / 2;
const DRAIN_TIMEOUT = 5_000;

/** Calls made, reported on SIGTERM. */
const counters = { reads: 0, writes: 0 };
process.on("SIGTERM", () => {
  console.log(`stats ${JSON.stringify(counters)}`);
  process.exit(0);
});

/** Open sockets. */
const sockets = new Set();
let lastId = 0;
const encoder = new TextEncoder();

function state() {
  return {
    id: ++lastId,
    closed: false,
    carry: null,
    /** What the kernel did not take yet, oldest first. */
    queue: [],
    queued: 0,
    /** Senders this socket holds paused, and since when. */
    holding: null,
    timer: 0,
    /** How many receivers hold this socket paused. */
    blockers: 0,
  };
}

/** Sends `bytes` to `target`; `producer`: the socket whose data it is. */
function send(target, bytes, producer) {
  const t = target.data;
  if (t.closed) return;
  if (t.queued === 0) {
    counters.writes++;
    const n = target.write(bytes, 0, bytes.length);
    if (n === bytes.length) return;
    if (n < 0) return; // closed: `close` cleans up
    bytes = bytes.subarray(n);
  } else if (t.queued + bytes.length > BUDGET) {
    cut(target);
    return;
  }
  t.queue.push(bytes);
  t.queued += bytes.length;
  if (t.queued > HIGH && producer !== undefined) hold(target, producer);
}

/** `target` is over its high-water mark: pause `producer` until it drains. */
function hold(target, producer) {
  const t = target.data;
  t.holding ??= new Set();
  if (t.holding.has(producer)) return;
  t.holding.add(producer);
  if (producer.data.blockers++ === 0) producer.pause();
  if (t.timer === 0) t.timer = setTimeout(() => cut(target), DRAIN_TIMEOUT);
}

function release(target) {
  const t = target.data;
  if (t.timer !== 0) clearTimeout(t.timer);
  t.timer = 0;
  if (t.holding === null) return;
  for (const producer of t.holding) {
    if (--producer.data.blockers === 0 && !producer.data.closed) {
      producer.resume();
    }
  }
  t.holding = null;
}

/**
 * Cuts a slow consumer the way microsocket does: what we queued is dropped,
 * what the kernel holds still goes out before the FIN (`terminate()` would
 * reset the connection and lose that too).
 */
function cut(target) {
  if (target.data.closed) return;
  closed(target);
  target.end();
}

/** Forgets a socket: its queue, the senders it held paused, its place. */
function closed(socket) {
  const t = socket.data;
  if (t.closed) return;
  t.closed = true;
  t.queue = [];
  t.queued = 0;
  release(socket);
  sockets.delete(socket);
  announce(socket, "left");
}

function drain(socket) {
  const t = socket.data;
  while (t.queued > 0) {
    const chunk = t.queue.length === 1 ? t.queue[0] : concat(t.queue, t.queued);
    counters.writes++;
    const n = socket.write(chunk, 0, chunk.length);
    if (n < 0) return;
    if (n < chunk.length) {
      t.queue = [chunk.subarray(n)];
      t.queued = chunk.length - n;
      break;
    }
    t.queue = [];
    t.queued = 0;
  }
  if (t.queued <= LOW) release(socket);
}

function concat(parts, size) {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function join(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Chat mode: tells every other socket that `socket` joined or left. */
function announce(socket, what) {
  if (mode !== "chat") return;
  const notice = encoder.encode(`* ${socket.data.id} ${what}\n`);
  for (const other of sockets) if (other !== socket) send(other, notice);
}

function onLines(socket, chunk) {
  const t = socket.data;
  const last = chunk.lastIndexOf(10);
  if (last < 0) {
    t.carry = t.carry ? join(t.carry, chunk) : chunk;
    return;
  }
  // Bun hands every `data` call a fresh buffer: no copy needed to share it.
  const lines = t.carry
    ? join(t.carry, chunk.subarray(0, last + 1))
    : chunk.subarray(0, last + 1);
  t.carry = last + 1 < chunk.length ? chunk.subarray(last + 1) : null;
  for (const other of sockets) if (other !== socket) send(other, lines, socket);
}

function onFrames(socket, chunk) {
  const t = socket.data;
  const bytes = t.carry ? join(t.carry, chunk) : chunk;
  let pos = 0;
  while (pos + 4 <= bytes.length) {
    const size = ((bytes[pos] << 24) | (bytes[pos + 1] << 16) |
      (bytes[pos + 2] << 8) | bytes[pos + 3]) >>> 0;
    if (pos + 4 + size > bytes.length) break;
    pos += 4 + size;
  }
  if (pos > 0) send(socket, bytes.subarray(0, pos), socket);
  t.carry = pos < bytes.length ? bytes.subarray(pos) : null;
}

const server = Bun.listen({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open(socket) {
      socket.data = state();
      socket.setNoDelay(true);
      sockets.add(socket);
      announce(socket, "joined");
    },
    data(socket, chunk) {
      counters.reads++;
      if (mode === "echo") onFrames(socket, chunk);
      else onLines(socket, chunk);
    },
    drain,
    close: closed,
    error(_socket, error) {
      console.error(error);
    },
  },
});

console.log(`listening ${server.port}`);
