// A WebSocket relay on Node with npm `ws`, the most used Node WebSocket
// server: every message is sent to every other client.
//
// Usage: node bench/servers/ws_node.mjs /path/to/ws/wrapper.mjs
// (bench/ws_fanout.ts passes the copy of ws in Deno's npm cache.)
// Prints "listening <port>" once ready.
const { WebSocketServer, default: WebSocket } = await import(process.argv[2]);

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: false,
});
wss.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => {
    for (const other of wss.clients) {
      if (other !== socket && other.readyState === WebSocket.OPEN) {
        other.send(data, { binary: isBinary });
      }
    }
  });
});
wss.on("listening", () => console.log(`listening ${wss.address().port}`));
process.on("SIGTERM", () => process.exit(0));
