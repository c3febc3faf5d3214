// Package-internal: what the layers above a Session (the server, the client
// and the manager) may do with one that its users may not. Each session
// holds its parts under the `parts` symbol, which mod.ts does not export;
// these functions are the only code outside src/session/ that uses it, and
// each reaches exactly one part:
//   observe     the lifecycle: hear of the session opening and closing
//   attach      the lifecycle: the manager that serves session.join() etc.
//   sendShared  the writer: queue a broadcast's bytes by reference
//   adopt       the reader and the parts: the connection a transport opened
//               (bytes it read before the session existed, what it learned)
//   connectionOf  that connection, read back (e.g. a WebSocket's request)
//   addMeters   the inbound part and the writer's flow: metrics counters
//   messagesIn, suspend, resume  a resumable session (issue 17): counts,
//               the writer's log and replay, the reader's decoder
//   wrapDecoders  the reader: a cluster client's decoder wrap (issue 17)
import type { SessionHost, SessionObserver } from "./_lifecycle.ts";
import type { Decoder, DecoderLink } from "../codec/codec.ts";
import { type OutboundLog, resumableSessions } from "./_outbound_log.ts";
import { LatencyHistogram } from "./_latency_histogram.ts";
import type { SharedRun } from "./_shared_run.ts";

/** The key of a session's parts; see the file comment. */
export const parts: unique symbol = Symbol("microsocket.session.parts");

/** The parts of a session the layers above use, each seen narrowly. */
export interface SessionParts {
  readonly writer: {
    readonly flow: { readonly pauses: number; readonly pausedMs: number };
    log: OutboundLog | undefined;
    replay(from: number): boolean;
    sendShared(
      base: Uint8Array,
      start: number,
      end: number,
      frames: number,
      run?: SharedRun,
    ): boolean;
    queueReplayed(
      base: Uint8Array,
      start: number,
      end: number,
      frames: number,
    ): boolean;
  };
  readonly reader: {
    prelude: Uint8Array | undefined;
    decoder: Decoder<unknown>;
  };
  readonly inbound: {
    readonly framesIn: number;
    readonly heartbeatsIn: number;
    readonly rateLimitHits: number;
    readonly madeRequests:
      | { readonly timeouts: number; readonly latency: LatencyHistogram }
      | undefined;
    continueSession(): void;
  };
  readonly lifecycle: {
    host: SessionHost | undefined;
    observe(observer: SessionObserver): void;
  };
  /** The connection a transport opened the session on; see {@linkcode adopt}. */
  connection: OpenedConnection | undefined;
  /** What the session's decoder sends through (control frames). */
  readonly link: DecoderLink;
  readonly liveness:
    | { suspended: boolean; resumed(decoder: Decoder<unknown>): void }
    | undefined;
}

/**
 * What a transport opened a session on, as the session sees it (the
 * transport's `Connection`, src/transport/connection.ts): kept for the
 * session's life, so what the transport learned lives on it.
 */
export interface OpenedConnection {
  /** Bytes read before the session existed, decoded first. */
  readonly prelude: Uint8Array | undefined;
  /**
   * Set when the session is resumable (issue 17): the log its writer keeps
   * from the first message on, and who to tell about the session.
   */
  readonly resumable?: {
    readonly log: OutboundLog;
    bind(session: WithParts): void;
  } | undefined;
}

/** A Session, as these functions see it. */
export interface WithParts {
  readonly [parts]: SessionParts;
}

export type { SessionHost, SessionObserver };

/** Adds an observer; it is called at most once per event. */
export function observe(session: WithParts, observer: SessionObserver): void {
  session[parts].lifecycle.observe(observer);
}

/** Tells the session which manager holds it (for `session.join()`...). */
export function attach(
  session: WithParts,
  host: SessionHost | undefined,
): void {
  session[parts].lifecycle.host = host;
}

/**
 * Queues `base[start, end)` by reference (a broadcast's shared frame, or
 * `frames` frames back to back from another node), under the session's
 * budget. The hot path of every broadcast: one call into the writer. With
 * `run`, the session's queue follows the run when it can (_shared_run.ts).
 *
 * @returns Whether it was accepted.
 */
export function sendShared(
  session: WithParts,
  base: Uint8Array,
  start: number,
  end: number,
  frames = 1,
  run?: SharedRun,
): boolean {
  return session[parts].writer.sendShared(base, start, end, frames, run);
}

/**
 * Queues a replayed message from a cluster's history past the session's
 * budget (paced, never a reason to cut the peer; issue 17).
 *
 * @returns Whether the session is open to take it.
 */
export function queueReplayed(
  session: WithParts,
  base: Uint8Array,
  start: number,
  end: number,
): boolean {
  return session[parts].writer.queueReplayed(base, start, end, 1);
}

/**
 * Records the connection a transport opened `session` on, and hands the
 * bytes it read past a handshake to the reader (decoded before the first
 * read). Call right after construction.
 */
