// Fixture for tests/metrics_otel_test.ts: a broadcasting lines() server
// instrumented with the ./otel entry point, run with OTEL_DENO=true so that
// Deno's own MeterProvider exports its metrics over OTLP.
// Prints {"port": n} on its first stdout line; shuts down when stdin ends.
import { lines, listen, type Server } from "../../mod.ts";
import { instrumentMetrics } from "../../otel.ts";

const server: Server<unknown, string, string, Deno.NetAddr> = listen({
  hostname: "127.0.0.1",
  port: 0,
  codec: lines({ maxLineBytes: 64 }),
  onMessage: (_session, line) => void server.sessions.broadcast(line),
  onError: () => {}, // the cut client's FrameTooLargeError is expected
});
using _metrics = instrumentMetrics(server);
console.log(JSON.stringify({ port: server.addr.port }));
for await (const _ of Deno.stdin.readable) {
  // Runs until the test closes stdin.
}
await server.shutdown();
