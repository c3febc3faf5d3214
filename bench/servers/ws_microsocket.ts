// The microsocket WebSocket relay under test, public API only, defaults
// everywhere: listen({ transport: "websocket" }) with the lines codec (one
// text message per line); every message goes to every other client.
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/ws_microsocket.ts [heartbeat]
// "heartbeat" pings quiet clients every 30 s (bench/ws_idle.ts).
// Prints "listening <port>" once ready.
import { listen } from "../../mod.ts";
import "./_idle_gc.ts";

const server = listen({
  transport: "websocket",
  hostname: "127.0.0.1",
  port: 0,
  heartbeatInterval: Deno.args[0] === "heartbeat" ? 30_000 : 0,
  onMessage: (session, line): void => {
    server.sessions.broadcast(line, { except: session });
  },
});

Deno.addSignalListener("SIGTERM", () => {
  const { writes, framesIn, framesOut, bytesOut } = server.stats();
  console.log(
    `stats ${JSON.stringify({ writes, framesIn, framesOut, bytesOut })}`,
  );
  Deno.exit(0);
});

console.log(`listening ${server.addr.port}`);
