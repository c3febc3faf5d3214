// Fixture for tests/metrics/otel_test.ts: a broadcasting lines() server
// instrumented with the ./otel entry point, run with OTEL_DENO=true so that
// Deno's own MeterProvider exports its metrics over OTLP.
// A second, json() server asks each client that opens two requests (the
// request-duration histogram). Prints {"port": n, "requestPort": m} on its
// first stdout line; shuts down when stdin ends.
import { json, lines, listen, type Server } from "../../mod.ts";
import { instrumentMetrics } from "../../otel.ts";

const server: Server<unknown, string, string, Deno.NetAddr> = listen({
  hostname: "127.0.0.1",
  port: 0,
  codec: lines({ maxLineBytes: 64 }),
  onMessage: (_session, line) => void server.sessions.broadcast(line),
  onError: () => {}, // the cut client's FrameTooLargeError is expected
});
type Msg = { n: number };
const asking: Server<unknown, Msg, Msg, Deno.NetAddr> = listen({
  hostname: "127.0.0.1",
  port: 0,
  codec: json<Msg>(),
  // Not awaited by onOpen: replies wait behind a running onOpen.
  onOpen: (session) =>
    void session.request({ n: 1 }).then(() => session.request({ n: 2 })),
});
using _metrics = instrumentMetrics([server, asking]);
console.log(
  JSON.stringify({ port: server.addr.port, requestPort: asking.addr.port }),
);
for await (const _ of Deno.stdin.readable) {
  // Runs until the test closes stdin.
}
await Promise.all([server.shutdown(), asking.shutdown()]);
