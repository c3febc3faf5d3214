// Metrics on real sockets: the Prometheus exposition's format, and exact
// counter values after a known exchange (they survive the sessions' close).
import assert from "node:assert/strict";
import {
  json,
  lines,
  listen,
  metricsHandler,
  PROMETHEUS_CONTENT_TYPE,
  prometheusMetrics,
  type Server,
} from "../../mod.ts";
import { LineReader, until, utf8, writeAll } from "../_util.ts";
import { dial, portOf } from "../_server.ts";
import { METRIC_NAME, parseExposition, valueOf } from "./_prometheus_text.ts";

// A server that broadcasts every line to everyone.
function broadcastServer(): Server<unknown, string> {
  const server: Server<unknown, string> = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lines({ maxLineBytes: 64 }),
    onMessage: (_session, line) => void server.sessions.broadcast(line),
    onError: () => {}, // the cut client's FrameTooLargeError is expected
  });
  return server;
}

Deno.test("prometheusMetrics(): exact counters after 3 clients × 4 broadcast lines, kept after the sessions close", async () => {
  await using server = broadcastServer();
  const port = portOf(server.addr);
  const conns = await Promise.all([dial(port), dial(port), dial(port)]);
  const readers = conns.map((conn) => new LineReader(conn));
  await until(() => server.sessions.size === 3, 2000, "3 sessions");
  let families = parseExposition(prometheusMetrics(server));
  assert.equal(
    valueOf(families, "microsocket_sessions", { transport: "tcp" }),
    3,
  );
  const sent = ["a", "bb", "ccc", "dddd"];
  let bytesIn = 0;
  for (const [i, conn] of conns.entries()) {
    const text = sent.map((line) => `${i}${line}\n`).join("");
    bytesIn += utf8(text).length;
    await writeAll(conn, utf8(text));
  }
  // Every client reads all 12 lines.
  for (const reader of readers) {
    for (let n = 0; n < 12; n++) assert.notEqual(await reader.next(), null);
  }
  const bytesOut = 3 * bytesIn;
  const check = (text: string, open: number) => {
    families = parseExposition(text);
    const v = (name: string, labels?: Record<string, string>) =>
      valueOf(families, name, labels);
    assert.equal(v("microsocket_sessions", { transport: "tcp" }), open);
    assert.equal(v("microsocket_sessions_opened_total"), 3);
    assert.equal(v("microsocket_messages_received_total"), 12);
    assert.equal(v("microsocket_received_bytes_total"), bytesIn);
    assert.equal(v("microsocket_messages_sent_total"), 36);
    assert.equal(v("microsocket_sent_bytes_total"), bytesOut);
    assert.equal(v("microsocket_broadcasts_total"), 12);
    assert.equal(v("microsocket_broadcast_deliveries_total"), 36);
    assert.equal(v("microsocket_frames_dropped_total"), 0);
    assert.equal(v("microsocket_outbound_queued_bytes"), 0);
  };
  check(prometheusMetrics(server), 3);
  // Cut one client with a line over maxLineBytes, hang up the others.
  await writeAll(conns[0]!, utf8("x".repeat(100) + "\n"));
  assert.equal(await readers[0]!.next(), null);
  conns[0]!.close();
  conns[1]!.close();
  conns[2]!.close();
  await until(() => server.stats().sessionsOpen === 0, 2000, "all closed");
  const text = prometheusMetrics(server);
  // The cut message still counts as received bytes, not as a message.
  bytesIn += 101;
  check(text, 0);
  const closed = (reason: string) =>
    valueOf(families, "microsocket_sessions_closed_total", {
      transport: "tcp",
      reason,
    });
  assert.equal(closed("frame too large"), 1);
  assert.equal(closed("eof"), 2);
});

