// Fixture for tests/server/limits_test.ts: an accept storm in its own process, so
// that it can have its own file-descriptor limit (both ends of every
// connection live here). Usage:
//   deno run -A accept_storm.ts <clients> <maxConnections>
// Prints one JSON line: how many clients were greeted, refused, or failed,
// the server's stats, and how long it took.
import { lines } from "../../mod.ts";
import { testServer } from "../_server.ts";

const clients = Number(Deno.args[0] ?? 5000);
const maxConnections = Number(Deno.args[1] ?? Infinity);
const acceptErrors: string[] = [];
const server = testServer({
  codec: lines(),
  maxConnections,
  onOpen: (session) => void session.send("hi"),
  onError: (error) => void acceptErrors.push(String(error)),
});
const port = server.addr.port;
const started = performance.now();

// Each client: connect, then wait silently for the greeting or the end (a
// silent client is the hard case: it can't retransmit its way in if the
// kernel dropped it). A greeting means accepted; EOF or a reset before it
// means refused by a limit.
async function client(): Promise<
  { outcome: "greeted" | "refused" | string; conn?: Deno.Conn }
> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (error) {
    return { outcome: `connect failed: ${error}` };
  }
  const buffer = new Uint8Array(16);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const n = await Promise.race([
      conn.read(buffer),
      new Promise<"hung">((resolve) => {
        timer = setTimeout(() => resolve("hung"), 20000);
      }),
    ]);
    if (n === "hung") return { outcome: "hung", conn };
    if (n === null) return { outcome: "refused", conn };
    return { outcome: "greeted", conn };
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset) {
      return { outcome: "refused", conn };
    }
    return { outcome: `read failed: ${error}`, conn };
  } finally {
    clearTimeout(timer);
  }
}

const results = await Promise.all(Array.from({ length: clients }, client));
const took = performance.now() - started;
const outcomes: Record<string, number> = {};
for (const { outcome } of results) {
  outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
}
const stats = server.stats();
for (const { conn } of results) conn?.close();
await server.shutdown({ timeout: 5000 });
console.log(JSON.stringify({
  outcomes,
  took,
  stats,
  acceptErrors: [...new Set(acceptErrors)],
}));
