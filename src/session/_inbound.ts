// Package-internal: what happens to each decoded message, in this order:
// heartbeat (pings answered, pongs swallowed) → reply (to one of our
// requests) → authentication (the first message) → rate limit → dispatch
// to onMessage. Messages are handled one at a time; those arriving while a
// handler (or authenticate, or onOpen) runs, or while the rate limit holds
// them, wait in the backlog.
//
// One explicit state, `phase`, says where a message goes:
//   authenticating  the next message goes to `authenticate`
//   opening         onOpen runs                        → backlog
//   busy            a handler or authenticate runs     → backlog
//   throttled       the message rate limit pauses us   → backlog
//   ready           straight to onMessage
//   closed          dropped
import type { Codec, Heartbeat } from "../codec/codec.ts";
import { CloseReason } from "../close_reason.ts";
import { Refusal, SessionClosedError } from "../errors.ts";
import { PendingRequests } from "./_pending_requests.ts";
import { TokenBucket } from "./_token_bucket.ts";
import type { ClosingInbound, Life } from "./_lifecycle.ts";
import type { RateLimitOptions } from "./options.ts";
import { DEFAULT_AUTH_TIMEOUT, DEFAULT_MIN_BYTE_BURST } from "../defaults.ts";

/** Where the inbound pipeline is; see the file comment. */
export type Phase =
  | "continued"
  | "authenticating"
  | "opening"
  | "ready"
  | "busy"
  | "throttled"
  | "closed";

/** The handlers and settings the pipeline uses (see SessionOptions). */
export interface InboundOptions<S, Data, In> {
  codec: Codec<In, unknown>;
  onOpen?(session: S): unknown;
  onMessage?(session: S, message: In): unknown;
  authenticate?(
    session: S,
    message: In,
  ): Data | undefined | null | false | Promise<Data | undefined | null | false>;
  authTimeout?: number;
  rateLimit?: RateLimitOptions;
}

/**
 * Messages that may wait behind a handler that awaits a reply from its own
 * peer; past this, reading pauses until the handler is done.
 */
const MAX_BACKLOG_WHILE_AWAITING = 256;

/** One session's inbound pipeline; see the file comment. */
export class Inbound<
  S extends { data: Data; send(message: never): boolean },
  Data,
  In,
