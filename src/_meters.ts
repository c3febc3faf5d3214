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
  /** Recovery's counters, when the server has `recovery` (issue 17). */
  readonly recovery?: RecoveryMeter | undefined;
}

/** Why a resume was refused (the client then starts a fresh session). */
export const RECOVERY_REFUSALS = [
  /** No such session: never was, or its window passed and it closed. */
  "unknown_session",
  /** The session exists and the token isn't its current one. */
  "bad_token",
  /** The log no longer holds (or never held) what the client missed. */
  "trimmed",
  /** A malformed hello. */
  "bad_hello",
  /** The resumed connection differs (WebSocket compression on vs off). */
  "transport_changed",
  /** A cluster's history engine lost its stream since (a new epoch). */
  "epoch",
  /** The client's position is beyond anything the engine gave out. */
  "future",
] as const;

/** A refused resume's `reason` label. */
export type RecoveryRefusal = (typeof RECOVERY_REFUSALS)[number];

/** A server's recovery counters (issue 17). */
export interface RecoveryMeter {
  /** Sessions that went on over a new connection. */
  resumed: number;
  /** Resumable sessions opened fresh (a `new` hello). */
  fresh: number;
  /** Resumes refused, by reason. */
  refused: Record<RecoveryRefusal, number>;
  /** Detached sessions closed because their window passed. */
  expired: number;
  /** Sessions waiting for their client now. */
  readonly detached: number;
}

/** A session manager's broadcast counters. */
export interface BroadcastMeter {
  /** Calls to `broadcast()`. */
  broadcasts: number;
  /** Sessions (here) that accepted a broadcast's message. */
  deliveries: number;
}
