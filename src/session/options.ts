// The public types of a session's options and state that don't name the
// Session class itself (those that do, like SessionOptions and its handlers,
// live in session.ts, so that no import points back up).

/**
 * Where a session is in its life: `"open"` until `close()` (or the peer, or
 * a policy) ends it, `"closing"` while queued bytes drain, then `"closed"`.
 *
 * @example Sends are refused once a session is no longer open
 * ```ts
 * import { lines, Session, type SessionState } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using peer = await Deno.connect({
 *   hostname: "127.0.0.1",
 *   port: listener.addr.port,
 * });
 * const session = new Session(await listener.accept(), { codec: lines() });
 * const before: SessionState = session.state;
 * await session.close();
 * assert.deepEqual([before, session.state], ["open", "closed"]);
 * assert.equal(session.send("too late"), false);
 * ```
 */
export type SessionState = "open" | "closing" | "closed";

/**
 * What a session does about a peer whose queue has no room for a frame.
 * Either way the frame is refused (`send` returns `false`) and counted in
 * `framesDropped`; a peer that keeps up is never cut because a burst was
 * bigger than its budget. `"close"`: the refusal also keeps the sender
 * waiting on the peer, so a peer that does not drain to half its
 * `highWaterMark` within `drainTimeout` is closed with reason
 * `"slow consumer"` (for a stream where a gap is worse than a reconnect).
 * `"drop"`: refusals alone never close it (for a lossy feed, like a ticker,
 * where a lagging reader may miss frames).
 *
 * @example Dropping frames for a lagging reader instead of disconnecting it
 * ```ts
 * import { listen, type OverflowPolicy } from "@x/microsocket";
 *
 * const overflow: OverflowPolicy = "drop";
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   outboundBudget: 64 * 1024,
 *   overflow,
 * });
 * ```
 */
export type OverflowPolicy = "close" | "drop";

/**
 * Options of {@linkcode Session.request}.
 *
 * @example Waiting at most a second for an answer
 * ```ts
 * import type { RequestOptions } from "@x/microsocket";
 *
 * const options: RequestOptions = { timeout: 1000 };
 * ```
 */
export interface RequestOptions {
  /**
   * How long to wait for the reply, in milliseconds.
   *
   * @default {10000}
   */
  timeout?: number;
  /** Aborting it gives up on the reply (the promise rejects). */
  signal?: AbortSignal;
}

/**
 * What a session does with a peer that sends faster than its
 * {@linkcode RateLimitOptions}: `"throttle"` stops reading until the peer is
 * within its rate again (TCP pushes back on it; nothing is lost);
 * `"close"` closes the session with reason `"flood"`.
 *
 * @example Choosing the policy
 * ```ts
 * import type { RateLimitPolicy } from "@x/microsocket";
 *
 * const policy: RateLimitPolicy = "throttle";
 * ```
 */
export type RateLimitPolicy = "throttle" | "close";

/**
 * Per-session rate limits on inbound traffic: token buckets that refill at a
 * steady rate and hold up to a burst. Omit a rate to leave it unlimited.
 *
 * @example Ten lines a second on average, twenty at once
 * ```ts
 * import { lines, listen, type RateLimitOptions } from "@x/microsocket";
 *
 * const rateLimit: RateLimitOptions = {
 *   messagesPerSecond: 10,
 *   messageBurst: 20,
 *   policy: "throttle",
 * };
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: lines(),
 *   rateLimit,
 * });
 * ```
 */
export interface RateLimitOptions {
  /** Messages per second on average. */
  messagesPerSecond?: number;
  /**
   * How many messages may come at once.
   *
   * @default {max(1, messagesPerSecond)}
   */
  messageBurst?: number;
  /** Bytes per second on average. */
  bytesPerSecond?: number;
  /**
   * How many bytes may come at once.
   *
   * @default {max(65536, bytesPerSecond)}
   */
  byteBurst?: number;
  /**
   * What happens past the limit.
   *
   * @default {"throttle"}
   */
  policy?: RateLimitPolicy;
}
