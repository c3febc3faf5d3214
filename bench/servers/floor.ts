// The raw Deno "floor": the fastest server we know how to hand-write on
// Deno.listen, used as the yardstick for microsocket. Every connection has one
// outbound queue; whatever is queued while a write is in flight leaves in the
// next single write, so a read chunk's complete lines cost one write per
// receiver (or less). No byte budget: a stuck peer's queue grows without bound.
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/floor.ts fanout|chat|echo [stream|turn|small]
// "stream" (the `floor_stream` diagnostic) writes through one
// `conn.writable.getWriter()` per connection instead of `conn.write()`, to
// price the WritableStream path on its own. "turn" (`floor_turn`) starts a
// connection's writes from one process-wide pass per event-loop turn
// (setImmediate) instead of at once, so everything queued for a connection
// in a turn leaves together even when no write is in flight (issue 9 §2).
// "small" (`floor_small`) starts each connection's read buffer at 16 bytes
// instead of 4 KiB: the cheapest idle connection Deno allows (issue 19 §4).
// fanout: every line from a client is delivered to every other client.
// chat:   fanout, plus "* <id> joined" / "* <id> left" sent to every other
//         client when a client connects / disconnects (bench waves).
// echo:   every 4-byte big-endian length-prefixed frame is sent back.
// Prints "listening <port>" once ready.

import "./_idle_gc.ts";

const mode = Deno.args[0];
if (mode !== "fanout" && mode !== "chat" && mode !== "echo") {
  console.error("usage: floor.ts fanout|chat|echo");
  Deno.exit(2);
}

/** Calls made, reported on SIGTERM. */
const counters = { reads: 0, writes: 0 };

const viaStream = Deno.args[1] === "stream";
const perTurn = Deno.args[1] === "turn";

/** "turn": peers with something queued and no write in flight. */
const dirty = new Set<Peer>();
let passScheduled = false;

function flushPass(): void {
  passScheduled = false;
  for (const peer of dirty) peer.flush();
  dirty.clear();
}

const MIN_READ = Deno.args[1] === "small" ? 16 : 4 * 1024;
const MAX_READ = 64 * 1024;

/** One connection with a coalescing outbound queue. */
class Peer {
  readonly id = ++lastId;
  readonly conn: Deno.TcpConn;
  closed = false;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;

  readonly #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    if (viaStream) {
      this.#writer = conn.writable.getWriter();
      this.#writer.closed.catch(() => {});
    }
  }

  send(bytes: Uint8Array): void {
    if (this.closed) return;
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (this.#writing) return;
    if (!perTurn) {
      this.flush();
      return;
    }
    dirty.add(this);
    if (!passScheduled) {
      passScheduled = true;
      setImmediate(flushPass);
    }
  }

  /** Writes everything queued, then whatever arrives meanwhile. */
  async flush(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.closed) {
        let chunk: Uint8Array;
        if (this.#queue.length === 1) chunk = this.#queue[0]!;
        else {
          chunk = new Uint8Array(this.#queued);
          let offset = 0;
          for (const part of this.#queue) {
            chunk.set(part, offset);
            offset += part.length;
          }
        }
        this.#queue.length = 0;
        this.#queued = 0;
        if (this.#writer) {
          counters.writes++;
          await this.#writer.write(chunk);
          continue;
        }
        let written = 0;
        while (written < chunk.length) {
          counters.writes++;
          written += await this.conn.write(
            written === 0 ? chunk : chunk.subarray(written),
          );
        }
      }
    } catch {
      this.close();
    } finally {
      this.#writing = false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#queue.length = 0;
    peers.delete(this);
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    announce(this, "left");
  }
}

const peers = new Set<Peer>();
let lastId = 0;
const encoder = new TextEncoder();

/** Chat mode: tells every other peer that `peer` joined or left. */
function announce(peer: Peer, what: "joined" | "left"): void {
  if (mode !== "chat") return;
  const notice = encoder.encode(`* ${peer.id} ${what}\n`);
  for (const other of peers) if (other !== peer) other.send(notice);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Returns the end offset of the last complete frame in `bytes`. */
function completeFrames(bytes: Uint8Array): number {
  let pos = 0;
  while (pos + 4 <= bytes.length) {
    const size = ((bytes[pos]! << 24) | (bytes[pos + 1]! << 16) |
      (bytes[pos + 2]! << 8) | bytes[pos + 3]!) >>> 0;
    if (pos + 4 + size > bytes.length) break;
    pos += 4 + size;
  }
  return pos;
}

async function serve(peer: Peer): Promise<void> {
  let buf = new Uint8Array(MIN_READ);
  let carry: Uint8Array | null = null;
  try {
    while (!peer.closed) {
      const n = await peer.conn.read(buf);
      if (n === null) break;
      counters.reads++;
      const chunk = buf.subarray(0, n);
      if (mode !== "echo") {
        const last = chunk.lastIndexOf(10);
        if (last < 0) {
          carry = carry ? concat(carry, chunk) : chunk.slice();
        } else {
          // One fresh copy of the complete lines, shared by every receiver.
          const lines = carry
            ? concat(carry, chunk.subarray(0, last + 1))
            : chunk.slice(0, last + 1);
          carry = last + 1 < n ? chunk.slice(last + 1) : null;
          for (const other of peers) if (other !== peer) other.send(lines);
        }
      } else {
        const bytes: Uint8Array = carry ? concat(carry, chunk) : chunk;
        const end = completeFrames(bytes);
        if (end > 0) {
          peer.send(
            bytes === chunk ? chunk.slice(0, end) : bytes.subarray(0, end),
          );
        }
        carry = end < bytes.length ? bytes.slice(end) : null;
      }
      if (n === buf.length && buf.length < MAX_READ) {
        buf = new Uint8Array(buf.length * 2);
      }
    }
  } catch {
    // reset by peer or closed: fall through
  }
  peer.close();
}

// On SIGTERM: report counters, then exit cleanly (so `--cpu-prof` can
// write its profile).
Deno.addSignalListener("SIGTERM", () => {
  console.log(`stats ${JSON.stringify(counters)}`);
  Deno.exit(0);
});

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`listening ${listener.addr.port}`);
while (true) {
  let conn: Deno.TcpConn;
  try {
    conn = await listener.accept();
  } catch {
    // EMFILE and friends: back off and keep accepting.
    await new Promise((resolve) => setTimeout(resolve, 10));
    continue;
  }
  // Deno 2.9 leaves Nagle on (no TCP_NODELAY) for accepted sockets.
  conn.setNoDelay(true);
  const peer = new Peer(conn);
  peers.add(peer);
  announce(peer, "joined");
  serve(peer);
}
