// One connection: the single owner of its writes, the reader feeding its
// decoder, and the lifecycle open → closing → closed.
//
// The pieces live beside it, each testable on its own: the outbound queue
// (_outbound_queue.ts), flow control between sessions (_flow_control.ts),
// the process-wide flush pass (_flush_scheduler.ts), liveness rules
// (_liveness_tracker.ts), rate limits (_token_bucket.ts) and the lingering
// close (_linger.ts). This file keeps the public API, the read loop and the
// lifecycle.
import type { Codec, Decoder, Heartbeat } from "./codec/codec.ts";
import { FrameTooLargeError, SessionClosedError } from "./errors.ts";
import { PendingRequests } from "./_pending_requests.ts";
import { CloseReason } from "./close_reason.ts";
import { COPY_BELOW, OutboundQueue } from "./_outbound_queue.ts";
import { scheduleFlush } from "./_flush_scheduler.ts";
import {
  bounded,
  Flow,
  producerContext,
  type WaitOptions,
} from "./_flow_control.ts";
import { TokenBucket } from "./_token_bucket.ts";
import { linger } from "./_linger.ts";
import { type LivenessSignals, LivenessTracker } from "./_liveness_tracker.ts";
import {
  type LivenessClock,
  livenessClock,
  type Watched,
} from "./_liveness_clock.ts";
import {
  sessionHooks,
  type SessionHost,
  type SessionObserver,
} from "./_session_hooks.ts";

export type { WaitOptions } from "./_flow_control.ts";

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
 * Callbacks of one session. `listen()` passes the server's handlers here;
 * every callback may be async, and whatever it throws or rejects goes to
 * `onError` (never out of the session).
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages the session sends.
 *
 * @example Handlers shared by sessions of a lines codec
 * ```ts
 * import type { SessionHandlers } from "@x/microsocket";
 *
 * const handlers: SessionHandlers<{ count: number }, string, string> = {
 *   onOpen: (session) => void session.send("hello"),
 *   onMessage: (session, line) => {
 *     session.data.count++;
 *     session.send(`${session.data.count}: ${line}`);
 *   },
 *   onClose: (session, reason) => console.log(session.id, reason),
 *   onError: (error, session) => console.error(session.id, error),
 * };
 * ```
 */
export interface SessionHandlers<Data, In, Out> {
  /**
   * Runs before the first message is read. Reading waits for a returned
   * promise.
   */
  onOpen?(session: Session<Data, In, Out>): unknown;
  /**
   * Runs once per decoded message, in order. When it returns a promise, the
   * session's later messages wait for it (reading pauses meanwhile), so a
   * session's messages are handled one at a time.
   */
  onMessage?(
    session: Session<Data, In, Out>,
    message: In,
  ): unknown;
  /** Runs once, after the connection has closed. */
  onClose?(
    session: Session<Data, In, Out>,
    reason: CloseReason | (string & Record<never, never>),
  ): unknown;
  /**
   * Receives what a handler threw, and decode errors. For a decode error it
   * runs while the session is still open, so a last reply sent from here is
   * delivered before the session closes.
   */
  onError?(error: unknown, session: Session<Data, In, Out>): void;
}

/**
 * Options of a {@linkcode Session}. The same object may be shared by many
 * sessions (a server passes one for all).
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages the session sends.
 *
 * @example Limits and liveness for one wrapped connection
 * ```ts
 * import { lines, Session, type SessionOptions } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const options: SessionOptions<unknown, string, string> = {
 *   codec: lines({ maxLineBytes: 4096 }),
 *   outboundBudget: 256 * 1024,
 *   overflow: "close",
 *   idleTimeout: 60_000,
 *   closeTimeout: 1000,
 * };
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using peer = await Deno.connect({
 *   hostname: "127.0.0.1",
 *   port: listener.addr.port,
 * });
 * await using session = new Session(await listener.accept(), options);
 * assert.equal(session.state, "open");
 * ```
 */
