// OpenTelemetry instruments over the same reading as the Prometheus text
// (_collect.ts): observable counters and gauges whose one batch callback
// reads the servers' counters when the SDK collects, so nothing runs per
// message. Only this file depends on `@opentelemetry/api`, and only the
// `./otel` entry point reaches it: the core stays dependency-free.
//
// Names follow OpenTelemetry's conventions (dotted, unit in `unit`); an
// OTLP → Prometheus pipeline turns them into the names the Prometheus text
// uses. With `OTEL_DENO=true`, Deno registers its own MeterProvider, so
// `instrumentMetrics(server)` exports over OTLP with no further setup.
//
// The request-duration histogram is the exception: OpenTelemetry has no
// observable histogram, so each answered request's duration is recorded as
// it happens, through a tap on the servers' session managers that exists
// only while instrumented (see src/session/_latency_histogram.ts).
import type {
  Attributes,
  BatchObservableCallback,
  Observable,
} from "npm:@opentelemetry/api@^1.9.0";
import {
  collect,
  type MetricsServers,
  RECOVERY_REFUSALS,
  REFUSAL_REASONS,
} from "./_collect.ts";
import { meterOf } from "./_otel_meter.ts";
import {
  LATENCY_BOUNDS,
  type LatencyTap,
  latencyTaps,
} from "../session/_latency_histogram.ts";
import type { SessionManager } from "../session_manager.ts";

/**
 * A `MeterProvider` of `@opentelemetry/api` (the SDK's, or any other), seen
 * only as far as this module uses it.
 *
 * @example The global provider, passed explicitly
 * ```ts
 * import { metrics } from "npm:@opentelemetry/api@^1.9.0";
 * import type { OtelMeterProvider } from "@x/microsocket/otel";
 *
 * const provider: OtelMeterProvider = metrics.getMeterProvider();
 * ```
 */
export interface OtelMeterProvider {
  /** Returns the meter of an instrumentation scope. */
  getMeter(name: string, version?: string): object;
}

/**
 * Options of {@linkcode instrumentMetrics}.
 *
 * @example
 * ```ts
 * import { metrics } from "npm:@opentelemetry/api@^1.9.0";
 * import type { OtelMetricsOptions } from "@x/microsocket/otel";
 *
 * const options: OtelMetricsOptions = {
 *   meterProvider: metrics.getMeterProvider(),
 * };
 * ```
 */
export interface OtelMetricsOptions {
  /**
   * Where the instruments are created (their scope is `microsocket`).
   *
   * @default {the global MeterProvider (Deno's own with `OTEL_DENO=true`)}
   */
  meterProvider?: OtelMeterProvider;
}

/**
 * What {@linkcode instrumentMetrics} returns: stop observing with it.
 *
 * @example Reporting for a block only
 * ```ts
 * import { listen } from "@x/microsocket";
 * import { instrumentMetrics, type OtelMetrics } from "@x/microsocket/otel";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * {
 *   using _metrics: OtelMetrics = instrumentMetrics(server);
 * } // no longer reported here
 * ```
 */
export interface OtelMetrics extends Disposable {
  /** Stops observing: the instruments report nothing from now on. */
  [Symbol.dispose](): void;
}

/**
 * Registers OpenTelemetry instruments that report the servers' counters
 * whenever the MeterProvider collects: `microsocket.sessions` (gauge, by
 * `transport`), `microsocket.sessions.opened` and `.closed` (by `transport`
 * and close `reason`), `microsocket.connections.refused` (by `reason`),
 * `microsocket.messages.received` / `.sent`, `microsocket.bytes.received` /
 * `.sent` (unit `By`), `microsocket.writes`, `microsocket.frames.dropped`,
 * `microsocket.broadcasts`, `microsocket.broadcast.deliveries`,
 * `microsocket.outbound.queued` (gauge, `By`),
 * `microsocket.flow_control.pauses`, `microsocket.flow_control.paused`
 * (`s`), `microsocket.rate_limit.hits` and `microsocket.request.timeouts` —
 * the same values as {@linkcode prometheusMetrics}, read at collection time.
 * And `microsocket.request.duration` (unit `s`), a histogram of how long
 * the servers' sessions waited for each answer to `session.request()`,
 * with the Prometheus text's bucket bounds as advice: unlike the counters
 * it records answers from the moment of the call on, one by one (the
 * OpenTelemetry API has no observable histogram). Without a call, an
 * answer costs nothing more than without metrics.
 *
 * @param servers One server, or several sharing a session manager.
 * @param options The MeterProvider to use.
 * @returns A handle whose `[Symbol.dispose]()` stops the reporting.
 *
 * @example With the global MeterProvider (`OTEL_DENO=true` exports it)
 * ```ts
 * import { listen } from "@x/microsocket";
 * import { instrumentMetrics } from "@x/microsocket/otel";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * using _metrics = instrumentMetrics(server);
 * ```
 */
