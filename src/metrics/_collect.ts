// Package-internal: one reading of every metric, taken at scrape time from
// the counters the servers keep (plain numbers; nothing here runs per
// message). The Prometheus text and the OpenTelemetry instruments both
// render this reading, so they always agree.
import { CloseReason } from "../close_reason.ts";
import type { Server } from "../server.ts";
import {
  addMeters,
  SessionMeters,
  type WithParts,
} from "../session/_internals.ts";
import {
  broadcastMeter,
  RECOVERY_REFUSALS,
  type RecoveryRefusal,
  serverMeter,
} from "../_meters.ts";

export { RECOVERY_REFUSALS };

/** Recovery's counters summed over servers (issue 17). */
export interface RecoveryReading {
  resumed: number;
  fresh: number;
  refused: Record<RecoveryRefusal, number>;
  expired: number;
  detached: number;
}

/** Connections refused before becoming sessions, by `reason` label. */
export const REFUSAL_REASONS = [
  "max_connections",
  "max_connections_per_ip",
  "vetoed",
  "handshake_refused",
  "handshake_failed",
] as const;

/** A refusal's `reason` label. */
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

// Close reasons the library gives. Anything else (an application's own
// `session.close("kicked by admin")`) is counted as "other": labels must
// have a bounded set of values.
const KNOWN_REASONS: ReadonlySet<string> = new Set(Object.values(CloseReason));

/** One reading of every metric; see the file comment. */
export interface MetricsReading {
  /** Open sessions by transport. */
  sessions: Record<string, number>;
  /** Sessions opened by transport. */
  opened: Record<string, number>;
  /** Sessions closed by transport, then by close reason. */
  closed: Record<string, Record<string, number>>;
  /** Connections refused by reason. */
  refused: Record<RefusalReason, number>;
  acceptErrors: number;
  httpRequests: number;
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  writes: number;
  framesDropped: number;
  broadcasts: number;
  broadcastDeliveries: number;
  queuedBytes: number;
  /** Everything else sessions count, summed over open and closed ones. */
  meters: SessionMeters;
  /** Set when at least one server has `recovery`. */
  recovery: RecoveryReading | undefined;
}

/**
 * One server, or several (e.g. a chat's TCP and WebSocket servers sharing a
 * session manager), whose metrics are read together.
 *
 * @example Two servers, one exposition
 * ```ts
 * import { listen, type MetricsServers, prometheusMetrics } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using tcp = listen({ hostname: "127.0.0.1", port: 0 });
 * await using ws = listen({
 *   transport: "websocket",
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   sessions: tcp.sessions,
 * });
 * const servers: MetricsServers = [tcp, ws];
 * assert.match(prometheusMetrics(servers), /transport="websocket"/);
 * ```
 */
export type MetricsServers =
  // deno-lint-ignore no-explicit-any
  | Server<any, any, any, any>
  // deno-lint-ignore no-explicit-any
  | readonly Server<any, any, any, any>[];

/**
 * Reads the counters of `servers` (which may share a session manager, as a
 * TCP and a WebSocket server of one chat do: its broadcasts count once).
 */
export function collect(servers: MetricsServers): MetricsReading {
  const list =
    (Array.isArray(servers) ? servers : [servers]) as readonly Server<
      unknown,
      unknown,
      unknown
    >[];
  const reading: MetricsReading = {
    sessions: {},
    opened: {},
    closed: {},
    refused: {
      max_connections: 0,
      max_connections_per_ip: 0,
      vetoed: 0,
      handshake_refused: 0,
      handshake_failed: 0,
    },
    acceptErrors: 0,
    httpRequests: 0,
    messagesIn: 0,
    bytesIn: 0,
    messagesOut: 0,
    bytesOut: 0,
    writes: 0,
    framesDropped: 0,
    broadcasts: 0,
    broadcastDeliveries: 0,
    queuedBytes: 0,
    meters: new SessionMeters(),
    recovery: undefined,
  };
  const managers = new Set<object>();
  for (const server of list) {
    const source = server[serverMeter];
    const transport = source.transport;
    const stats = server.stats();
    reading.sessions[transport] = (reading.sessions[transport] ?? 0) +
      stats.sessionsOpen;
    reading.opened[transport] = (reading.opened[transport] ?? 0) +
      stats.sessionsTotal;
    const closed = reading.closed[transport] ??= {};
    for (const [reason, count] of Object.entries(stats.closedByReason)) {
      const label = KNOWN_REASONS.has(reason) ? reason : "other";
      closed[label] = (closed[label] ?? 0) + count;
    }
    const refused = reading.refused;
    refused.max_connections += stats.rejected.maxConnections;
    refused.max_connections_per_ip += stats.rejected.maxConnectionsPerIp;
    refused.vetoed += stats.rejected.vetoed;
    refused.handshake_refused += stats.websocket?.handshakeRefused ?? 0;
    refused.handshake_failed += stats.websocket?.handshakeFailed ?? 0;
    reading.acceptErrors += stats.acceptErrors;
    reading.httpRequests += stats.websocket?.httpRequests ?? 0;
    reading.messagesIn += stats.framesIn;
    reading.bytesIn += stats.bytesIn;
    reading.messagesOut += stats.framesOut;
    reading.bytesOut += stats.bytesOut;
    reading.writes += stats.writes;
    reading.framesDropped += stats.framesDropped;
    const recovery = source.recovery;
    if (recovery !== undefined) {
      const into = reading.recovery ??= {
        resumed: 0,
        fresh: 0,
        refused: Object.fromEntries(
          RECOVERY_REFUSALS.map((reason) => [reason, 0]),
        ) as Record<RecoveryRefusal, number>,
        expired: 0,
        detached: 0,
      };
      into.resumed += recovery.resumed;
      into.fresh += recovery.fresh;
      into.expired += recovery.expired;
      into.detached += recovery.detached;
      for (const reason of RECOVERY_REFUSALS) {
        into.refused[reason] += recovery.refused[reason];
      }
    }
    const meters = reading.meters;
    addClosed(meters, source.closed);
    for (const session of source.live.keys()) {
      reading.queuedBytes += session.queuedBytes;
      addMeters(meters, session as WithParts);
    }
    if (!managers.has(server.sessions)) {
      managers.add(server.sessions);
      const broadcasts = server.sessions[broadcastMeter];
      reading.broadcasts += broadcasts.broadcasts;
      reading.broadcastDeliveries += broadcasts.deliveries;
    }
  }
  return reading;
}

function addClosed(into: SessionMeters, from: SessionMeters): void {
  into.rateLimitHits += from.rateLimitHits;
  into.flowPauses += from.flowPauses;
  into.flowPausedMs += from.flowPausedMs;
  into.requestTimeouts += from.requestTimeouts;
  into.requestLatency.add(from.requestLatency);
}
