// Fixture for tests/session/flow_control_test.ts: a chat-room server in its own
// process, so its memory can be read on its own.
// Usage: deno run -A room_server.ts '<ServerOptions JSON>'
// Prints {"port": n} on its first stdout line. "/join" puts the sender in the
// room; "/stats" answers the server's stats plus its RSS as JSON; every other
// line is broadcast to the room, except to its sender. SIGTERM shuts down.
import { lines } from "../../mod.ts";
import { testServer } from "../_server.ts";

const server = testServer({
  codec: lines({ maxLineBytes: 4096 }),
  ...JSON.parse(Deno.args[0] ?? "{}"),
  onMessage: (session, line: string) => {
    if (line === "/join") {
      server.sessions.join(session, "room");
    } else if (line === "/stats") {
      session.send(
        JSON.stringify({ ...server.stats(), rss: Deno.memoryUsage().rss }),
      );
    } else {
      server.sessions.broadcast(line, { room: "room", except: session });
    }
  },
});
const onSigterm = () => void server.shutdown({ timeout: 500 });
Deno.addSignalListener("SIGTERM", onSigterm);
console.log(JSON.stringify({ port: server.addr.port }));
await server.closed;
Deno.removeSignalListener("SIGTERM", onSigterm);
