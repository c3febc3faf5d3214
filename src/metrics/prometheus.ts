// The Prometheus text exposition of a server's counters. A function over
// the server rather than a `Server.metrics()` method: the core class stays
// as it is (nothing to pay for a feature you don't call), one exposition can
// cover several servers that share a session manager (the chat's TCP and
// WebSocket servers), and the OpenTelemetry entry point renders the same
// reading (see _collect.ts) its own way.
import {
  collect,
  type MetricsServers,
  RECOVERY_REFUSALS,
  REFUSAL_REASONS,
} from "./_collect.ts";
import { Exposition } from "../_exposition.ts";
import { LATENCY_BOUNDS } from "../session/_latency_histogram.ts";

/**
 * The `Content-Type` of the Prometheus text format 0.0.4.
 *
 * @example Answering a scrape yourself
 * ```ts
 * import { listen, PROMETHEUS_CONTENT_TYPE, prometheusMetrics } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * const response = new Response(prometheusMetrics(server), {
 *   headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
 * });
 * assert.equal(response.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
 * ```
 */
export const PROMETHEUS_CONTENT_TYPE =
  "text/plain; version=0.0.4; charset=utf-8";

/**
 * The servers' counters in the Prometheus text format 0.0.4: `# HELP` and
 * `# TYPE` lines, counters ending in `_total`, base units (bytes,
 * seconds), and labels of bounded cardinality only (`transport`, a close
 * or refusal `reason` — never a session id or a room name). Every value is
 * a counter the server keeps anyway, read now: metrics cost nothing per
 * message. See the README's Metrics section for each metric's meaning.
 *
 * @param servers One server, or several (e.g. a TCP and a WebSocket server
 * sharing a session manager: their broadcasts count once).
 * @returns The exposition text.
 *
 * @example Reading the metrics of a server
 * ```ts
 * import { listen, prometheusMetrics } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * const text = prometheusMetrics(server);
 * assert.match(text, /^# TYPE microsocket_sessions gauge$/m);
 * assert.match(text, /^microsocket_sessions\{transport="tcp"\} 0$/m);
 * ```
 */
export function prometheusMetrics(servers: MetricsServers): string {
  const r = collect(servers);
  const out = new Exposition();
  const counter = (name: string, help: string, value: number): void => {
    out.family(name, "counter", help).sample(name, value);
  };
  out.family(
    "microsocket_sessions",
    "gauge",
    "Sessions open now (including ones still authenticating).",
  );
  for (const [transport, value] of Object.entries(r.sessions)) {
    out.sample("microsocket_sessions", value, { transport });
  }
  out.family(
    "microsocket_sessions_opened_total",
    "counter",
    "Sessions opened since the server started.",
  );
  for (const [transport, value] of Object.entries(r.opened)) {
    out.sample("microsocket_sessions_opened_total", value, { transport });
  }
  out.family(
    "microsocket_sessions_closed_total",
    "counter",
    'Sessions closed, by close reason ("other" for reasons the application chose).',
  );
  for (const [transport, reasons] of Object.entries(r.closed)) {
    for (const [reason, value] of Object.entries(reasons)) {
      out.sample("microsocket_sessions_closed_total", value, {
        transport,
        reason,
      });
    }
  }
  out.family(
    "microsocket_connections_refused_total",
    "counter",
    "Connections closed before becoming sessions, by reason.",
  );
  for (const reason of REFUSAL_REASONS) {
    out.sample("microsocket_connections_refused_total", r.refused[reason], {
      reason,
    });
  }
  counter(
    "microsocket_accept_errors_total",
    "Failed accept() calls (e.g. EMFILE), each followed by a backoff.",
    r.acceptErrors,
  );
  counter(
    "microsocket_http_requests_total",
    "WebSocket transport: plain HTTP requests answered.",
    r.httpRequests,
  );
  counter(
    "microsocket_messages_received_total",
    "Messages decoded from peers (heartbeats and replies included).",
    r.messagesIn,
  );
  counter(
    "microsocket_received_bytes_total",
    "Bytes read from peers.",
    r.bytesIn,
  );
  counter(
    "microsocket_messages_sent_total",
    "Messages accepted for sending (broadcast deliveries included).",
    r.messagesOut,
  );
  counter(
    "microsocket_sent_bytes_total",
    "Bytes written to peers.",
    r.bytesOut,
  );
  counter(
    "microsocket_writes_total",
    "Writes made to connections (messages queued together share one).",
    r.writes,
  );
  out.family(
    "microsocket_frames_dropped_total",
    "counter",
    "Messages refused because a session's queue had no room, by reason.",
  ).sample("microsocket_frames_dropped_total", r.framesDropped, {
    reason: "outbound_budget",
  });
  counter(
    "microsocket_broadcasts_total",
    "Calls to broadcast().",
    r.broadcasts,
  );
  counter(
    "microsocket_broadcast_deliveries_total",
    "Sessions on this server that accepted a broadcast message.",
    r.broadcastDeliveries,
  );
  out.family(
    "microsocket_outbound_queued_bytes",
    "gauge",
    "Bytes queued for peers now, summed over open sessions.",
  ).sample("microsocket_outbound_queued_bytes", r.queuedBytes);
  const m = r.meters;
  counter(
    "microsocket_flow_control_pauses_total",
    "Times a session's reading paused because a peer it sent to was over its high-water mark.",
    m.flowPauses,
  );
  counter(
    "microsocket_flow_control_paused_seconds_total",
    "Time sessions' reading spent paused by flow control.",
    m.flowPausedMs / 1000,
  );
  counter(
    "microsocket_rate_limit_hits_total",
    "Messages or reads a rate limit throttled or refused.",
    m.rateLimitHits,
  );
  counter(
    "microsocket_request_timeouts_total",
    "Requests (session.request()) that timed out.",
    m.requestTimeouts,
  );
  const recovery = r.recovery;
  if (recovery !== undefined) {
    counter(
      "microsocket_recovery_resumed_total",
      "Sessions that went on over a new connection (recovered: true).",
      recovery.resumed,
    );
    counter(
      "microsocket_recovery_fresh_total",
      "Resumable sessions opened fresh.",
      recovery.fresh,
    );
    out.family(
      "microsocket_recovery_refused_total",
      "counter",
      "Resumes refused, by reason (the client starts fresh: recovered: false).",
    );
    for (const reason of RECOVERY_REFUSALS) {
      out.sample(
        "microsocket_recovery_refused_total",
        recovery.refused[reason],
        {
          reason,
        },
      );
    }
    counter(
      "microsocket_recovery_expired_total",
      "Detached sessions closed because their recovery window passed.",
      recovery.expired,
    );
    out.family(
      "microsocket_recovery_detached_sessions",
      "gauge",
      "Sessions waiting for their client to come back now.",
    ).sample("microsocket_recovery_detached_sessions", recovery.detached);
  }
  const latency = m.requestLatency;
  const name = "microsocket_request_duration_seconds";
  out.family(name, "histogram", "How long answered requests took.");
  let cumulative = 0;
  for (let i = 0; i < LATENCY_BOUNDS.length; i++) {
    cumulative += latency.counts[i]!;
    out.sample(`${name}_bucket`, cumulative, {
      le: String(LATENCY_BOUNDS[i]),
    });
  }
  out.sample(`${name}_bucket`, latency.count, { le: "+Inf" });
  out.sample(`${name}_sum`, latency.sum);
  out.sample(`${name}_count`, latency.count);
  return out.toString();
}
