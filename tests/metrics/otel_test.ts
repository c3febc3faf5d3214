// The ./otel entry point: the same values as the Prometheus text, read by an
// in-test MeterProvider, and exported over OTLP/HTTP (JSON) by Deno's own
// OpenTelemetry (OTEL_DENO=true) to a tiny receiver in the test.
import assert from "node:assert/strict";
import { metrics } from "npm:@opentelemetry/api@^1.9.0";
import { lines, listen, prometheusMetrics, type Server } from "../../mod.ts";
import { instrumentMetrics } from "../../otel.ts";
import { LineReader, until, utf8, writeAll } from "../_util.ts";
import { dial, portOf } from "../_server.ts";
import { parseExposition, valueOf } from "./_prometheus_text.ts";

type Observation = {
  name: string;
  value: number;
  attributes: Record<string, unknown>;
};

// A MeterProvider that records instruments and runs the batch callbacks on
// collect(): what an SDK does, without one.
class TestMeterProvider {
  readonly instruments = new Map<object, string>();
  readonly callbacks = new Set<(observer: unknown) => void>();
  getMeter(_name: string) {
    const instrument = (name: string) => {
      const handle = { name };
      this.instruments.set(handle, name);
      return handle;
    };
    return {
      createObservableGauge: instrument,
      createObservableCounter: instrument,
      addBatchObservableCallback: (cb: (o: unknown) => void) =>
        void this.callbacks.add(cb),
      removeBatchObservableCallback: (cb: (o: unknown) => void) =>
        void this.callbacks.delete(cb),
    };
  }
  collect(): Observation[] {
    const out: Observation[] = [];
    const observer = {
      observe: (
        handle: object,
        value: number,
        attributes: Record<string, unknown> = {},
      ) => out.push({ name: this.instruments.get(handle)!, value, attributes }),
    };
    for (const callback of this.callbacks) callback(observer);
    return out;
  }
}

function find(
  observations: Observation[],
  name: string,
  attributes: Record<string, unknown> = {},
): number | undefined {
  return observations.find((o) =>
    o.name === name &&
    Object.entries(attributes).every(([k, v]) => o.attributes[k] === v)
  )?.value;
}

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
    const { port } = JSON.parse(first.split("\n")[0]!);
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
  } finally {
    await stdin.close();
    await stdout.cancel();
    const status = await child.status;
    assert.equal(status.code, 0, await stderr);
  }
});
