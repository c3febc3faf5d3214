// Package-internal: what a server and a session manager hand to the metrics
// module, under symbols mod.ts does not export. The counters are plain
// numbers bumped where the events happen; the metrics module only reads
// them, at scrape time.
import type { SessionMeters, WithParts } from "./session/_internals.ts";

/** The key of a server's {@linkcode ServerMeterSource}. */
export const serverMeter: unique symbol = Symbol("microsocket.metrics.server");

/** The key of a session manager's {@linkcode BroadcastMeter}. */
export const broadcastMeter: unique symbol = Symbol(
  "microsocket.metrics.broadcast",
);

/** A live session as the metrics module reads it. */
export interface MeteredSession extends WithParts {
  readonly queuedBytes: number;
}

/** What a server shows the metrics module. */
export interface ServerMeterSource {
  /** "tcp", "tls", "unix" or "websocket": the `transport` label. */
  readonly transport: string;
  /** Sessions not yet fully closed (the values are the server's own). */
  readonly live: ReadonlyMap<MeteredSession, unknown>;
  /** The meters of sessions already closed, folded in once each. */
  readonly closed: SessionMeters;
}

/** A session manager's broadcast counters. */
export interface BroadcastMeter {
  /** Calls to `broadcast()`. */
  broadcasts: number;
  /** Sessions (here) that accepted a broadcast's message. */
  deliveries: number;
}