Deno.test("prometheusMetrics(): format — HELP and TYPE for every family, legal names, _total counters, histogram buckets cumulative", () => {
  const server = broadcastServer();
  try {
    const text = prometheusMetrics(server);
    const families = parseExposition(text);
    assert.ok(families.size >= 20, `${families.size} families`);
    for (const [name, family] of families) {
      assert.match(name, METRIC_NAME);
      assert.ok(name.startsWith("microsocket_"));
      assert.ok(family.help.length > 0);
      for (const sample of family.samples) {
        // Bounded labels only: never an id or a room.
        for (const key of Object.keys(sample.labels)) {
          assert.ok(["transport", "reason", "le"].includes(key), key);
        }
      }
    }
    const histogram = families.get("microsocket_request_duration_seconds")!;
    assert.equal(histogram.type, "histogram");
    const buckets = histogram.samples.filter((s) => s.name.endsWith("_bucket"));
    assert.equal(buckets.at(-1)!.labels.le, "+Inf");
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
    }
  } finally {
    void server.close();
  }
  return server.closed;
});

Deno.test('prometheusMetrics(): an application\'s own close reason is labelled "other"', async () => {
  await using server = listen({
    hostname: "127.0.0.1",
    port: 0,
    onOpen: (session) => void session.close("kicked by admin 42"),
  });
  const port = portOf(server.addr);
  const first = await dial(port);
  const reader = new LineReader(first);
  assert.equal(await reader.next(), null);
  first.close();
  await until(() => server.stats().sessionsOpen === 0, 2000, "closed");
  const families = parseExposition(prometheusMetrics(server));
  assert.equal(
    valueOf(families, "microsocket_sessions_closed_total", { reason: "other" }),
    1,
  );
  const names = [...families.values()].flatMap((f) =>
    f.samples.map((s) => JSON.stringify(s.labels))
  ).join();
  assert.ok(!names.includes("kicked"), "no free-form reason as a label");
});

Deno.test("prometheusMetrics(): connections refused over maxConnections", async () => {
  await using server = listen({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: 1,
  });
  const port = portOf(server.addr);
  const held = await dial(port);
  await until(() => server.stats().sessionsOpen === 1, 2000, "one session");
  const refused = await dial(port);
  assert.equal(await new LineReader(refused).next(), null);
  refused.close();
  const families = parseExposition(prometheusMetrics(server));
  assert.equal(
    valueOf(families, "microsocket_connections_refused_total", {
      reason: "max_connections",
    }),
    1,
  );
  held.close();
});

Deno.test("prometheusMetrics(): rate-limit hits counted", async () => {
  const got: string[] = [];
  await using server = listen({
    hostname: "127.0.0.1",
    port: 0,
    rateLimit: { messagesPerSecond: 50, messageBurst: 1, policy: "throttle" },
    onMessage: (_session, line) => void got.push(line),
  });
  const conn = await dial(portOf(server.addr));
  await writeAll(conn, utf8("1\n2\n3\n"));
  await until(() => got.length === 3, 2000, "3 lines");
  const families = parseExposition(prometheusMetrics(server));
  // The first line takes the one token; the other two wait for theirs.
  assert.equal(valueOf(families, "microsocket_rate_limit_hits_total"), 2);
  conn.close();
});

