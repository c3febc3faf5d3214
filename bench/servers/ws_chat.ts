// A chat-like WebSocket room for the compression bench (bench/ws_deflate.ts):
// listen({ transport: "websocket" }) with the lines codec; every message is
// broadcast to every client (the sender included). `--deflate` turns
// permessage-deflate on.
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/ws_chat.ts [--deflate]
// Prints "listening <port>" once ready.
import { listen } from "../../mod.ts";

const server = listen({
  transport: "websocket",
  hostname: "127.0.0.1",
  port: 0,
  perMessageDeflate: Deno.args.includes("--deflate"),
  onMessage: (_session, line): void => {
    server.sessions.broadcast(line);
  },
});

Deno.addSignalListener("SIGTERM", () => Deno.exit(0));

console.log(`listening ${server.addr.port}`);
