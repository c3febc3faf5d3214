// The ./otel entry point: the same values as the Prometheus text, read by an
// in-test MeterProvider, and exported over OTLP/HTTP (JSON) by Deno's own
// OpenTelemetry (OTEL_DENO=true) to a tiny receiver in the test.
import assert from "node:assert/strict";
import { metrics } from "npm:@opentelemetry/api@^1.9.0";
import {
  connect,
  json,
  lines,
  listen,
  prometheusMetrics,
  type Server,
  type Session,
} from "../../mod.ts";
import { instrumentMetrics } from "../../otel.ts";
import { LineReader, until, utf8, writeAll } from "../_util.ts";
import { dial, portOf } from "../_server.ts";
import { parseExposition, valueOf } from "./_prometheus_text.ts";
import { find, TestMeterProvider } from "./_test_meter_provider.ts";
import { latencyTaps } from "../../src/session/_latency_histogram.ts";

function broadcastServer(): Server<unknown, string> {
  const server: Server<unknown, string> = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lines({ maxLineBytes: 64 }),
    onMessage: (_session, line) => void server.sessions.broadcast(line),
    onError: () => {},
  });
  return server;
}

// 3 clients send 4 lines each, everyone reads the 12; then one is cut by a
// line over maxLineBytes and the others hang up.
async function exchange(port: number, awaitClosed?: () => Promise<void>) {
  const conns = await Promise.all([dial(port), dial(port), dial(port)]);
  const readers = conns.map((conn) => new LineReader(conn));
  for (const [i, conn] of conns.entries()) {
    await writeAll(
      conn,
      utf8(["a", "b", "c", "d"].map((l) => `${i}${l}\n`).join("")),
    );
  }
  for (const reader of readers) {
    for (let n = 0; n < 12; n++) assert.notEqual(await reader.next(), null);
  }
  await writeAll(conns[0]!, utf8("x".repeat(100) + "\n"));
  assert.equal(await readers[0]!.next(), null);
  for (const conn of conns) conn.close();
  await awaitClosed?.();
}

Deno.test("instrumentMetrics(): an in-test MeterProvider reads the same values as the Prometheus text", async () => {
  await using server = broadcastServer();
  const provider = new TestMeterProvider();
  using _metrics = instrumentMetrics(server, { meterProvider: provider });
  await exchange(
    portOf(server.addr),
    () => until(() => server.stats().sessionsOpen === 0, 2000, "closed"),
  );
  const seen = provider.collect();
  assert.equal(find(seen, "microsocket.sessions", { transport: "tcp" }), 0);
  assert.equal(find(seen, "microsocket.sessions.opened"), 3);
  assert.equal(find(seen, "microsocket.messages.received"), 12);
  assert.equal(find(seen, "microsocket.messages.sent"), 36);
  assert.equal(find(seen, "microsocket.broadcast.deliveries"), 36);
  assert.equal(
    find(seen, "microsocket.sessions.closed", { reason: "frame too large" }),
    1,
  );
  assert.equal(find(seen, "microsocket.sessions.closed", { reason: "eof" }), 2);
  // The same numbers as the Prometheus text.
  const text = parseExposition(prometheusMetrics(server));
  assert.equal(
    find(seen, "microsocket.bytes.received"),
    valueOf(text, "microsocket_received_bytes_total"),
  );
  assert.equal(
    find(seen, "microsocket.bytes.sent"),
    valueOf(text, "microsocket_sent_bytes_total"),
  );
});

Deno.test("instrumentMetrics(): the global MeterProvider by default; dispose stops the reporting; unknown options refused", async () => {
  await using server = broadcastServer();
  const provider = new TestMeterProvider();
  metrics.setGlobalMeterProvider(provider as never);
  try {
    {
      using _metrics = instrumentMetrics(server);
      assert.equal(find(provider.collect(), "microsocket.sessions.opened"), 0);
    }
    assert.deepEqual(provider.collect(), []);
  } finally {
    metrics.disable();
  }
  assert.throws(
    () => instrumentMetrics(server, { meter: {} } as never),
    { name: "TypeError", message: /Unknown option meter/ },
  );
});