> implements ClosingInbound {
  /** Messages decoded from the peer. */
  framesIn = 0;
  /** Heartbeats among them (not messages: see messagesIn). */
  heartbeatsIn = 0;
  /** Messages or reads a rate limit held back or refused (metrics). */
  rateLimitHits = 0;
  /**
   * The backlog's drain (an async handler, authenticate, a rate-limit
   * pause): the reader awaits it before reading on.
   */
  handlerBusy: Promise<void> | undefined;
  readonly #session: S;
  // Handlers and the heartbeat, shared by the sessions with the same options.
  readonly #shared: InboundShared<S, Data, In>;
  readonly #life: Life;
  readonly #out: { sendFrame(frame: Uint8Array): boolean };
  #phase: Phase;
  // Made on first use: most messages go straight to onMessage.
  #backlog: In[] | undefined;
  // The rate limits' buckets; none for most sessions (one field, not two).
  #limits: { messages?: TokenBucket; bytes?: TokenBucket } | undefined;
  #pause:
    | { timer: ReturnType<typeof setTimeout>; resolve: () => void }
    | undefined;
  // Our own ping is out: with a symmetric heartbeat, the next ping-looking
  // frame is its answer.
  #pinged = false;
  // Requests waiting for their reply, by id.
  #requests: PendingRequests<In> | undefined;
  #authTimer: ReturnType<typeof setTimeout> | undefined;

  /** @param out Where pongs are queued (the writer). */
  constructor(
    session: S,
    options: InboundOptions<S, Data, In>,
    life: Life,
    out: { sendFrame(frame: Uint8Array): boolean },
  ) {
    this.#session = session;
    this.#shared = inboundShared(options);
    this.#life = life;
    this.#out = out;
    this.#phase = options.authenticate !== undefined
      ? "authenticating"
      : "opening";
    this.#setUpRateLimits(options.rateLimit);
  }

  // The options, as the shared settings hold them.
  get #options(): InboundOptions<S, Data, In> {
    return this.#shared.options;
  }

  /**
   * Whether reading stands still because of us (onOpen, a handler, a
   * rate-limit pause), not because the peer is silent.
   */
  get busy(): boolean {
    return this.handlerBusy !== undefined || this.#phase === "opening" ||
      this.#pause !== undefined;
  }

  /** The requests made so far, if any (metrics). */
  get madeRequests(): PendingRequests<In> | undefined {
    return this.#requests;
  }

  /** Requests waiting for replies, made on first use. */
  requests(): PendingRequests<In> {
    return this.#requests ??= new PendingRequests(this.#life);
  }

  /** See continueSession() in _internals.ts. */
  continueSession(): void {
    this.#phase = "continued";
  }

  /** Our ping went out (see the heartbeat step). */
  pingSent(): void {
    this.#pinged = true;
  }

  /**
   * Starts the pipeline, before the first read: arms the authentication
   * deadline, or runs onOpen (the returned promise; reading waits for it).
   */
  start(): Promise<void> | undefined {
    if (this.#phase === "continued") {
      this.#phase = "ready";
      if (this.#life.state === "open") this.#life.opened();
      return undefined;
    }
    if (this.#phase !== "authenticating") return this.#open("ready");
    // onOpen waits for the peer's first message; see #authenticate.
    const timeout = this.#options.authTimeout ?? DEFAULT_AUTH_TIMEOUT;
    this.#authTimer = setTimeout(
      () => this.#life.close(CloseReason.AuthTimeout, undefined),
      timeout,
    );
    return undefined;
  }

  /** Takes one decoded message (the decoder's `emit`). */
  readonly emit = (message: In): void => {
    const phase = this.#phase;
    if (phase === "closed") return;
    this.framesIn++;
    const heartbeat = this.#shared.heartbeat;
    if (heartbeat !== undefined && this.#isHeartbeat(heartbeat, message)) {
      this.heartbeatsIn++;
      return;
    }
    this.#pinged = false;
    if (this.#requests !== undefined && this.#isReply(message)) return;
    if (phase !== "ready") {
      if (phase === "authenticating") {
        this.#phase = "busy";
        this.handlerBusy = this.#authenticate(message);
      } else {
        (this.#backlog ??= []).push(message);
      }
      return;
    }
    const bucket = this.#limits?.messages;
    if (bucket !== undefined) {
      const wait = bucket.take(1, performance.now());
      if (wait > 0) {
        this.rateLimitHits++;
        if (this.#overRate()) return;
        // Throttled: this message and the rest of the read wait their turn.
        this.#phase = "throttled";
        (this.#backlog ??= []).push(message);
        this.handlerBusy = this.#drainBacklog(this.#sleep(wait), true);
        return;
      }
    }
    this.#dispatch(message);
  };

  /**
   * Applies the byte rate to `n` bytes just read: a pause to await, or
   * `undefined` to go on.
   */
  throttleBytes(n: number): Promise<void> | undefined {
    const bucket = this.#limits?.bytes;
    if (bucket === undefined || this.#life.state !== "open") return undefined;
    // Over the byte rate: these bytes wait (or end the session).
    const wait = bucket.take(n, performance.now());
    if (wait > 0) this.rateLimitHits++;
    return wait > 0 && !this.#overRate() ? this.#sleep(wait) : undefined;
  }

  /**
   * While a handler awaits a reply from this same peer, reading goes on so
   * the reply can arrive (other messages wait in the backlog, up to a bound).
   */
  awaitingReplies(): boolean {
    return this.#requests !== undefined && this.#requests.size > 0 &&
      (this.#backlog?.length ?? 0) < MAX_BACKLOG_WHILE_AWAITING;
  }

  /** Whether the codec correlates requests and replies. */
  get correlated(): boolean {
    return this.#options.codec.correlation !== undefined;
  }

  /**
   * Waits for `busy` (onOpen, or a handler) to settle, unless it asks this
   * peer something meanwhile (`session.request()`, even after other awaits):
   * then it returns, and the reader reads on so that the reply can arrive.
   */
  async waitFor(busy: Promise<unknown>): Promise<void> {
    let settled = false;
    const done = busy.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    while (!settled && !this.awaitingReplies()) {
      const requests = this.#requests ??= new PendingRequests(this.#life);
      await Promise.race([done, requests.added()]);
    }
  }

  closing(reason: string): void {
    this.#phase = "closed";
    if (this.#backlog !== undefined) this.#backlog.length = 0;
    clearTimeout(this.#authTimer);
    this.#requests?.reject(new SessionClosedError(reason));
    this.#resume();
  }

  // Tells the layers above, then runs onOpen (what follows waits for it);
  // the phase is then `then`.
  async #open(then: Phase): Promise<void> {
    const life = this.#life;
    if (life.state === "open") {
      life.opened();
      const onOpen = this.#options.onOpen;
      if (onOpen !== undefined && life.state === "open") {
        this.#phase = "opening";
        try {
          await onOpen(this.#session);
        } catch (error) {
          life.report(error);
        }
      }
    }
    if (this.#phase === "opening") this.#phase = then;
  }

  // The first message of a session that must authenticate. Messages that
  // arrive meanwhile wait in the backlog, as behind an async handler.
  async #authenticate(message: In): Promise<void> {
    const life = this.#life;
    let data: Data | undefined | null | false;
    let refusal: Refusal | undefined;
    try {
      data = await this.#options.authenticate!(this.#session, message);
    } catch (error) {
      // A Refusal is an answer, not a failure: onError doesn't hear of it.
      if (error instanceof Refusal) refusal = error;
      else life.report(error);
      data = undefined;
    }
    if (life.state !== "open") return;
    clearTimeout(this.#authTimer);
    this.#authTimer = undefined;
    if (data === undefined || data === null || data === false) {
      // The notice goes first, the close frame (carrying the refusal's code
      // and reason) after it.
      if (refusal?.notice !== undefined) {
        try {
          // Typed Out by SessionOptions.authenticate's Refusal<Out>.
          this.#session.send(refusal.notice as never);
        } catch (error) {
          life.report(error); // the codec can't encode it
        }
      }
      life.close(CloseReason.Unauthorized, refusal);
      return;
    }
    this.#session.data = data;
    await this.#open("busy");
    await this.#drainBacklog(undefined, false);
  }

  // A reply to one of our requests goes to its promise; a late one (its
  // request timed out) is dropped.
  #isReply(message: In): boolean {
    const id = this.#options.codec.correlation!.replyTo(message);
    return id !== undefined && this.#requests!.resolve(id, message);
  }

  // Ping and pong frames are the session's business, not the handler's.
  #isHeartbeat(heartbeat: Heartbeat<In>, message: In): boolean {
    const ping = heartbeat.isPing(message);
    if (!ping && !heartbeat.isPong(message)) return false;
    // When ping and pong are the same frame (microSocket's empty frame), a
    // frame after our own ping is its answer, not a ping to answer.
    if (ping && !(this.#shared.symmetricHeartbeat && this.#pinged)) {
      this.#out.sendFrame(heartbeat.pong);
    }
    this.#pinged = false;
    return true;
  }

  #dispatch(message: In): void {
    const onMessage = this.#options.onMessage;
    if (onMessage === undefined) return;
    try {
      const result = onMessage(this.#session, message);
      if (isThenable(result)) {
        this.#phase = "busy";
        this.handlerBusy = this.#drainBacklog(result, false);
      }
    } catch (error) {
      this.#life.report(error);
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
      this.#life.report(error);
    }
    const bucket = this.#limits?.messages;
    // None yet: nothing arrived meanwhile (and nothing can before the
    // phase is "ready" again, below, without an await in between).
    const backlog = this.#backlog;
    let first = prepaid;
    while (
      this.#phase !== "closed" && backlog !== undefined && backlog.length > 0
    ) {
      if (bucket !== undefined && !first) {
        const wait = bucket.take(1, performance.now());
        if (wait > 0) {
          this.rateLimitHits++;
          if (this.#overRate()) break;
          this.#phase = "throttled";
          await this.#sleep(wait);
          // Closing (phase "closed") cut the pause short.
          if (this.#life.state !== "open") break;
        }
      }
      first = false;
      this.#phase = "busy";
      const message = backlog.shift()!;
      if (onMessage === undefined) continue;
      try {
        await onMessage(this.#session, message);
      } catch (error) {
        this.#life.report(error);
      }
    }
    if (this.#phase !== "closed") this.#phase = "ready";
    this.handlerBusy = undefined;
  }

  #setUpRateLimits(limits: RateLimitOptions | undefined): void {
    if (limits === undefined) return;
    const now = performance.now();
    const messages = limits.messagesPerSecond ?? 0;
    if (messages > 0) {
      const burst = limits.messageBurst ?? Math.max(1, messages);
      (this.#limits ??= {}).messages = new TokenBucket(messages, burst, now);
    }
    const bytes = limits.bytesPerSecond ?? 0;
    if (bytes > 0) {
      const burst = limits.byteBurst ?? Math.max(DEFAULT_MIN_BYTE_BURST, bytes);
      (this.#limits ??= {}).bytes = new TokenBucket(bytes, burst, now);
    }
  }

  // The peer passed a rate limit: with policy "close" that ends it (and
  // returns true); with "throttle" the caller pauses.
  #overRate(): boolean {
    if (this.#options.rateLimit?.policy !== "close") return false;
    this.#life.close(CloseReason.Flood, undefined);
    return true;
  }

  // A pause that closing cuts short.
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pause = undefined;
        resolve();
      }, ms);
      this.#pause = { timer, resolve };
    });
  }

  #resume(): void {
    const pause = this.#pause;
    if (pause === undefined) return;
    this.#pause = undefined;
    clearTimeout(pause.timer);
    pause.resolve();
  }
}

/** What every session made with one options object shares. */
interface InboundShared<S, Data, In> {
  readonly options: InboundOptions<S, Data, In>;
  readonly heartbeat: Heartbeat<In> | undefined;
  /** Whether the heartbeat's ping and pong are the same bytes. */
  readonly symmetricHeartbeat: boolean;
}

// One per options object (a server passes one to all its sessions): two
// fields fewer in each of a million quiet sessions (issue 19 §4). Checked
// against the codec's heartbeat, so a changed codec still counts.
// deno-lint-ignore no-explicit-any
const sharedByOptions = new WeakMap<object, InboundShared<any, any, any>>();

function inboundShared<S, Data, In>(
  options: InboundOptions<S, Data, In>,
): InboundShared<S, Data, In> {
  const heartbeat = options.codec.heartbeat;
  const cached = sharedByOptions.get(options);
  if (cached !== undefined && cached.heartbeat === heartbeat) return cached;
  const shared: InboundShared<S, Data, In> = Object.freeze({
    options,
    heartbeat,
    symmetricHeartbeat: heartbeat !== undefined &&
      sameBytes(heartbeat.ping, heartbeat.pong),
  });
  sharedByOptions.set(options, shared);
  return shared;
}

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