export interface SessionOptions<Data, In, Out>
  extends SessionHandlers<Data, In, Out> {
  /** The framing of the connection. */
  codec: Codec<In, Out>;
  /**
   * The most outbound bytes that may wait in memory (queued or being
   * written). A frame is accepted when it fits, or, whatever its size, while
   * no more than `highWaterMark` bytes are queued (a large frame is queued by
   * reference, not copied); otherwise it is refused (`send` returns
   * `false`) and `overflow` decides what happens to the peer.
   *
   * @default {1048576}
   */
  outboundBudget?: number;
  /**
   * What happens to a peer whose queue refuses a frame; see
   * {@linkcode OverflowPolicy}.
   *
   * @default {"close"}
   */
  overflow?: OverflowPolicy;
  /**
   * Turn off Nagle's algorithm (TCP_NODELAY) on TCP connections, so a small
   * frame leaves at once instead of waiting for the peer's delayed ACK (up
   * to 40 ms on Linux). Deno leaves Nagle on; coalescing already keeps the
   * number of packets down. Ignored for other transports.
   *
   * @default {true}
   */
  noDelay?: boolean;
  /**
   * How long `close()` waits for queued bytes to be written (and then for
   * the peer to finish, see {@linkcode Session.close}) before it cuts the
   * connection, in milliseconds.
   *
   * @default {5000}
   */
  closeTimeout?: number;
  /**
   * Close the session (reason `"idle timeout"`) when no frame arrives for
   * this many milliseconds (a frame the codec swallows, like a blank JSON
   * line, counts). Time in which our own `onOpen`, or the handler of the
   * peer's previous message, was still running does not count, nor time in
   * which bytes queued for the peer were still flowing out to it (a queue
   * that makes no progress for a whole timeout counts again). `0` disables
   * it.
   *
   * @default {0}
   */
  idleTimeout?: number;
  /**
   * Close the session (reason `"frame timeout"`) when a frame has started
   * but not completed for this many milliseconds (slowloris protection).
   * `0` disables it.
   *
   * @default {0}
   */
  frameTimeout?: number;
  /**
   * Every this many milliseconds of silence from the peer, send the codec's
   * ping (when it has one). After `heartbeatMaxMissed` silent intervals in a
   * row the session closes with reason `"heartbeat timeout"`. Any inbound
   * frame, pong or not, counts as an answer. `0` disables it.
   *
   * Whatever this option says, a session answers a ping it receives when
   * the codec's ping is also its pong (microSocket's empty frame), so a
   * `connect()` client keeps a heartbeating server satisfied on its own.
   *
   * @default {0}
   */
  heartbeatInterval?: number;
  /**
   * How many heartbeat intervals may pass unanswered.
   *
   * @default {3}
   */
  heartbeatMaxMissed?: number;
  /**
   * Flow control: when a send leaves this session with more than this many
   * outbound bytes queued, the session whose handler made the send (the
   * producer) stops reading until this one has drained to half of it. Readers
   * that keep up lose nothing; a fast sender is slowed down by TCP instead.
   * See {@linkcode Session} for the whole model.
   *
   * @default {outboundBudget / 4}
   */
  highWaterMark?: number;
  /**
   * How long, in milliseconds, this session may keep anyone waiting (a
   * paused producer, a `drained()` or `flush()` caller, a send refused under
   * `overflow: "close"`) without draining to half its high-water mark,
   * before it is cut with reason `"slow consumer"` and the waiters resume.
   * 5 s lets a healthy peer on a poor link drain a high-water mark's worth
   * (256 KiB at ~50 KiB/s) and ride out a few TCP retransmissions, while a
   * peer that stopped reading can't freeze a room for longer than that.
   * `0` never cuts on time: waits are then bounded only by their own
   * `timeout` or `signal` (the budget still bounds memory).
   *
   * @default {5000}
   */
  drainTimeout?: number;
  /** Limits on what the peer may send; none by default. */
  rateLimit?: RateLimitOptions;
  /**
   * An authentication step between connect and `onOpen`: the peer's first
   * message goes here instead of to `onMessage`. Return (or resolve) the
   * session's `data` to let the peer in; `onOpen` then runs and later
   * messages reach `onMessage`. Return `undefined`, `null` or `false`, or
   * throw, to close the session with reason `"unauthorized"`. Messages that
   * arrive meanwhile wait. A server adds the session to its manager (rooms,
   * broadcasts) only once it is authenticated.
   */
  authenticate?(
    session: Session<Data, In, Out>,
    message: In,
  ): Data | undefined | null | false | Promise<Data | undefined | null | false>;
  /**
   * How long, in milliseconds, a peer has to authenticate (from connect to
   * `authenticate` resolving) before it is closed with reason
   * `"auth timeout"`.
   *
   * @default {10000}
   */
  authTimeout?: number;
}

/**
 * Whom {@linkcode Session.broadcast} reaches besides the whole manager: a
 * room's members, and only those `filter` accepts; never the session
 * itself.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example A room, grown-ups only
 * ```ts
 * import type { SessionBroadcastOptions } from "@x/microsocket";
 *
 * const options: SessionBroadcastOptions<{ age: number }, string, string> = {
 *   room: "lobby",
 *   filter: (session) => session.data.age >= 18,
 * };
 * ```
 */
export interface SessionBroadcastOptions<Data, In, Out> {
  /** Only the members of this room. */
  room?: string;
  /** Only sessions for which this returns `true`. */
  filter?: (session: Session<Data, In, Out>) => boolean;
}

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

/** The size a read buffer starts at and returns to: idle sessions stay small. */
const READ_BUFFER_MIN = 512;
/** Reads that fill the buffer double it, up to this. */
const READ_BUFFER_MAX = 65536;

let nextStandaloneId = 1;

/**
 * One connection and everything about it: identity, per-session data, the
 * single writer all its bytes go through, and its lifecycle.
 *
 * **Sending** never blocks and never throws for a closed peer: `send()`
 * encodes and enqueues synchronously and returns whether the frame was
 * accepted. Every session with queued bytes gets one write per event-loop
 * turn, in a single process-wide flush pass: whatever was queued for it
 * during the turn (or while its previous write was in flight) leaves in that
 * one write, in order. This session is the only code that writes to its
 * connection, one write at a time.
 *
 * **Flow control.** `send()` returns `true` when the frame is queued (it
 * will be written, in order, unless the session closes) and `false` when
 * it is refused: the session is not open, or its queue has no room (past
 * `outboundBudget`, see {@linkcode OverflowPolicy}; counted in
 * `framesDropped`). Handlers run in their session's context (across awaits
 * too). A send that leaves its target with more than `highWaterMark` bytes
 * queued makes that session's reading pause until the target has drained
 * to half of it; the peer is slowed down by TCP, and readers that keep up
 * lose nothing however fast someone types. Sends made outside any handler
 * (timers, other event sources), and from `onClose` (a closed session has
 * nothing left to pause), hold nobody back: await
 * {@linkcode Session.drained} (or `SessionManager.drained()`) before
 * sending more. A target that keeps anyone waiting (a paused producer, a
 * `drained()` or `flush()` caller, a send refused under `overflow:
 * "close"`) for longer than `drainTimeout` without draining to half its
 * high-water mark is cut as a slow consumer, which releases them all: no
 * wait on a peer lasts longer (`drained()` and `flush()` also take a
 * `timeout` and a `signal`). Inbound `rateLimit`s throttle or close a peer
 * that sends too much.
 *
 * Reading starts in a microtask after construction, after `onOpen`. `listen()`
 * and `connect()` create sessions; construct one yourself only to wrap a
 * `Deno.Conn` you obtained otherwise.
 *
 * @typeParam Data The type of {@linkcode Session.data}.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages the session sends.
 *
 * @example Wrapping both ends of a loopback connection
 * ```ts
 * import { lines, Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await Deno.connect({
 *   hostname: "127.0.0.1",
 *   port: listener.addr.port,
 * });
 * const server = await listener.accept();
 *
 * const got = Promise.withResolvers<string>();
 * const a = new Session(client, { codec: lines() });
 * const b = new Session(server, {
 *   codec: lines(),
 *   onMessage: (_session, line) => got.resolve(line),
 * });
 * assert.equal(a.send("hello"), true);
 * assert.equal(await got.promise, "hello");
 * await a.close();
 * assert.equal(await b.closed, "eof");
 * ```
 */
