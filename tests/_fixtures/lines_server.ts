// Fixture for tests/server/limits_test.ts: a lines() server in its own process, so
// that it can run under its own file-descriptor limit (`ulimit -n`).
// Usage: deno run -A lines_server.ts [maxConnections]
// Prints {"port": n} on its first stdout line. Each session is greeted with
// "hi"; "stats" answers the server's stats as JSON (plus the distinct accept
// errors seen), "quit" shuts the server down (the process then exits 0), and
// any other line is echoed back as "echo <line>".
import { lines } from "../../mod.ts";
import { testServer } from "../_server.ts";

const maxConnections = Number(Deno.args[0] ?? Infinity);
const acceptErrors = new Set<string>();
const server = testServer({
  codec: lines(),
  maxConnections,
  onOpen: (session) => void session.send("hi"),
  onError: (error, session) => {
    if (session === undefined) acceptErrors.add(String(error));
  },
  onMessage: (session, line) => {
    if (line === "stats") {
      session.send(JSON.stringify({
        ...server.stats(),
        acceptErrorMessages: [...acceptErrors],
      }));
    } else if (line === "quit") {
      void server.shutdown({ timeout: 2000 });
    } else {
      session.send(`echo ${line}`);
    }
  },
});
// SIGTERM shuts down gracefully. Registering it now also sets up Deno's
// signal handling while descriptors are still free: Deno 2.9 sets it up
// lazily and panics if that happens during EMFILE.
const onSigterm = () => void server.shutdown({ timeout: 2000 });
Deno.addSignalListener("SIGTERM", onSigterm);
console.log(JSON.stringify({ port: server.addr.port }));
await server.closed;
Deno.removeSignalListener("SIGTERM", onSigterm);
