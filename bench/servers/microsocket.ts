// The microsocket server under test, written only with the public API, the
// way an application would: a chat-style broadcast with the lines codec and
// an echo with the length-prefixed codec. Defaults everywhere (1 MiB outbound
// budget, overflow "close").
//
// Usage: deno run --allow-net=127.0.0.1 bench/servers/microsocket.ts fanout|echo
// fanout: every line from a client is delivered to every other client.
// echo:   every 4-byte big-endian length-prefixed frame is sent back.
// Prints "listening <port>" once ready.
import { lengthPrefixed, lines, listen } from "../../mod.ts";

const mode = Deno.args[0];
if (mode !== "fanout" && mode !== "echo") {
  console.error("usage: microsocket.ts fanout|echo");
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
  return server.addr;
}

function echo(): Deno.Addr {
  const server = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lengthPrefixed(),
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

const addr = mode === "fanout" ? fanout() : echo();
console.log(`listening ${(addr as Deno.NetAddr).port}`);
