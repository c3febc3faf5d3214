// Package-internal: how the layers above a Session (its manager, the server)
// learn about its life and reach its internals, without a public API for it
// and without process-wide WeakMaps. session.ts fills these in from a static
// block of the Session class, which can reach its private fields. This file
// imports neither, so the arrows only point down: session.ts and
// session_manager.ts both depend on it, and on nothing of each other but
// the manager's use of the Session type.

/**
 * A Session, whatever its type parameters (the hooks are shared by all of
 * them; session.ts knows the real type).
 */
// deno-lint-ignore no-explicit-any
export type AnySession = any;

/** What a session asks of the manager holding it (a SessionManager). */
export interface SessionHost {
  join(session: AnySession, room: string): boolean;
  leave(session: AnySession, room: string): boolean;
  roomsOf(session: AnySession): ReadonlySet<string>;
  broadcast(message: unknown, options: object): number;
}

/** Told about one session's life; every method is optional. */
export interface SessionObserver {
  /**
   * It is open for business: authenticated when the options ask for it, and
   * about to run `onOpen`.
   */
  opened?(session: AnySession): void;
  /** It started closing: it takes no more frames. */
  closing?(session: AnySession): void;
  /** It has closed, right before its `onClose` runs. */
  closed?(session: AnySession, reason: string): void;
}

/** Entry points into Session, set by session.ts. */
export const sessionHooks: {
  /** Adds an observer; it is called at most once per event. */
  observe(session: AnySession, observer: SessionObserver): void;
  /**
   * Queues `base[start, end)` by reference (a broadcast's shared frame, or
   * `frames` frames back to back from another node). Returns whether it was
   * accepted.
   */
  sendShared(
    session: AnySession,
    base: Uint8Array,
    start: number,
    end: number,
    frames?: number,
  ): boolean;
  /**
   * Bytes read from the connection before the session was made (past a
   * WebSocket handshake): decoded before the first read. Call right after
   * construction.
   */
  prelude(session: AnySession, bytes: Uint8Array): void;
  /** Tells the session which manager holds it (for `session.join()`...). */
  attach(session: AnySession, manager: SessionHost | undefined): void;
} = {
  observe: unreachable,
  sendShared: unreachable,
  prelude: unreachable,
  attach: unreachable,
};

function unreachable(): never {
  throw new Error("session hooks used before session.ts loaded");
}
