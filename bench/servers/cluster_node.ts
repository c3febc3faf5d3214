// The server under test for bench/cluster.ts: a room fan-out written with
// the public API, alone or as a cluster node.
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/cluster_node.ts [URL]
// With a broker URL (nats://… or redis://…) it joins that cluster.
// A client's first line names its room ("room NAME"); the server answers
// with one 64-byte line, then every further line is broadcast to the
// client's room, the sender excepted. Prints "listening <port>" once ready
// and, on SIGTERM, "stats {...}" with the server's and the cluster's
// counters.
import { lines, listen, type Session } from "../../mod.ts";
import { type Cluster, connectCluster } from "../../cluster.ts";

const url = Deno.args[0];
const cluster: Cluster | undefined = url === undefined
  ? undefined
  : await connectCluster({ url });
const ACK = "A".repeat(63);
const roomOf = new WeakMap<Session<unknown, string, string>, string>();

const server = listen<unknown, string, string>({
  hostname: "127.0.0.1",
  port: 0,
  codec: lines(),
  ...(cluster !== undefined && { cluster }),
  onMessage: (session, line): void => {
    const room = roomOf.get(session);
    if (room !== undefined) {
      server.sessions.broadcast(line, { room, except: session });
    } else if (line.startsWith("room ")) {
      roomOf.set(session, line.slice(5));
      server.sessions.join(session, line.slice(5));
      session.send(ACK);
    }
  },
});

Deno.addSignalListener("SIGTERM", () => {
  const { writes, framesIn, framesOut } = server.stats();
  console.log(
    `stats ${
      JSON.stringify({
        writes,
        framesIn,
        framesOut,
        cluster: cluster?.stats(),
      })
    }`,
  );
  Deno.exit(0);
});

console.log(`listening ${server.addr.port}`);