export class Session<Data = unknown, In = unknown, Out = In>
  implements AsyncDisposable {
  static {
    sessionHooks.observe = (session, observer) => {
      (session.#observers ??= []).push(observer);
    };
    sessionHooks.sendShared = (session, base, start, end, frames = 1) =>
      session.#sendShared(base, start, end, frames);
    sessionHooks.prelude = (session, bytes) => {
      session.#prelude = bytes;
    };
    sessionHooks.attach = (session, manager) => {
      session.#manager = manager;
    };
  }

  /** Unique per server (per process for standalone sessions), increasing. */
  readonly id: number;
  /** The peer's address. */
  readonly remoteAddr: Deno.Addr;
  /** When the connection was accepted, in milliseconds since the epoch. */
  readonly connectedAt: number;
  /** The framing of this connection. */
  readonly codec: Codec<In, Out>;
  /**
   * Application data for this session, e.g. a nickname. `listen()` sets it
   * from its `data` option before `onOpen` runs.
   */
  data: Data = undefined as Data;
  /** Resolves, never rejects, with the close reason once fully closed. */
  readonly closed: Promise<CloseReason | (string & Record<never, never>)>;

  readonly #conn: Deno.Conn;
  readonly #decoder: Decoder<In>;
  readonly #options: SessionOptions<Data, In, Out>;
  readonly #budget: number;
  readonly #highWaterMark: number;
  // A frame of any size is taken while no more than this is queued.
  readonly #admitAnyBelow: number;
  readonly #closeTimeout: number;
  readonly #resolveClosed: (reason: string) => void;
  #observers: SessionObserver[] | undefined;

  #state: SessionState = "open";
  #closeReason: string | undefined;
  #closeError: unknown;
  #finished: Promise<void> | undefined;
  #inOnClose = false;
  #lastSeen: number;

  // Outbound.
  readonly #queue = new OutboundQueue();
  #flushScheduled = false;
  readonly #flushBound = () => this.#flushPass();
  #framesDropped = 0;
  #writes = 0;
  #writingNow: Promise<number> | undefined;
  // Flow control, and callers of drained() waiting for room.
  readonly #flow: Flow;
  #drainWaiters: Set<(drained: boolean) => void> | undefined;

  // Inbound: messages arriving while an async handler runs (or while the
  // rate limit holds them) wait in #backlog.
  #backlog: In[] | undefined;
  #handlerBusy: Promise<void> | undefined;
  readonly #emitBound = (message: In) => this.#emit(message);
  #framesIn = 0;
  #bytesIn = 0;
  #messageBucket: TokenBucket | undefined;
  #byteBucket: TokenBucket | undefined;
  #pause:
    | { timer: ReturnType<typeof setTimeout>; resolve: () => void }
    | undefined;

  // Liveness.
  #clock: LivenessClock | undefined;
  #liveness: LivenessTracker | undefined;
  #livenessWatch: Watched | undefined;
  readonly #heartbeat: Heartbeat<In> | undefined;
  readonly #symmetricHeartbeat: boolean;
  #opening = false;
  #pinged = false;
  // Reads that completed at least one frame, including frames the codec
  // swallows (a blank JSON line): the peer's signs of life.
  #framesEnded = 0;
  #seenEnded = 0;
  #seenWritten = 0;
  #pingBytes = 0;

  // The manager holding it (rooms and broadcast from the session).
  #manager: SessionHost | undefined;
  // Requests waiting for their reply, by id.
  #requests: PendingRequests<In> | undefined;
  // Authentication: the timer of the deadline, and whether the first
  // message has been handed to `authenticate` yet.
  #authTimer: ReturnType<typeof setTimeout> | undefined;
  #authenticating = false;

  // Bytes read before the session existed (past a WebSocket handshake):
  // decoded before the first read.
  #prelude: Uint8Array | undefined;

  // In-flight I/O, awaited on close so no operation outlives the session.
  #reading: Promise<number | null> | undefined;
  // The read loop; it ends at EOF, on a read error, or once the connection
  // is closed (a closing session keeps reading, see #discard).
  #reader: Promise<void> | undefined;
  #ending: Promise<unknown> | undefined;

  /**
   * Wraps `conn`. From now on the session is the only code that writes to
   * it.
   *
   * @param conn The connection; the session owns it from now on.
   * @param options Codec, limits and handlers.
   * @param id The session id; by default the next number of a process-wide
   * counter.
   */
  constructor(
    conn: Deno.Conn,
    options: SessionOptions<Data, In, Out>,
    id?: number,
  ) {
    this.id = id ?? nextStandaloneId++;
    this.#conn = conn;
    this.remoteAddr = conn.remoteAddr;
    this.connectedAt = Date.now();
    this.#lastSeen = this.connectedAt;
    this.codec = options.codec;
    this.#options = options;
    this.#decoder = options.codec.decoder(this);
    const heartbeat = options.codec.heartbeat;
    this.#heartbeat = heartbeat;
    this.#symmetricHeartbeat = heartbeat !== undefined &&
      sameBytes(heartbeat.ping, heartbeat.pong);
    this.#budget = options.outboundBudget ?? 1048576;
    this.#highWaterMark = options.highWaterMark ??
      Math.max(1, Math.floor(this.#budget / 4));
    this.#admitAnyBelow = Math.min(this.#highWaterMark, this.#budget);
    this.#closeTimeout = options.closeTimeout ?? 5000;
    this.#flow = new Flow({
      isOpen: () => this.#state === "open",
      drainTimeout: options.drainTimeout ?? 5000,
      cut: () => this.#close(CloseReason.SlowConsumer, undefined, 0),
    });
    this.#setUpRateLimits(options.rateLimit);
    if (options.noDelay !== false && "setNoDelay" in conn) {
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // Not a socket option this connection supports.
      }
    }
    const { promise, resolve } = Promise.withResolvers<string>();
    this.closed = promise;
    this.#resolveClosed = resolve;
    this.#watchLiveness(options);
    queueMicrotask(() => {
      this.#reader = this.#run();
    });
  }

  /** Where the session is in its life. */
  get state(): SessionState {
    return this.#state;
  }

  /** The close reason, once `close()` has begun; otherwise `undefined`. */
  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  /** The error behind the close (decode or network error), if any. */
  get closeError(): unknown {
    return this.#closeError;
  }

  /** When the last frame arrived (or the connection opened), epoch ms. */
  get lastSeen(): number {
    return this.#lastSeen;
  }

  /** Outbound bytes waiting in memory, including the write in flight. */
  get queuedBytes(): number {
    return this.#queue.queuedBytes;
  }

  /**
   * Whether more than `highWaterMark` bytes are queued: sends are still
   * accepted (up to the budget), but a well-behaved producer waits for
   * {@linkcode Session.drained} first.
   */
  get backpressure(): boolean {
    return this.#queue.queuedBytes > this.#highWaterMark;
  }

  /**
   * Whether some session this one sent to holds its reading back (flow
   * control).
   */
  get paused(): boolean {
    return this.#flow.blocked;
  }

  /** Frames decoded from the peer. */
  get framesIn(): number {
    return this.#framesIn;
  }

  /** Bytes read from the peer. */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** Frames accepted by `send` / `sendFrame`. */
  get framesOut(): number {
    return this.#queue.frames;
  }

  /** Bytes written to the peer. */
  get bytesOut(): number {
    return this.#queue.writtenBytes;
  }

  /**
   * Frames refused because the queue had no room for them (past
   * `outboundBudget`), under either overflow policy.
   */
  get framesDropped(): number {
    return this.#framesDropped;
  }

  /**
   * Writes made to the connection. Frames queued together share a write, so
   * `framesOut / writes` shows how well sends coalesce.
   */
  get writes(): number {
    return this.#writes;
  }

  /**
   * Encodes `message` and queues it for the peer.
   *
   * @param message The message.
   * @returns `true` when queued; `false` when the session is closing or
   * closed, or its queue had no room (see `outboundBudget`).
   * @throws {TypeError} When the codec cannot encode the message.
   */
  send(message: Out): boolean {
    if (this.#state !== "open") return false;
    const codec = this.codec;
    const queue = this.#queue;
    if (codec.encodeInto !== undefined) {
      // Fast path: encode straight into the outbound chunk, no allocation.
      const start = queue.privateFill;
      const end = codec.encodeInto(message, queue.privateChunk(), start);
      if (end >= 0) {
        if (!this.#admit(end - start)) return false;
        queue.commitPrivate(end);
        this.#queued();
        return true;
      }
    }
    const frame = codec.encode(message);
    if (!this.#admit(frame.byteLength)) return false;
    queue.pushPrivate(frame);
    this.#queued();
    return true;
  }

  /**
   * Queues an already encoded frame. Large frames are shared, not copied: do
   * not modify the bytes afterwards.
   *
   * @param frame A complete frame in this session's codec.
   * @returns `true` when queued; `false` when the session is closing or
   * closed, or its queue had no room (see `outboundBudget`).
   */
  sendFrame(frame: Uint8Array): boolean {
    if (this.#state !== "open") return false;
    const size = frame.byteLength;
    if (!this.#admit(size)) return false;
    if (size < COPY_BELOW) this.#queue.pushPrivate(frame);
    else this.#queue.pushShared(frame, 0, size);
    this.#queued();
    return true;
  }

  /**
   * Waits until everything queued before this call has been written. While
   * more than `highWaterMark` bytes are queued the wait counts against
   * `drainTimeout` (a peer that doesn't drain to half of it in time is cut);
   * below it, bound the wait with `options`.
   *
   * @param options A timeout and an abort signal for this wait.
   * @returns `true` when written; `false` when the session closed first.
   * @throws {DOMException} (rejects, name `"TimeoutError"`) When
   * `options.timeout` passes first.
   * @throws {unknown} (rejects) The signal's reason when `options.signal`
   * aborts first.
   */
  flush(options?: WaitOptions): Promise<boolean> {
    const flushed = this.#queue.flushed();
    if (this.#state === "open" && this.backpressure) this.#flow.keepWaiting();
    return bounded(flushed, options, "Flushing the queued bytes");
  }

  /**
   * Waits for room: resolves at once when no more than `highWaterMark`
   * bytes are queued (and nobody else is waiting on this session),
   * otherwise once the queue has drained to half of it. Sends made outside
   * any handler (timers, other event sources) use it to keep pace with this
   * peer. Never longer than `drainTimeout`: a peer that keeps a caller
   * waiting that long is cut as a slow consumer and the promise resolves
   * `false`.
   *
   * @param options A timeout and an abort signal for this wait.
   * @returns `true` when there is room; `false` when the session closed
   * first (or is not open).
   * @throws {DOMException} (rejects, name `"TimeoutError"`) When
   * `options.timeout` passes first.
   * @throws {unknown} (rejects) The signal's reason when `options.signal`
   * aborts first.
   */
  drained(options?: WaitOptions): Promise<boolean> {
    const what = "Waiting for the peer to drain";
    if (this.#state !== "open") {
      return bounded(Promise.resolve(false), options, what);
    }
    if (!this.backpressure && !this.#flow.holding) {
      return bounded(Promise.resolve(true), options, what);
    }
    const { promise, resolve } = Promise.withResolvers<boolean>();
    const waiters = this.#drainWaiters ??= new Set();
    waiters.add(resolve);
    // A waiter is kept waiting like a paused producer: drainTimeout applies.
    this.#flow.keepWaiting();
    return bounded(promise, options, what, () => waiters.delete(resolve));
  }

  /**
   * Puts this session in a room of its manager (the server's
   * `sessions`), like socket.io's `socket.join`.
   *
   * @param room The room's name.
   * @returns `true` when it joined; `false` when it was already a member,
   * is not open, or belongs to no manager.
   */
  join(room: string): boolean {
    return this.#manager?.join(this, room) ?? false;
  }

  /**
   * Takes this session out of a room.
   *
   * @param room The room's name.
   * @returns `true` when it was a member.
   */
  leave(room: string): boolean {
    return this.#manager?.leave(this, room) ?? false;
  }

  /** The rooms this session is in (a snapshot). */
  get rooms(): ReadonlySet<string> {
    return this.#manager?.roomsOf(this) ?? NO_ROOMS;
  }

  /**
   * Broadcasts from this session: to everyone in its manager, or a room's
   * members, except itself. The message is encoded once for everyone.
   *
   * @param message The message.
   * @param options The room and a filter, as for
   * `SessionManager.broadcast` (`except` is this session).
   * @returns How many sessions accepted it.
   * @throws {TypeError} When the codec cannot encode the message.
   */
  broadcast(
    message: Out,
    options?: SessionBroadcastOptions<Data, In, Out>,
  ): number {
    const manager = this.#manager;
    if (manager === undefined) return 0;
    return manager.broadcast(message, { ...options, except: this });
  }

  /**
   * Sends a request and waits for its reply, matched by an id the codec's
   * {@linkcode Codec.correlation} stamps on it (`json()`: an `id` field on
   * the request, `re` on the reply). The reply goes to this promise, not to
   * `onMessage`; one arriving after the timeout is dropped.
   *
   * @param message The request.
   * @param options Timeout and abort signal.
   * @returns The reply.
   * @throws {TypeError} When the codec has no correlation.
   * @throws {RequestTimeoutError} (rejects) When no reply came in time.
   * @throws {SessionClosedError} (rejects) When the session closed first.
   */
  request(message: Out, options: RequestOptions = {}): Promise<In> {
    const correlation = this.codec.correlation;
    if (correlation === undefined) {
      throw new TypeError(
        `The ${this.codec.name} codec has no correlation for requests`,
      );
    }
    if (this.#state !== "open") {
      return Promise.reject(new SessionClosedError(this.#closeReason));
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const requests = this.#requests ??= new PendingRequests();
    const { id, reply } = requests.add(options.timeout ?? 10_000, signal);
    if (!this.send(correlation.request(message, id))) {
      requests.reject(new SessionClosedError(this.#closeReason), id);
    }
    return reply;
  }

  /**
   * Answers a request received from the peer (one sent with its
   * `request()`): the codec's correlation stamps the response with the
   * request's id. Router handlers answer this way.
   *
   * @param request The request as received.
   * @param response The answer.
   * @returns `true` when queued; `false` when the session no longer takes
   * frames.
   * @throws {TypeError} When the codec has no correlation or the request
   * carries no id.
   */
  reply(request: In, response: Out): boolean {
    const correlation = this.codec.correlation;
    if (correlation === undefined) {
      throw new TypeError(
        `The ${this.codec.name} codec has no correlation for replies`,
      );
    }
    return this.send(correlation.reply(request, response));
  }

  /**
   * Closes the session: refuses new sends at once, gives queued bytes up to
   * `timeout` milliseconds to be written, closes the connection, then runs
   * `onClose`. Calling it again returns the same promise (from inside
   * `onClose`, one that is already resolved).
   *
   * Once everything is written it ends its side of the stream and, within
   * the same timeout, waits for the peer to end its side or to send nothing
   * for 100 ms, reading and discarding meanwhile: closing on unread input
   * would make the kernel reset the connection and drop the bytes the peer
   * has not received yet.
   *
   * @param reason Why; `Session.closed` resolves with it.
   * @param timeout How long queued bytes may take; defaults to the
   * `closeTimeout` option.
   * @returns A promise that resolves once the session is closed.
   */
  close(reason: string = CloseReason.Closed, timeout?: number): Promise<void> {
    return this.#close(reason, undefined, timeout);
  }

  /**
   * Closes the session, for `await using`.
   *
   * @returns A promise that resolves once the session is closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #close(reason: string, error: unknown, timeout?: number): Promise<void> {
    // onClose awaiting close() must not wait for itself.
    if (this.#inOnClose) return Promise.resolve();
    if (this.#finished === undefined) {
      // A framing's goodbye (a WebSocket close frame) goes after what is
      // queued, whatever the budget says.
      const goodbye = this.#decoder.closeFrame?.(reason, error);
      if (goodbye !== undefined && !this.#queue.dropped) {
        this.#queue.pushPrivate(goodbye);
        this.#queued();
      }
      this.#state = "closing";
      this.#closeReason = reason;
      this.#closeError = error;
      this.#backlog = undefined;
      clearTimeout(this.#authTimer);
      this.#requests?.reject(new SessionClosedError(reason));
      this.#flow.end();
      this.#resumeReading();
      this.#wakeDrainWaiters(false);
      if (this.#livenessWatch !== undefined) {
        this.#clock!.delete(this.#livenessWatch);
      }
      const observers = this.#observers;
      if (observers !== undefined) {
        for (const observer of observers) observer.closing?.(this);
      }
      // Whatever context the close came from (a producer cutting a slow
      // consumer, say), onClose runs in none: a closing session produces for
      // nobody.
      this.#finished = producerContext.exit(() =>
        this.#finish(timeout ?? this.#closeTimeout)
      );
    }
    return this.#finished;
  }

  async #finish(timeout: number): Promise<void> {
    const deadline = performance.now() + timeout;
    const queue = this.#queue;
    let written = true;
    if (queue.queuedBytes > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      written = await Promise.race([
        queue.flushed(),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(resolve, timeout, false);
        }),
      ]);
      clearTimeout(timer);
    }
    if (written && this.#reader !== undefined && timeout > 0) {
      const lingering = linger(
        this.#conn,
        this.#reader,
        () => this.#bytesIn,
        deadline,
      );
      this.#ending = lingering.ending;
      await lingering.done;
    }
    this.#state = "closed";
    try {
      this.#conn.close();
    } catch {
      // Already closed underneath us (e.g. by Deno after a fatal error).
    }
    queue.drop();
    // Closing the conn cancels these; let them settle before reporting.
    await this.#reading?.catch(ignore);
    await this.#writingNow?.catch(ignore);
    await this.#ending;
    const reason = this.#closeReason!;
    const observers = this.#observers;
    if (observers !== undefined) {
      for (const observer of observers) observer.closed?.(this, reason);
    }
    const onClose = this.#options.onClose;
    if (onClose !== undefined) {
      this.#inOnClose = true;
      try {
        await onClose(this, reason);
      } catch (error) {
        this.#report(error);
      } finally {
        this.#inOnClose = false;
      }
    }
    this.#resolveClosed(reason);
  }

  // Applies the budget to a frame of `size` bytes about to be queued. It
  // goes in when it fits, or when the queue is at most at its high-water
  // mark whatever the frame's size (a large frame is queued by reference,
  // not copied: it costs no more than the caller's own buffer). Otherwise
  // it is refused and counted. A burst is no proof of a slow peer, so
  // "close" doesn't cut at once: the refusal keeps the sender waiting on
  // this peer, which then has drainTimeout to drain, like any wait.
  #admit(size: number, frames = 1): boolean {
    const queued = this.#queue.queuedBytes;
    if (queued + size <= this.#budget || queued <= this.#admitAnyBelow) {
      return true;
    }
    this.#framesDropped += frames;
    if (this.#options.overflow !== "drop") this.#flow.keepWaiting();
    return false;
  }

  // A frame was queued: join the next flush pass, and hold the producer back
  // if this queue is now above its high-water mark.
  #queued(): void {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      scheduleFlush(this.#flushBound);
    }
    if (this.#queue.queuedBytes > this.#highWaterMark) {
      const producer = producerContext.getStore();
      if (producer !== undefined) this.#flow.hold(producer);
    }
  }

  #sendShared(
    base: Uint8Array,
    start: number,
    end: number,
    frames: number,
  ): boolean {
    if (this.#state !== "open") return false;
    if (!this.#admit(end - start, frames)) return false;
    this.#queue.pushShared(base, start, end, frames);
    this.#queued();
    return true;
  }

  // Called once per flush pass in which this session had something queued:
  // starts one write (unless one is still in flight; its completion asks for
  // the next pass).
  #flushPass(): void {
    this.#flushScheduled = false;
    if (this.#state === "closed") return;
    const chunk = this.#queue.nextWrite();
    if (chunk !== undefined) this.#writingNow = this.#write(chunk);
  }

  async #write(chunk: Uint8Array): Promise<number> {
    const queue = this.#queue;
    let failure: unknown;
    try {
      let offset = await this.#conn.write(chunk);
      while (offset < chunk.byteLength) {
        offset += await this.#conn.write(chunk.subarray(offset));
      }
      this.#writes++;
    } catch (error) {
      failure = error ?? new Error("write failed");
    }
    queue.completed();
    this.#writingNow = undefined;
    if (failure !== undefined) {
      queue.drop();
      if (this.#state === "open") this.#close(CloseReason.Reset, failure);
      return 0;
    }
    if (queue.queuedBytes <= this.#highWaterMark / 2) {
      if (this.#flow.holding) this.#flow.release();
      if (this.#drainWaiters !== undefined) this.#wakeDrainWaiters(true);
    }
    if (queue.hasPending && !this.#flushScheduled) {
      this.#flushScheduled = true;
      scheduleFlush(this.#flushBound);
    }
    return chunk.byteLength;
  }

  #wakeDrainWaiters(drained: boolean): void {
    const waiters = this.#drainWaiters;
    if (waiters === undefined) return;
    this.#drainWaiters = undefined;
    for (const resolve of waiters) resolve(drained);
  }

  async #run(): Promise<void> {
    // Everything this session's handlers do, across awaits, is on its
    // behalf: see _flow_control.ts.
    producerContext.enterWith(this.#flow);
    if (this.#options.authenticate !== undefined) {
      // onOpen waits for the peer's first message; see #authenticate.
      this.#authenticating = true;
      const timeout = this.#options.authTimeout ?? 10_000;
      this.#authTimer = setTimeout(
        () => this.#close(CloseReason.AuthTimeout, undefined),
        timeout,
      );
    } else {
      await this.#open();
    }
    let buffer = new Uint8Array(READ_BUFFER_MIN);
    let smallReads = 0;
    while (this.#state === "open") {
      // Flow control: a target we sent to is over its high-water mark.
      if (this.#flow.blocked) {
        await this.#flow.unblocked();
        if (this.#state !== "open") break;
      }
      let n: number | null;
      try {
        if (this.#prelude !== undefined) {
          const prelude = this.#prelude;
          this.#prelude = undefined;
          if (prelude.byteLength > buffer.byteLength) {
            buffer = new Uint8Array(prelude.byteLength);
          }
          buffer.set(prelude);
          n = prelude.byteLength;
        } else {
          n = await (this.#reading = this.#conn.read(buffer));
        }
        this.#reading = undefined;
      } catch (error) {
        this.#reading = undefined;
        if (this.#state === "open") this.#close(readFailure(error), error);
        return;
      }
      if (n === null) {
        // The peer half-closed: answer what it sent, then close our side.
        if (this.#handlerBusy !== undefined) await this.#handlerBusy;
        this.#close(CloseReason.Eof, undefined);
        return;
      }
      this.#bytesIn += n;
      if (this.#byteBucket !== undefined && this.#state === "open") {
        // Over the byte rate: these bytes wait (or end the session).
        const wait = this.#byteBucket.take(n, performance.now());
        if (wait > 0 && !this.#overRate()) await this.#sleep(wait);
      }
      if (this.#state !== "open") break;
      const frames = this.#framesIn;
      try {
        this.#decoder.decode(buffer.subarray(0, n), this.#emitBound);
      } catch (error) {
        this.#decodeFailed(error);
        break;
      }
      if (this.#framesIn !== frames || this.#decoder.buffered === 0) {
        this.#lastSeen = Date.now();
        this.#liveness?.frameCompleted();
        this.#framesEnded++;
      }
      if (this.#handlerBusy !== undefined && !this.#awaitingReplies()) {
        await this.#handlerBusy;
      }
      // Grow while reads fill the buffer; shrink back once traffic is small.
      if (n === buffer.length && n < READ_BUFFER_MAX) {
        buffer = new Uint8Array(n * 2);
        smallReads = 0;
      } else if (buffer.length > READ_BUFFER_MIN && n < READ_BUFFER_MIN) {
        if (++smallReads >= 16) {
          buffer = new Uint8Array(READ_BUFFER_MIN);
          smallReads = 0;
        }
      }
    }
    await this.#discard(buffer);
  }

  // Tells the layers above, then runs onOpen (reading waits for it).
  async #open(): Promise<void> {
    if (this.#state !== "open") return;
    const observers = this.#observers;
    if (observers !== undefined) {
      for (const observer of observers) observer.opened?.(this);
    }
    const onOpen = this.#options.onOpen;
    if (onOpen === undefined || this.#state !== "open") return;
    this.#opening = true;
    try {
      await onOpen(this);
    } catch (error) {
      this.#report(error);
    }
    this.#opening = false;
  }

  // The first message of a session that must authenticate. Messages that
  // arrive meanwhile wait in the backlog, as behind an async handler.
  async #authenticate(message: In): Promise<void> {
    let data: Data | undefined | null | false;
    try {
      data = await this.#options.authenticate!(this, message);
    } catch (error) {
      this.#report(error);
      data = undefined;
    }
    if (this.#state !== "open") return;
    clearTimeout(this.#authTimer);
    this.#authTimer = undefined;
    if (data === undefined || data === null || data === false) {
      this.#close(CloseReason.Unauthorized, undefined);
      return;
    }
    this.data = data;
    await this.#open();
    await this.#drainBacklog(undefined, false);
  }

  // A closing session goes on reading, and discards what it reads, until the
  // peer ends its side or the connection is closed; see _linger.ts.
  async #discard(buffer: Uint8Array): Promise<void> {
    while (this.#state === "closing") {
      try {
        const n = await (this.#reading = this.#conn.read(buffer));
        if (n === null) return;
        this.#bytesIn += n;
      } catch {
        return;
      } finally {
        this.#reading = undefined;
      }
    }
  }

  #decodeFailed(error: unknown): void {
    if (this.#state !== "open") return;
    this.#report(error);
    this.#close(
      error instanceof FrameTooLargeError
        ? CloseReason.FrameTooLarge
        : CloseReason.DecodeError,
      error,
    );
  }

  #emit(message: In): void {
    if (this.#state !== "open") return;
    this.#framesIn++;
    const heartbeat = this.#heartbeat;
    if (heartbeat !== undefined && this.#isHeartbeat(heartbeat, message)) {
      return;
    }
    this.#pinged = false;
    if (this.#requests !== undefined && this.#isReply(message)) return;
    if (this.#backlog !== undefined) {
      this.#backlog.push(message);
      return;
    }
    if (this.#authenticating) {
      this.#authenticating = false;
      this.#backlog = [];
      this.#handlerBusy = this.#authenticate(message);
      return;
    }
    const bucket = this.#messageBucket;
    if (bucket !== undefined) {
      const wait = bucket.take(1, performance.now());
      if (wait > 0) {
        if (this.#overRate()) return;
        // Throttled: this message and the rest of the read wait their turn.
        this.#backlog = [message];
        this.#handlerBusy = this.#drainBacklog(this.#sleep(wait), true);
        return;
      }
    }
    this.#dispatch(message);
  }

  // While a handler awaits a reply from this same peer, reading goes on so
  // the reply can arrive (other messages wait in the backlog, up to a bound).
  #awaitingReplies(): boolean {
    return this.#requests !== undefined && this.#requests.size > 0 &&
      (this.#backlog?.length ?? 0) < MAX_BACKLOG_WHILE_AWAITING;
  }

  // A reply to one of our requests goes to its promise; a late one (its
  // request timed out) is dropped.
  #isReply(message: In): boolean {
    const id = this.codec.correlation!.replyTo(message);
    return id !== undefined && this.#requests!.resolve(id, message);
  }

  // Ping and pong frames are the session's business, not the handler's.
  #isHeartbeat(heartbeat: Heartbeat<In>, message: In): boolean {
    const ping = heartbeat.isPing(message);
    if (!ping && !heartbeat.isPong(message)) return false;
    // When ping and pong are the same frame (microSocket's empty frame), a
    // frame after our own ping is its answer, not a ping to answer.
    if (ping && !(this.#symmetricHeartbeat && this.#pinged)) {
      this.sendFrame(heartbeat.pong);
    }
    this.#pinged = false;
    return true;
  }

  #dispatch(message: In): void {
    const onMessage = this.#options.onMessage;
    if (onMessage === undefined) return;
    try {
      const result = onMessage(this, message);
      if (isThenable(result)) {
        this.#backlog = [];
        this.#handlerBusy = this.#drainBacklog(result, false);
      }
    } catch (error) {
      this.#report(error);
    }
  }

  // Awaits an async handler (or a rate-limit pause), then handles the
  // messages that arrived meanwhile, one at a time, until none is left.
  // `prepaid`: the first message already took its rate-limit token.
  async #drainBacklog(
    pending: PromiseLike<unknown> | undefined,
    prepaid: boolean,
  ): Promise<void> {
    const onMessage = this.#options.onMessage;
    try {
      await pending;
    } catch (error) {
      this.#report(error);
    }
    const bucket = this.#messageBucket;
    let first = prepaid;
    while (this.#backlog !== undefined && this.#backlog.length > 0) {
      if (bucket !== undefined && !first) {
        const wait = bucket.take(1, performance.now());
        if (wait > 0) {
          if (this.#overRate()) break;
          await this.#sleep(wait);
          if (this.#backlog === undefined) break;
        }
      }
      first = false;
      const message = this.#backlog.shift()!;
      if (onMessage === undefined) continue;
      try {
        await onMessage(this, message);
      } catch (error) {
        this.#report(error);
      }
    }
    this.#backlog = undefined;
    this.#handlerBusy = undefined;
  }

  #setUpRateLimits(limits: RateLimitOptions | undefined): void {
    if (limits === undefined) return;
    const now = performance.now();
    const messages = limits.messagesPerSecond ?? 0;
    if (messages > 0) {
      const burst = limits.messageBurst ?? Math.max(1, messages);
      this.#messageBucket = new TokenBucket(messages, burst, now);
    }
    const bytes = limits.bytesPerSecond ?? 0;
    if (bytes > 0) {
      const burst = limits.byteBurst ?? Math.max(65536, bytes);
      this.#byteBucket = new TokenBucket(bytes, burst, now);
    }
  }

  // The peer passed a rate limit: with policy "close" that ends it (and
  // returns true); with "throttle" the caller pauses.
  #overRate(): boolean {
    if (this.#options.rateLimit?.policy !== "close") return false;
    this.#close(CloseReason.Flood, undefined);
    return true;
  }

  // A pause that close() cuts short.
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pause = undefined;
        resolve();
      }, ms);
      this.#pause = { timer, resolve };
    });
  }

  #resumeReading(): void {
    const pause = this.#pause;
    if (pause === undefined) return;
    this.#pause = undefined;
    clearTimeout(pause.timer);
    pause.resolve();
  }

  #report(error: unknown): void {
    const onError = this.#options.onError;
    if (onError === undefined) {
      console.error(`microsocket: session ${this.id}:`, error);
      return;
    }
    try {
      onError(error, this);
    } catch (secondary) {
      console.error(`microsocket: onError threw for session ${this.id}:`, {
        error,
        secondary,
      });
    }
  }

  #watchLiveness(options: SessionOptions<Data, In, Out>): void {
    const settings = {
      idleTimeout: options.idleTimeout ?? 0,
      frameTimeout: options.frameTimeout ?? 0,
      heartbeatInterval: options.heartbeatInterval ?? 0,
      heartbeatMaxMissed: options.heartbeatMaxMissed ?? 3,
    };
    const timeouts = [
      settings.idleTimeout,
      settings.frameTimeout,
      settings.heartbeatInterval,
    ].filter((ms) => ms > 0);
    if (timeouts.length === 0) return;
    this.#liveness = new LivenessTracker(settings);
    this.#livenessWatch = { tick: (elapsed) => this.#tick(elapsed) };
    this.#clock = livenessClock(tickFor(Math.min(...timeouts)));
    this.#clock.add(this.#livenessWatch);
  }

  // Called by the shared liveness clock. `elapsed` is already capped, so a
  // stalled event loop never counts against the peer.
  #tick(elapsed: number): void {
    if (this.#state !== "open") return;
    const signals = scratchSignals;
    const written = this.#queue.writtenBytes;
    signals.framesArrived = this.#framesEnded !== this.#seenEnded;
    // Our own pings don't count as traffic the peer is busy reading.
    signals.wrote = written - this.#seenWritten - this.#pingBytes > 0;
    signals.queued = this.#queue.queuedBytes > 0;
    // Not reading because of us (a handler, another session's backlog, a
    // rate-limit pause) is not the peer's silence. Its own backlog is.
    signals.busy = this.#handlerBusy !== undefined || this.#opening ||
      this.#flow.blockedByOthers || this.#pause !== undefined;
    signals.partial = this.#decoder.buffered > 0;
    this.#seenEnded = this.#framesEnded;
    this.#seenWritten = written;
    this.#pingBytes = 0;
    const verdict = this.#liveness!.tick(elapsed, signals);
    if (verdict === undefined) return;
    if (verdict !== "ping") {
      this.#close(verdict, undefined);
      return;
    }
    const ping = this.#heartbeat?.ping;
    if (ping !== undefined && this.sendFrame(ping)) {
      this.#pingBytes += ping.byteLength;
      this.#pinged = true;
    }
  }
}

const NO_ROOMS: ReadonlySet<string> = new Set();

/**
 * Messages that may wait behind a handler that awaits a reply from its own
 * peer; past this, reading pauses until the handler is done.
 */
const MAX_BACKLOG_WHILE_AWAITING = 256;

// Reused by every tick: ticks run one at a time.
const scratchSignals: LivenessSignals = {
  framesArrived: false,
  wrote: false,
  queued: false,
  busy: false,
  partial: false,
};

function ignore(): void {}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function readFailure(error: unknown): string {
  return error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.ConnectionAborted ||
      error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.UnexpectedEof
    ? CloseReason.Reset
    : CloseReason.Error;
}

// Liveness is checked about four times per shortest timeout, on a few fixed
// tick lengths so that sessions with similar settings share one timer.
function tickFor(shortest: number): number {
  for (const tick of [1000, 500, 250, 100, 50, 25]) {
    if (tick * 4 <= shortest) return tick;
  }
  return 10;
}
