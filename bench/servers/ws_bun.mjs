// A WebSocket relay on Bun the way Bun's documentation writes one:
// `Bun.serve` (uWebSockets, C++), every socket subscribed to one topic, each
// message `publish`ed to it (which excludes the sender: "every other
// client"); uWS corks a publish into one write per subscriber. Bun's
// defaults otherwise (16 MiB backpressure limit, no compression).
//
// Usage: bun bench/servers/ws_bun.mjs
// Prints "listening <port>" once ready.
import process from "node:process";

const topic = "room";

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(request, server) {
    if (server.upgrade(request)) return undefined;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    open(ws) {
      ws.subscribe(topic);
    },
    message(ws, message) {
      ws.publish(topic, message);
    },
  },
});

process.on("SIGTERM", () => process.exit(0));
console.log(`listening ${server.port}`);
