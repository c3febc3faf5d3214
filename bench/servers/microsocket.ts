// The microsocket server under test, written only with the public API, the
// way an application would: a chat-style broadcast with the lines codec and
// an echo with the length-prefixed codec. Defaults everywhere (1 MiB outbound
// budget, overflow "close").
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/microsocket.ts fanout|chat|echo
// fanout: every line from a client is delivered to every other client.
// chat:   like examples/chat_server.ts: every session joins one room in
//         onOpen, "* <id> joined" is broadcast to the room from onOpen and
//         "* <id> left" from onClose, lines go to the room (bench waves).
// echo:   every 4-byte big-endian length-prefixed frame is sent back.
// With a second argument "metrics", the Prometheus text is also built every
// 250 ms (a scrape 60 times as often as Prometheus's default): the cost of
// metrics "on" (issue 18), next to the same server without scrapes.
// A second argument "heartbeat" turns the heartbeat on in echo mode (empty
// frames as pings every 30 s), for the idle rows.
// Prints "listening <port>" once ready.
import {
  lengthPrefixed,
  lines,
  listen,
  prometheusMetrics,
  type Server,
} from "../../mod.ts";
import "./_idle_gc.ts";

const mode = Deno.args[0];
const heartbeat = Deno.args[1] === "heartbeat";
if (mode !== "fanout" && mode !== "chat" && mode !== "echo") {
  console.error("usage: microsocket.ts fanout|chat|echo");
  Deno.exit(2);
}

// deno-lint-ignore no-explicit-any
let stats: () => any = () => ({});

function fanout(): Deno.Addr {
  const server = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lines(),
    onMessage: (session, line): void => {
      server.sessions.broadcast(line, { except: session });
    },
  });
  stats = () => server.stats();
  scrape(server);
  return server.addr;
}

// The metrics "on" variant; see the file comment.
// deno-lint-ignore no-explicit-any
function scrape(server: Server<any, any>): void {
  if (Deno.args[1] !== "metrics") return;
  setInterval(() => void prometheusMetrics(server), 250);
}

function chat(): Deno.Addr {
  const room = "lobby";
  const server = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lines(),
    onOpen: (session): void => {
      server.sessions.join(session, room);
      server.sessions.broadcast(`* ${session.id} joined`, {
        room,
        except: session,
      });
    },
    onMessage: (session, line): void => {
      server.sessions.broadcast(line, { room, except: session });
    },
    onClose: (session): void => {
      server.sessions.broadcast(`* ${session.id} left`, { room });
    },
  });
  stats = () => server.stats();
  return server.addr;
}

function echo(): Deno.Addr {
  const server = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lengthPrefixed({ heartbeat }),
    heartbeatInterval: heartbeat ? 30_000 : 0,
    onMessage: (session, frame): void => {
      session.send(frame);
    },
  });
  stats = () => server.stats();
  return server.addr;
}

// On SIGTERM: report counters, then exit cleanly (so `--cpu-prof` can
// write its profile).
Deno.addSignalListener("SIGTERM", () => {
  const { writes, framesIn, framesOut, bytesOut } = stats();
  console.log(
    `stats ${
      JSON.stringify({ writes, reads: null, framesIn, framesOut, bytesOut })
    }`,
  );
  Deno.exit(0);
});

const addr = mode === "fanout" ? fanout() : mode === "chat" ? chat() : echo();
console.log(`listening ${(addr as Deno.NetAddr).port}`);
