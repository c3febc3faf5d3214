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
import type { SessionHost, SessionObserver } from "./_lifecycle.ts";

/** The key of a session's parts; see the file comment. */
export const parts: unique symbol = Symbol("microsocket.session.parts");

/** The parts of a session the layers above use, each seen narrowly. */
export interface SessionParts {
  readonly writer: {
    sendShared(
      base: Uint8Array,
      start: number,
      end: number,
      frames: number,
    ): boolean;
  };
  readonly reader: { prelude: Uint8Array | undefined };
  readonly lifecycle: {
    host: SessionHost | undefined;
    observe(observer: SessionObserver): void;
  };
  /** The connection a transport opened the session on; see {@linkcode adopt}. */
  connection: OpenedConnection | undefined;
}

/**
 * What a transport opened a session on, as the session sees it (the
 * transport's `Connection`, src/transport/connection.ts): kept for the
 * session's life, so what the transport learned lives on it.
 */
export interface OpenedConnection {
  /** Bytes read before the session existed, decoded first. */
  readonly prelude: Uint8Array | undefined;
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
 * budget. The hot path of every broadcast: one call into the writer.
 *
 * @returns Whether it was accepted.
 */
export function sendShared(
  session: WithParts,
  base: Uint8Array,
  start: number,
  end: number,
  frames = 1,
): boolean {
  return session[parts].writer.sendShared(base, start, end, frames);
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
}

/** The connection recorded by {@linkcode adopt}, if any. */
export function connectionOf(
  session: WithParts,
): OpenedConnection | undefined {
  return session[parts].connection;
}
