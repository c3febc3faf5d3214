// Package-internal: what a session's writer needs of a log of the messages it
// sent, so that a resumable session (issue 17) can send them again after its
// connection is replaced. The session owns this narrow interface; recovery
// (src/recovery/_message_log.ts) implements it, so the session never imports
// from the layer above it.

/** A bounded log of sent messages, by reference; see the file comment. */
export interface OutboundLog {
  /**
   * Records `base[start, end)` (holding `frames` messages) by reference: its
   * bytes must never change afterwards.
   */
  record(base: Uint8Array, start: number, end: number, frames?: number): void;
  /** Records a copy of `bytes[start, end)`, one message. */
  recordCopy(bytes: Uint8Array, start: number, end: number): void;
  /** Whether every message from number `from` on is still held. */
  canReplayFrom(from: number): boolean;
  /**
   * Hands every message from number `from` on to `push`, in order.
   *
   * @returns `false` (and pushes nothing) when `canReplayFrom(from)` isn't.
   */
  replay(
    from: number,
    push: (
      base: Uint8Array,
      start: number,
      end: number,
      frames: number,
    ) => void,
  ): boolean;
}

/**
 * How many sessions with a log are open in this process: shared broadcast
 * segments record where each frame ends only while there are some (see
 * src/_shared_segment.ts), so nothing changes for a server without recovery.
 */
export const resumableSessions = { count: 0 };
