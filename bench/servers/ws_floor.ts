// The hand-written WebSocket floor for the idle rows (issue 19 §4): on
// Deno.listen, the opening handshake by hand (SHA-1 from crypto.subtle),
// then one pending conn.read() per connection into a private 16-byte
// buffer, like floor.ts "small". Frames are not parsed: it only holds quiet
// connections, which is what microsocket's WebSocket transport does on a
// Deno.Conn, minus the session.
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/ws_floor.ts
// Prints "listening <port>" once ready.
import "./_idle_gc.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();

async function serve(conn: Deno.Conn): Promise<void> {
  let head = "";
  {
    const buffer = new Uint8Array(1024);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return conn.close();
      head += new TextDecoder().decode(buffer.subarray(0, n));
    }
  }
  const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + GUID),
  );
  const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
  const response = encoder.encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let written = 0;
  while (written < response.length) {
    written += await conn.write(response.subarray(written));
  }
  const buffer = new Uint8Array(16);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return conn.close();
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
console.log(`listening ${listener.addr.port}`);
for await (const conn of listener) void serve(conn).catch(() => {});
