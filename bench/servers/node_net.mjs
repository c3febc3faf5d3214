// The Node `net` baseline: one `socket.write()` per message per receiver,
// as a typical Node chat server does. TCP_NODELAY is set, like Deno's default.
//
// Usage: node bench/servers/node_net.mjs fanout|echo
// (same protocols as floor.ts). Prints "listening <port>" once ready.
import net from "node:net";
import process from "node:process";
import { Buffer } from "node:buffer";

const mode = process.argv[2];
if (mode !== "fanout" && mode !== "echo") {
  console.error("usage: node_net.mjs fanout|echo");
  process.exit(2);
}

const sockets = new Set();
/** Calls made, reported on SIGTERM. */
const counters = { reads: 0, writes: 0 };
// Issue 19 §4: the idle rows' forced GC (see _idle_gc.ts); node runs with
// --expose-gc.
process.on("SIGUSR2", () => {
  globalThis.gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
});
process.on("SIGTERM", () => {
  console.log(`stats ${JSON.stringify(counters)}`);
  process.exit(0);
});

const server = net.createServer({ noDelay: true }, (socket) => {
  sockets.add(socket);
  let carry = null;
  socket.on("data", (chunk) => {
    counters.reads++;
    const bytes = carry ? Buffer.concat([carry, chunk]) : chunk;
    let pos = 0;
    if (mode === "fanout") {
      let end;
      while ((end = bytes.indexOf(10, pos)) >= 0) {
        const line = bytes.subarray(pos, end + 1);
        pos = end + 1;
        for (const other of sockets) {
          if (other !== socket) {
            counters.writes++;
            other.write(line);
          }
        }
      }
    } else {
      while (pos + 4 <= bytes.length) {
        const size = bytes.readUInt32BE(pos);
        if (pos + 4 + size > bytes.length) break;
        counters.writes++;
        socket.write(bytes.subarray(pos, pos + 4 + size));
        pos += 4 + size;
      }
    }
    carry = pos < bytes.length ? bytes.subarray(pos) : null;
  });
  socket.on("error", () => socket.destroy());
  socket.on("close", () => sockets.delete(socket));
});

server.on("error", (error) => console.error(error));
server.listen(0, "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