Deno.test("prometheusMetrics(): request latency histogram and timeouts", async () => {
  type Msg = { q?: string; a?: string };
  const outcomes: string[] = [];
  await using server = listen<unknown, Msg, Msg>({
    hostname: "127.0.0.1",
    port: 0,
    codec: json<Msg, Msg>(),
    onOpen: (session) => {
      for (const q of ["one", "two"]) {
        session.request({ q }, { timeout: 300 }).then(
          () => outcomes.push(`${q} answered`),
          () => outcomes.push(`${q} timed out`),
        );
      }
    },
  });
  const conn = await dial(portOf(server.addr));
  const reader = new LineReader(conn);
  const first = JSON.parse((await reader.next())!);
  await reader.next();
  // Answer the first request only.
  await writeAll(conn, utf8(`${JSON.stringify({ a: "1", $re: first.$id })}\n`));
  await until(() => outcomes.length === 2, 3000, "both requests settled");
  assert.deepEqual(outcomes.sort(), ["one answered", "two timed out"]);
  let families = parseExposition(prometheusMetrics(server));
  assert.equal(valueOf(families, "microsocket_request_timeouts_total"), 1);
  assert.equal(
    valueOf(families, "microsocket_request_duration_seconds_count"),
    1,
  );
  assert.equal(
    valueOf(families, "microsocket_request_duration_seconds_bucket", {
      le: "+Inf",
    }),
    1,
  );
  conn.close();
  await until(() => server.stats().sessionsOpen === 0, 2000, "closed");
  // Folded into the server's totals when the session closed.
  families = parseExposition(prometheusMetrics(server));
  assert.equal(valueOf(families, "microsocket_request_timeouts_total"), 1);
  assert.equal(
    valueOf(families, "microsocket_request_duration_seconds_count"),
    1,
  );
});

Deno.test("metricsHandler(): 200 with the 0.0.4 content type on /metrics, 404 elsewhere, 405 for POST", async () => {
  await using server = broadcastServer();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    metricsHandler(server),
  );
  const base = `http://127.0.0.1:${http.addr.port}`;
  const ok = await fetch(`${base}/metrics`);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
  parseExposition(await ok.text());
  const missing = await fetch(`${base}/other`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const post = await fetch(`${base}/metrics`, { method: "POST" });
  assert.equal(post.status, 405);
  await post.body?.cancel();
});

Deno.test("prometheusMetrics(): a flow-control pause, its duration, the queued bytes and the slow consumer's close", async () => {
  const big = "x".repeat(64 * 1024);
  let stuckId = 0;
  const server: Server<unknown, string> = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lines({ maxLineBytes: 128 * 1024 }),
    outboundBudget: 64 << 20,
    highWaterMark: 256 * 1024,
    drainTimeout: 300,
    onMessage: () => {
      for (let i = 0; i < 200; i++) server.sessions.send(stuckId, big);
    },
  });
  try {
    const stuck = await dial(portOf(server.addr));
    await until(() => server.sessions.size === 1, 2000, "the stuck session");
    stuckId = [...server.sessions][0]!.id;
    using producer = await dial(portOf(server.addr));
    await until(() => server.sessions.size === 2, 2000, "the producer");
    const producerSession = [...server.sessions][1]!;
    await writeAll(producer, utf8("go\n"));
    await until(() => producerSession.paused, 3000, "the producer paused");
    let families = parseExposition(prometheusMetrics(server));
    const queued = valueOf(families, "microsocket_outbound_queued_bytes")!;
    assert.ok(queued > 256 * 1024, `queued ${queued}`);
    await until(() => !producerSession.paused, 3000, "the producer resumed");
    // The reader counts the pause's end once it runs again.
    await until(
      () =>
        valueOf(
          parseExposition(prometheusMetrics(server)),
          "microsocket_flow_control_paused_seconds_total",
        )! > 0,
      2000,
      "the pause's duration",
    );
    families = parseExposition(prometheusMetrics(server));
    assert.equal(valueOf(families, "microsocket_flow_control_pauses_total"), 1);
    const seconds = valueOf(
      families,
      "microsocket_flow_control_paused_seconds_total",
    )!;
    // Held until the stuck peer's drainTimeout (300 ms) cut it.
    assert.ok(seconds >= 0.2 && seconds < 3, `paused ${seconds} s`);
    // The cut session finishes closing once its peer hangs up.
    stuck.close();
    await until(
      () => server.stats().closedByReason["slow consumer"] === 1,
      5000,
      "the slow consumer closed",
    );
    families = parseExposition(prometheusMetrics(server));
    assert.equal(
      valueOf(families, "microsocket_sessions_closed_total", {
        reason: "slow consumer",
      }),
      1,
    );
  } finally {
    await server.shutdown({ timeout: 200 });
  }
});
