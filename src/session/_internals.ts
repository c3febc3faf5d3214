// Package-internal: what the layers above a Session (the server, the client
// and the manager) may do with one that its users may not. Each session
// holds its parts under the `parts` symbol, which mod.ts does not export;
// these functions are the only code outside src/session/ that uses it, and
// each reaches exactly one part:
//   observe     the lifecycle: hear of the session opening and closing
//   attach      the lifecycle: the manager that serves session.join() etc.
//   sendShared  the writer: queue a broadcast's bytes by reference
//   setPrelude  the reader: bytes read before the session existed
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
 * Bytes read from the connection before the session was made (past a
 * WebSocket handshake): decoded before the first read. Call right after
 * construction.
 */
export function setPrelude(session: WithParts, bytes: Uint8Array): void {
  session[parts].reader.prelude = bytes;
}
