// Package-internal: how the layers above a Session (its manager, the server)
// learn about its life and reach its internals, without a public API for it
// and without process-wide WeakMaps. session.ts fills these in from a static
// block of the Session class, which can reach its private fields.
import type { Session } from "./session.ts";
import type { SessionManager } from "./session_manager.ts";

/** Any session, whatever its type parameters. */
// deno-lint-ignore no-explicit-any
export type AnySession = Session<any, any, any>;

/** Any session manager, whatever its type parameters. */
// deno-lint-ignore no-explicit-any
export type AnySessionManager = SessionManager<any, any, any>;

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
   * Queues `base[start, end)` by reference (a broadcast's shared frame).
   * Returns whether it was accepted.
   */
  sendShared(
    session: AnySession,
    base: Uint8Array,
    start: number,
    end: number,
  ): boolean;
  /**
   * Bytes read from the connection before the session was made (past a
   * WebSocket handshake): decoded before the first read. Call right after
   * construction.
   */
  prelude(session: AnySession, bytes: Uint8Array): void;
  /** Tells the session which manager holds it (for `session.join()`...). */
  attach(session: AnySession, manager: AnySessionManager | undefined): void;
} = {
  observe: unreachable,
  sendShared: unreachable,
  prelude: unreachable,
  attach: unreachable,
};

function unreachable(): never {
  throw new Error("session hooks used before session.ts loaded");
}
