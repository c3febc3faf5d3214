// A WebSocket relay the way Deno's documentation writes one: Deno.serve +
// Deno.upgradeWebSocket, every message sent to every other socket with
// socket.send() (one syscall per frame; see DENO_FACTS.md).
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/ws_native.ts
// Prints "listening <port>" once ready.
import "./_idle_gc.ts";

const sockets = new Set<WebSocket>();

const server = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: () => {} },
  (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => sockets.add(socket);
    socket.onclose = () => sockets.delete(socket);
    socket.onerror = () => sockets.delete(socket);
    socket.onmessage = (event) => {
      for (const other of sockets) {
        if (other !== socket && other.readyState === WebSocket.OPEN) {
          other.send(event.data);
        }
      }
    };
    return response;
  },
);

Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
console.log(`listening ${server.addr.port}`);