export function adopt(session: WithParts, connection: OpenedConnection): void {
  const own = session[parts];
  own.connection = connection;
  const prelude = connection.prelude;
  if (prelude !== undefined && prelude.byteLength > 0) {
    own.reader.prelude = prelude;
  }
  const resumable = connection.resumable;
  if (resumable !== undefined) {
    own.writer.log = resumable.log;
    resumableSessions.count++;
    own.lifecycle.observe({
      closed: () => void resumableSessions.count--,
    });
    resumable.bind(session);
  }
}

/**
 * Messages decoded from the peer, heartbeats left out: what a resumable
 * session tells its peer it took (issue 17).
 */
export function messagesIn(session: WithParts): number {
  const inbound = session[parts].inbound;
  return inbound.framesIn - inbound.heartbeatsIn;
}

/**
 * A session made again on this server for a client that resumed it here
 * after its first server died (issue 17): it opens without authentication
 * and without onOpen (it ran where the session began). Call right after
 * construction, before its first read.
 */
export function continueSession(session: WithParts): void {
  session[parts].inbound.continueSession();
}

/** A resumable session lost its connection: liveness waits (issue 17). */
export function suspend(session: WithParts): void {
  const liveness = session[parts].liveness;
  if (liveness !== undefined) liveness.suspended = true;
}

/**
 * A resumable session goes on over a new connection (issue 17): its writer
 * replays its log from message `from` on (what is queued is dropped: the
 * log holds it), and its reader starts a new decoder, so that nothing of a
 * frame cut off on the old connection counts. Call while the reader waits
 * for the connection.
 *
 * @returns `false` (nothing changed) when the log can't replay from `from`.
 */
export function resume(
  session: WithParts & {
    readonly codec: { decoder(link: DecoderLink): Decoder<unknown> };
  },
  from: number,
): boolean {
  const own = session[parts];
  if (!own.writer.replay(from)) return false;
  const made = session.codec.decoder(own.link);
  const wrap = decoderWraps.get(session);
  const decoder = wrap === undefined ? made : wrap(made);
  own.reader.decoder = decoder;
  own.reader.prelude = undefined;
  own.liveness?.resumed(decoder);
  return true;
}

// Each session's decoder wrap, if any (see wrapDecoders()): a WeakMap, not
// a field, so that the reader and every other session stay as they are.
const decoderWraps = new WeakMap<
  WithParts,
  (decoder: Decoder<unknown>) => Decoder<unknown>
>();

/**
 * Routes what a session reads through `wrap` (issue 17's cluster client):
 * its decoder now, and each new decoder a {@linkcode resume} makes, is
 * replaced by `wrap(decoder)`. A cluster server puts position records
 * between messages, which only a decoder can see (they sit at frame
 * starts); wrapping the decoder keeps the hook out of the read loop: a
 * session without a wrap, i.e. every server session and every client that
 * isn't in a cluster, runs exactly the code it ran before, and a wrapped
 * one pays what the wrap adds (src/recovery/_positions.ts). Call before the
 * reader starts (right after adopt()). The liveness watch keeps the
 * decoder it was made with until a resume: it misses only the bytes of a
 * record not yet whole (a few dozen at most) as a frame in progress.
 */
export function wrapDecoders(
  session: WithParts,
  wrap: (decoder: Decoder<unknown>) => Decoder<unknown>,
): void {
  decoderWraps.set(session, wrap);
  const reader = session[parts].reader;
  reader.decoder = wrap(reader.decoder);
}

/** The connection recorded by {@linkcode adopt}, if any. */
export function connectionOf(
  session: WithParts,
): OpenedConnection | undefined {
  return session[parts].connection;
}

/**
 * Counters a session keeps beyond its public getters, read at scrape time
 * (metrics) and folded into the server's totals once when it closes.
 */
export class SessionMeters {
  /** Messages or reads a rate limit held back or refused. */
  rateLimitHits = 0;
  /** Times reading paused for flow control. */
  flowPauses = 0;
  /** How long those pauses lasted, in milliseconds. */
  flowPausedMs = 0;
  /** Requests (`session.request()`) that timed out. */
  requestTimeouts = 0;
  /** How long answered requests took, in seconds. */
  readonly requestLatency: LatencyHistogram = new LatencyHistogram();
}

/** Adds `session`'s meters to `into`. */
export function addMeters(into: SessionMeters, session: WithParts): void {
  const { inbound, writer } = session[parts];
  into.rateLimitHits += inbound.rateLimitHits;
  into.flowPauses += writer.flow.pauses;
  into.flowPausedMs += writer.flow.pausedMs;
  const requests = inbound.madeRequests;
  if (requests === undefined) return;
  into.requestTimeouts += requests.timeouts;
  into.requestLatency.add(requests.latency);
}
