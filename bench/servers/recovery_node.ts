// One node of a cluster with recovery across it, in its own process (so a
// test or bench can kill -9 it): for tests/cluster/recovery_process_test.ts
// and bench/cluster_recovery.ts.
// Usage: deno run -A recovery_node.ts <broker URL> <node id> [nohistory]
// The broker (nats-server -js, or redis-server 7) carries both the cluster
// and its history ("nohistory": no history, sessions resume on their own
// node only). Prints {"port": n} on its first stdout line. Lines:
// "join R" joins room R; "say R text" broadcasts text to R (not back to the
// sender); anything else is ignored. SIGTERM shuts down.
import { lines, listen } from "../../mod.ts";
import { connectCluster, connectHistory } from "../../cluster.ts";

const [url, nodeId, mode] = Deno.args as [string, string, string?];
const quiet = Deno.env.get("NODE_DEBUG")
  ? (e: unknown) => console.error("node", nodeId, e)
  : (): void => {};
const history = mode === "nohistory" ? undefined : await connectHistory(
  url,
  url.startsWith("nats")
    ? {
      maxMessages: 100_000,
      maxAge: 120_000,
      maxStreamBytes: 256 << 20,
      window: 60_000,
      timeout: 5000,
      onError: quiet,
    }
    : {
      maxMessages: 100_000,
      maxAge: 120_000,
      maxBytes: 64 << 20,
      window: 60_000,
      onError: quiet,
    },
);
const cluster = await connectCluster({
  url,
  ...(history !== undefined && { history }),
  nodeId: Number(nodeId),
  onError: quiet,
});
const server = listen({
  hostname: "127.0.0.1",
  port: 0,
  codec: lines(),
  cluster,
  // Its clients all speak recovery, and arrive in bursts (a dead node's):
  // a busy node may read a hello later than the default 20 ms.
  recovery: { window: 60_000, helloTimeout: 2000 },
  onError: quiet,
  onMessage(session, line: string) {
    const [verb, room, ...rest] = line.split(" ");
    if (verb === "join") session.join(room!);
    else if (verb === "say") {
      server.sessions.broadcast(rest.join(" "), {
        room: room!,
        except: session,
      });
    }
  },
});
const onSigterm = () => void server.shutdown({ timeout: 500 });
Deno.addSignalListener("SIGTERM", onSigterm);
console.log(JSON.stringify({ port: server.addr.port }));
await server.closed;
Deno.removeSignalListener("SIGTERM", onSigterm);
await cluster.close();
