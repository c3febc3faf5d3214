// The raw Deno "naive" server: what a first attempt on Deno.listen looks
// like. One stream writer per connection and one unawaited `writer.write()`
// per message per receiver; no coalescing, no byte budget.
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/naive.ts fanout|echo
// (same protocols as floor.ts). Prints "listening <port>" once ready.

const mode = Deno.args[0];
if (mode !== "fanout" && mode !== "echo") {
  console.error("usage: naive.ts fanout|echo");
  Deno.exit(2);
}

/** Calls made, reported on SIGTERM. */
const counters = { reads: 0, writes: 0 };

interface Peer {
  conn: Deno.TcpConn;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  closed: boolean;
}

const peers = new Set<Peer>();

function close(peer: Peer): void {
  if (peer.closed) return;
  peer.closed = true;
  peers.delete(peer);
  try {
    peer.conn.close();
  } catch {
    // already closed
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

async function serve(peer: Peer): Promise<void> {
  const buf = new Uint8Array(4096);
  let carry: Uint8Array | null = null;
  const onWriteError = (): void => close(peer);
  try {
    while (!peer.closed) {
      const n = await peer.conn.read(buf);
      if (n === null) break;
      counters.reads++;
      const bytes: Uint8Array = carry
        ? concat(carry, buf.subarray(0, n))
        : buf.subarray(0, n);
      let pos = 0;
      if (mode === "fanout") {
        let end: number;
        while ((end = bytes.indexOf(10, pos)) >= 0) {
          const line = bytes.slice(pos, end + 1);
          pos = end + 1;
          for (const other of peers) {
            if (other !== peer) {
              counters.writes++;
              other.writer.write(line).catch(() => close(other));
            }
          }
        }
      } else {
        while (pos + 4 <= bytes.length) {
          const size = ((bytes[pos]! << 24) | (bytes[pos + 1]! << 16) |
            (bytes[pos + 2]! << 8) | bytes[pos + 3]!) >>> 0;
          if (pos + 4 + size > bytes.length) break;
          counters.writes++;
          peer.writer.write(bytes.slice(pos, pos + 4 + size)).catch(
            onWriteError,
          );
          pos += 4 + size;
        }
      }
      carry = pos < bytes.length ? bytes.slice(pos) : null;
    }
  } catch {
    // reset by peer or closed
  }
  close(peer);
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
    await new Promise((resolve) => setTimeout(resolve, 10));
    continue;
  }
  // Deno 2.9 leaves Nagle on (no TCP_NODELAY) for accepted sockets.
  conn.setNoDelay(true);
  const peer: Peer = { conn, writer: conn.writable.getWriter(), closed: false };
  peers.add(peer);
  serve(peer);
}
