// The reasons the library itself gives when it closes a session. Application
// code may close with any other string; stats count closes by reason.

/**
 * The close reasons microsocket uses. `Session.closed` resolves with one of
 * these, or with the string the application passed to `Session.close()`.
 *
 * | reason | when |
 * | --- | --- |
 * | `"closed"` | `close()` was called without a reason |
 * | `"eof"` | the peer ended its side of the stream (replies queued before are still sent) |
 * | `"reset"` | the network failed: connection reset, broken pipe |
 * | `"error"` | reading failed for another reason (e.g. a TLS handshake), see `closeError` |
 * | `"decode error"` | the peer sent bytes the codec rejects |
 * | `"frame too large"` | the peer announced or sent a frame over the codec's limit |
 * | `"truncated frame"` | the peer's input ended inside a frame (framed codecs), or inside a WebSocket frame or fragmented message |
 * | `"slow consumer"` | the peer kept a sender or waiter waiting longer than `drainTimeout` without draining |
 * | `"flood"` | the peer passed its rate limit (policy `"close"`) |
 * | `"unauthorized"` | `authenticate` refused the peer (returned false, threw, or threw a `Refusal`) |
 * | `"auth timeout"` | the peer did not authenticate within `authTimeout` |
 * | `"idle timeout"` | no inbound frame within `idleTimeout` |
 * | `"heartbeat timeout"` | too many heartbeats went unanswered |
 * | `"frame timeout"` | a started frame did not complete within `frameTimeout` |
 * | `"server shutdown"` | the server is shutting down |
 * | `"aborted"` | the `signal` given to `connect()` aborted |
 *
 * A WebSocket peer receives the reason in the close frame, with a code that
 * fits it: 1000 for `close()` with the application's reason, 1001 for
 * `"server shutdown"` and the timeouts, 1008 for `"slow consumer"` and
 * `"flood"`, 1009 for `"frame too large"`, 1011 for `"error"`, 4401 for
 * `"unauthorized"`, 4408 for `"auth timeout"`. For hostile input the close
 * frame carries a finer reason naming the rule broken (e.g.
 * `"unmasked client frame"` with 1002 for a `"decode error"`, `"message of
 * 2000 bytes exceeds maxMessageBytes (1000)"` with 1009 for a `"frame too
 * large"`), also on the error as `closeReason`.
 *
 * The type of the same name is the union of these strings. `closed`
 * promises and `onClose` handlers receive a `CloseReason` or the string the
 * application passed to `close()`: compare with the constants, and keep a
 * default branch for the application's own reasons.
 *
 * @example Reacting to a slow consumer
 * ```ts
 * import { CloseReason } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * function describe(reason: string): string {
 *   return reason === CloseReason.SlowConsumer ? "too slow" : reason;
 * }
 * assert.equal(describe("slow consumer"), "too slow");
 * ```
 */
export const CloseReason = {
  /** `close()` was called without a reason. */
  Closed: "closed",
  /** The peer ended its side of the stream. */
  Eof: "eof",
  /** The network failed (reset, broken pipe). */
  Reset: "reset",
  /** Reading failed for another reason. */
  Error: "error",
  /** The codec rejected the peer's bytes. */
  DecodeError: "decode error",
  /** A frame exceeded the codec's limit. */
  FrameTooLarge: "frame too large",
  /** The peer's input ended inside a frame. */
  TruncatedFrame: "truncated frame",
  /**
   * The peer kept someone waiting (a paused producer, a `drained()` or
   * `flush()` caller, a send its budget refused under overflow `"close"`)
   * for longer than `drainTimeout` without draining.
   */
  SlowConsumer: "slow consumer",
  /** The peer passed its rate limit under policy `"close"`. */
  Flood: "flood",
  /** `authenticate` refused the peer's first message (or threw). */
  Unauthorized: "unauthorized",
  /** The peer did not authenticate within `authTimeout`. */
  AuthTimeout: "auth timeout",
  /** No inbound frame within the idle timeout. */
  IdleTimeout: "idle timeout",
  /** Too many heartbeats went unanswered. */
  HeartbeatTimeout: "heartbeat timeout",
  /** A started frame did not complete in time. */
  FrameTimeout: "frame timeout",
  /** The server is shutting down. */
  ServerShutdown: "server shutdown",
  /** The `signal` given to `connect()` aborted. */
  Aborted: "aborted",
  /** A resumable session's client did not come back within the window. */
  RecoveryExpired: "recovery expired",
  /**
   * A resumable session could not go on (the gap could not be filled, or
   * the client gave up resuming): a fresh session follows.
   */
  RecoveryFailed: "recovery failed",
} as const;

/**
 * A close reason microsocket gives: one of the strings of the
 * {@linkcode CloseReason} constants, as a literal union.
 *
 * @example Exhaustive handling of the library's reasons
 * ```ts
 * import type { CloseReason } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * function retryable(reason: CloseReason | (string & Record<never, never>)): boolean {
 *   switch (reason) {
 *     case "reset":
 *     case "eof":
 *     case "server shutdown":
 *       return true;
 *     default:
 *       return false;
 *   }
 * }
 * assert.equal(retryable("reset"), true);
 * assert.equal(retryable("kicked"), false);
 * ```
 */
export type CloseReason = (typeof CloseReason)[keyof typeof CloseReason];