Deno.test("OTEL_DENO=true: Deno exports the instruments over OTLP/HTTP JSON to a local receiver, with the expected values", async () => {
  // Latest value per metric and attributes, from the microsocket scope.
  const latest = new Map<string, number>();
  const bounds = new Map<string, unknown>();
  const key = (name: string, attributes: Record<string, string> = {}) =>
    `${name}${JSON.stringify(Object.entries(attributes).sort())}`;
  await using receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const body = await request.json();
      if (new URL(request.url).pathname === "/v1/metrics") {
        for (const resource of body.resourceMetrics ?? []) {
          for (const scope of resource.scopeMetrics ?? []) {
            if (scope.scope?.name !== "microsocket") continue;
            for (const metric of scope.metrics ?? []) {
              // A histogram's point: its count, and its bounds once.
              for (const point of metric.histogram?.dataPoints ?? []) {
                latest.set(key(metric.name), Number(point.count));
                bounds.set(metric.name, point.explicitBounds);
              }
              const points = metric.sum?.dataPoints ??
                metric.gauge?.dataPoints ?? [];
              for (const point of points) {
                const attributes: Record<string, string> = {};
                for (const a of point.attributes ?? []) {
                  attributes[a.key] = a.value.stringValue;
                }
                latest.set(
                  key(metric.name, attributes),
                  Number(point.asInt ?? point.asDouble),
                );
              }
            }
          }
        }
      }
      return Response.json({});
    },
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../_fixtures/otel_server.ts", import.meta.url).pathname,
    ],
    env: {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      OTEL_SERVICE_NAME: "microsocket-test",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const stderr = new Response(child.stderr).text();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  try {
    let first = "";
    while (!first.includes("\n")) {
      const { value, done } = await stdout.read();
      if (done) break;
      first += value;
    }
    const { port, requestPort } = JSON.parse(first.split("\n")[0]!);
    await exchange(port);
    await until(
      () =>
        latest.get(key("microsocket.sessions.closed", {
            transport: "tcp",
            reason: "frame too large",
          })) === 1 &&
        latest.get(key("microsocket.sessions", { transport: "tcp" })) === 0,
      10_000,
      "the closes exported",
    );
    assert.equal(
      latest.get(key("microsocket.sessions.opened", { transport: "tcp" })),
      3,
    );
    assert.equal(latest.get(key("microsocket.messages.received")), 12);
    assert.equal(latest.get(key("microsocket.messages.sent")), 36);
    assert.equal(latest.get(key("microsocket.broadcast.deliveries")), 36);
    assert.equal(
      latest.get(key("microsocket.sessions.closed", {
        transport: "tcp",
        reason: "eof",
      })),
      2,
    );
    // Two requests answered by a client.
    type Msg = { n: number };
    let answered = 0;
    await using _client = await connect<unknown, Msg, Msg>({
      port: requestPort,
      codec: json<Msg>(),
      onMessage: (session, message) => {
        session.reply(message, { n: message.n });
        answered++;
      },
    });
    await until(() => answered === 2, 5000, "two requests answered");
    await until(
      () => latest.get(key("microsocket.request.duration")) === 2,
      10_000,
      "the request durations exported",
    );
    assert.deepEqual(
      bounds.get("microsocket.request.duration"),
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    );
  } finally {
    await stdin.close();
    await stdout.cancel();
    const status = await child.status;
    assert.equal(status.code, 0, await stderr);
  }
});

Deno.test("instrumentMetrics(): microsocket.request.duration is a histogram of each answered request, with the Prometheus buckets; none recorded after dispose", async () => {
  type Msg = { n: number };
  const answered = Promise.withResolvers<void>();
  let asks = 3;
  const ask = async (session: Session<unknown, Msg, Msg>): Promise<void> => {
    for (let n = 0; n < asks; n++) await session.request({ n });
    answered.resolve();
  };
  await using server = listen<unknown, Msg, Msg>({
    hostname: "127.0.0.1",
    port: 0,
    codec: json<Msg>(),
    onOpen: (session) => void ask(session),
  });
  const provider = new TestMeterProvider();
  const instrumented = instrumentMetrics(server, { meterProvider: provider });
  await using _client = await connect<unknown, Msg, Msg>({
    port: portOf(server.addr),
    codec: json<Msg>(),
    onMessage: (session, message) =>
      void session.reply(message, { n: message.n * 2 }),
  });
  await answered.promise;
  const histogram = provider.histograms.get("microsocket.request.duration");
  assert.ok(histogram !== undefined, "the histogram is created");
  assert.equal(histogram.options.unit, "s");
  assert.deepEqual(
    (histogram.options.advice as { explicitBucketBoundaries: number[] })
      .explicitBucketBoundaries,
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  assert.equal(histogram.values.length, 3);
  // The same observations as the Prometheus histogram.
  const text = parseExposition(prometheusMetrics(server));
  assert.equal(valueOf(text, "microsocket_request_duration_seconds_count"), 3);
  const sum = histogram.values.reduce((a, b) => a + b, 0);
  assert.ok(
    Math.abs(valueOf(text, "microsocket_request_duration_seconds_sum")! - sum) <
      1e-9,
  );
  for (const value of histogram.values) assert.ok(value >= 0 && value < 2);
  // Disposed: later answers are no longer recorded.
  instrumented[Symbol.dispose]();
  // No tap is left behind: an answer costs what it costs without metrics.
  assert.equal(server.sessions[latencyTaps], undefined);
  const session = [...server.sessions][0]!;
  await session.request({ n: 9 });
  assert.equal(histogram.values.length, 3);
  asks = 0;
});