export function instrumentMetrics(
  servers: MetricsServers,
  options: OtelMetricsOptions = {},
): OtelMetrics {
  const meter = meterOf(options, "instrumentMetrics()");
  const gauge = (name: string, description: string, unit = "{session}") =>
    meter.createObservableGauge(name, { description, unit });
  const counter = (name: string, description: string, unit: string) =>
    meter.createObservableCounter(name, { description, unit });
  const i = {
    sessions: gauge("microsocket.sessions", "Sessions open now."),
    opened: counter(
      "microsocket.sessions.opened",
      "Sessions opened.",
      "{session}",
    ),
    closed: counter(
      "microsocket.sessions.closed",
      "Sessions closed, by close reason.",
      "{session}",
    ),
    refused: counter(
      "microsocket.connections.refused",
      "Connections closed before becoming sessions, by reason.",
      "{connection}",
    ),
    received: counter(
      "microsocket.messages.received",
      "Messages decoded from peers.",
      "{message}",
    ),
    sent: counter(
      "microsocket.messages.sent",
      "Messages accepted for sending.",
      "{message}",
    ),
    bytesIn: counter("microsocket.bytes.received", "Bytes read.", "By"),
    bytesOut: counter("microsocket.bytes.sent", "Bytes written.", "By"),
    writes: counter(
      "microsocket.writes",
      "Writes made to connections.",
      "{write}",
    ),
    dropped: counter(
      "microsocket.frames.dropped",
      "Messages refused for lack of queue room.",
      "{message}",
    ),
    broadcasts: counter(
      "microsocket.broadcasts",
      "Calls to broadcast().",
      "{broadcast}",
    ),
    deliveries: counter(
      "microsocket.broadcast.deliveries",
      "Sessions that accepted a broadcast message.",
      "{message}",
    ),
    queued: gauge(
      "microsocket.outbound.queued",
      "Bytes queued for peers now.",
      "By",
    ),
    pauses: counter(
      "microsocket.flow_control.pauses",
      "Times reading paused for flow control.",
      "{pause}",
    ),
    paused: counter(
      "microsocket.flow_control.paused",
      "Time reading spent paused by flow control.",
      "s",
    ),
    rateLimitHits: counter(
      "microsocket.rate_limit.hits",
      "Messages or reads a rate limit throttled or refused.",
      "{hit}",
    ),
    timeouts: counter(
      "microsocket.request.timeouts",
      "Requests that timed out.",
      "{request}",
    ),
    recoveryResumed: counter(
      "microsocket.recovery.resumed",
      "Sessions that went on over a new connection.",
      "{session}",
    ),
    recoveryFresh: counter(
      "microsocket.recovery.fresh",
      "Resumable sessions opened fresh.",
      "{session}",
    ),
    recoveryRefused: counter(
      "microsocket.recovery.refused",
      "Resumes refused, by reason.",
      "{session}",
    ),
    recoveryExpired: counter(
      "microsocket.recovery.expired",
      "Detached sessions closed because their window passed.",
      "{session}",
    ),
    recoveryDetached: gauge(
      "microsocket.recovery.detached",
      "Sessions waiting for their client now.",
      "{session}",
    ),
  };
  const callback: BatchObservableCallback = (observe) => {
    const r = collect(servers);
    const put = (
      instrument: Observable<Attributes>,
      value: number,
      attributes?: Attributes,
    ) => observe.observe(instrument, value, attributes);
    for (const [transport, value] of Object.entries(r.sessions)) {
      put(i.sessions, value, { transport });
    }
    for (const [transport, value] of Object.entries(r.opened)) {
      put(i.opened, value, { transport });
    }
    for (const [transport, reasons] of Object.entries(r.closed)) {
      for (const [reason, value] of Object.entries(reasons)) {
        put(i.closed, value, { transport, reason });
      }
    }
    for (const reason of REFUSAL_REASONS) {
      put(i.refused, r.refused[reason], { reason });
    }
    put(i.received, r.messagesIn);
    put(i.sent, r.messagesOut);
    put(i.bytesIn, r.bytesIn);
    put(i.bytesOut, r.bytesOut);
    put(i.writes, r.writes);
    put(i.dropped, r.framesDropped, { reason: "outbound_budget" });
    put(i.broadcasts, r.broadcasts);
    put(i.deliveries, r.broadcastDeliveries);
    put(i.queued, r.queuedBytes);
    put(i.pauses, r.meters.flowPauses);
    put(i.paused, r.meters.flowPausedMs / 1000);
    put(i.rateLimitHits, r.meters.rateLimitHits);
    put(i.timeouts, r.meters.requestTimeouts);
    const recovery = r.recovery;
    if (recovery !== undefined) {
      put(i.recoveryResumed, recovery.resumed);
      put(i.recoveryFresh, recovery.fresh);
      for (const reason of RECOVERY_REFUSALS) {
        put(i.recoveryRefused, recovery.refused[reason], { reason });
      }
      put(i.recoveryExpired, recovery.expired);
      put(i.recoveryDetached, recovery.detached);
    }
  };
  const observables = Object.values(i);
  meter.addBatchObservableCallback(callback, observables);
  const duration = meter.createHistogram("microsocket.request.duration", {
    description: "How long answered requests (session.request()) took.",
    unit: "s",
    advice: { explicitBucketBoundaries: [...LATENCY_BOUNDS] },
  });
  const tap: LatencyTap = (seconds) => duration.record(seconds);
  const managers = new Set<SessionManager<unknown, unknown, unknown>>();
  for (const server of Array.isArray(servers) ? servers : [servers]) {
    managers.add(server.sessions);
  }
  for (const manager of managers) (manager[latencyTaps] ??= new Set()).add(tap);
  return {
    [Symbol.dispose]: () => {
      meter.removeBatchObservableCallback(callback, observables);
      for (const manager of managers) {
        const taps = manager[latencyTaps];
        taps?.delete(tap);
        // None left: answers go back to costing one property read.
        if (taps?.size === 0) manager[latencyTaps] = undefined;
      }
    },
  };
}
