// One connection: the single owner of its writes, the reader feeding its
// decoder, and the lifecycle open → closing → closed.
import type { Codec, Decoder, Heartbeat } from "./codec/codec.ts";
import { FrameTooLargeError } from "./errors.ts";
import { CloseReason } from "./close_reason.ts";
import { runClosing } from "./_closing.ts";
import { giveChunk, takeChunk } from "./_chunk_pool.ts";
import {
  type LivenessClock,
  livenessClock,
  type Watched,
} from "./_liveness_clock.ts";

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
 * What a session does when queued outbound bytes would pass its budget:
 * `"close"` closes it with reason `"slow consumer"`; `"drop"` refuses the new
 * frame (`send` returns `false`) and counts it in `framesDropped`.
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
  onOpen?(session: Session<Data, In, Out>): void | Promise<void>;
  /**
   * Runs once per decoded message, in order. When it returns a promise, the
   * session's later messages wait for it (reading pauses meanwhile), so a
   * session's messages are handled one at a time.
   */
  onMessage?(
    session: Session<Data, In, Out>,
    message: In,
  ): void | Promise<void>;
  /** Runs once, after the connection has closed. */
  onClose?(
    session: Session<Data, In, Out>,
    reason: string,
  ): void | Promise<void>;
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
   * written). Past it, `overflow` decides. One frame larger than the budget
   * is still accepted into an empty queue.
   *
   * @default {1048576}
   */
  outboundBudget?: number;
  /**
   * What happens when the budget would be exceeded.
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
}

/** The size a read buffer starts at and returns to: idle sessions stay small. */
const READ_BUFFER_MIN = 512;
/** Reads that fill the buffer double it, up to this. */
const READ_BUFFER_MAX = 65536;
/**
 * Frames smaller than this are copied into the session's current outbound
 * chunk as they are queued (so small frames cost their bytes and nothing
 * more, and leave together in one write); larger ones are queued by
 * reference and written as they are.
 */
const COPY_BELOW = 8192;
/** Outbound chunks start this small and double while they fill up... */
const CHUNK_MIN = 1024;
/** ...up to this size. */
const CHUNK_MAX = 65536;
/**
 * After its last byte is written, a closing session waits at most this long
 * for the peer to end its side or fall silent; see `#linger`.
 */
const LINGER_QUIET = 100;

let nextStandaloneId = 1;

interface FlushWaiter {
  target: number;
  resolve: (written: boolean) => void;
}

/**
 * One connection and everything about it: identity, per-session data, the
 * single writer all its bytes go through, and its lifecycle.
 *
 * Sending never blocks and never throws for a closed peer: `send()` encodes
 * and enqueues synchronously and returns whether the frame was accepted.
 * Frames queued in the same turn, or while a write is in flight, leave
 * together in one write, in order. Queued bytes are bounded by
 * `outboundBudget`.
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
  readonly closed: Promise<string>;

  readonly #conn: Deno.Conn;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #decoder: Decoder<In>;
  readonly #heartbeat: Heartbeat<In> | undefined;
  readonly #options: SessionOptions<Data, In, Out>;
  readonly #budget: number;
  readonly #closeTimeout: number;
  readonly #resolveClosed: (reason: string) => void;

  #state: SessionState = "open";
  #closeReason: string | undefined;
  #closeError: unknown;
  #finished: Promise<void> | undefined;
  #lastSeen: number;

  // Outbound: writes waiting in order from #head, then the bytes gathered in
  // #tail (a chunk being filled with small frames). #queuedBytes counts them
  // all plus the write in flight.
  #queue: Uint8Array[] = [];
  #head = 0;
  #tail: Uint8Array | undefined;
  #tailFill = 0;
  // The pooled buffers behind sealed chunks still in #queue, in order: a
  // write of one of them gives it back to the pool.
  #sealed: ArrayBuffer[] | undefined;
  #chunkSize = CHUNK_MIN;
  #queuedBytes = 0;
  #writing = false;
  #flushScheduled = false;
  #enqueuedTotal = 0;
  #writtenTotal = 0;
  #flushWaiters: FlushWaiter[] | undefined;
  readonly #flushBound = () => this.#flush();

  // Inbound: messages arriving while an async handler runs wait in #backlog.
  #backlog: In[] | undefined;
  #handlerBusy: Promise<void> | undefined;
  readonly #emitBound = (message: In) => this.#emit(message);

  // Counters.
  #framesIn = 0;
  #bytesIn = 0;
  #framesOut = 0;
  #framesDropped = 0;
  #writes = 0;

  // Liveness, in milliseconds of time that counts against the peer.
  #clock: LivenessClock | undefined;
  #liveness: Watched | undefined;
  #idleFor = 0;
  #partialFor = 0;
  #silentFor = 0;
  #missedBeats = 0;
  #stalledFor = 0;
  #opening = false;
  #pinged = false;
  readonly #answersPings: boolean;
  // Reads that completed at least one frame, including frames the codec
  // swallows (a blank JSON line): the peer's signs of life.
  #framesEnded = 0;
  #seenEnded = 0;
  #seenWritten = 0;
  #pingBytes = 0;

  // In-flight I/O, awaited on close so no operation outlives the session.
  #reading: Promise<number | null> | undefined;
  // The read loop; it ends at EOF, on a read error, or once the connection
  // is closed (a closing session keeps reading, see #drain).
  #reader: Promise<void> | undefined;
  #ending: Promise<unknown> | undefined;
  #writingNow: Promise<void> | undefined;

  /**
   * Wraps `conn`. Takes the connection's only writer at once.
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
    this.#decoder = options.codec.decoder();
    this.#heartbeat = options.codec.heartbeat;
    this.#answersPings = answersPings(options.codec);
    this.#budget = options.outboundBudget ?? 1048576;
    this.#closeTimeout = options.closeTimeout ?? 5000;
    if (options.noDelay !== false && "setNoDelay" in conn) {
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // Not a socket option this connection supports.
      }
    }
    this.#writer = conn.writable.getWriter();
    // Failures surface through write(); this only keeps them from being
    // reported as unhandled.
    this.#writer.closed.catch(ignore);
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
    return this.#queuedBytes;
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
    return this.#framesOut;
  }

  /** Bytes written to the peer. */
  get bytesOut(): number {
    return this.#writtenTotal;
  }

  /** Frames refused by the `"drop"` overflow policy. */
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
   * closed, or the overflow policy refused it.
   * @throws {TypeError} When the codec cannot encode the message.
   */
  send(message: Out): boolean {
    if (this.#state !== "open") return false;
    const codec = this.codec;
    if (codec.encodeInto !== undefined) {
      // Fast path: encode straight into the outbound chunk, no allocation.
      const tail = this.#tail ?? this.#openTail(0);
      const start = this.#tailFill;
      const end = codec.encodeInto(message, tail, start);
      if (end >= 0) {
        const size = end - start;
        if (!this.#admit(size)) return false;
        this.#tailFill = end;
        this.#accept(size);
        return true;
      }
    }
    return this.#enqueue(codec.encode(message));
  }

  /**
   * Queues an already encoded frame. The bytes are shared, not copied: do
   * not modify them afterwards. `SessionManager.broadcast` uses this to send
   * one encoding to every session.
   *
   * @param frame A complete frame in this session's codec.
   * @returns `true` when queued; `false` when the session is closing or
   * closed, or the overflow policy refused it.
   */
  sendFrame(frame: Uint8Array): boolean {
    if (this.#state !== "open") return false;
    return this.#enqueue(frame);
  }

  /**
   * Waits until everything queued before this call has been written.
   *
   * @returns `true` when written; `false` when the session closed first.
   */
  flush(): Promise<boolean> {
    if (this.#writtenTotal >= this.#enqueuedTotal) {
      return Promise.resolve(true);
    }
    // Not open and nothing queued: the queue was dropped (write error or
    // cut-off), so what is missing will never be written.
    if (this.#state !== "open" && this.#queuedBytes === 0) {
      return Promise.resolve(false);
    }
    const { promise, resolve } = Promise.withResolvers<boolean>();
    (this.#flushWaiters ??= []).push({ target: this.#enqueuedTotal, resolve });
    return promise;
  }

  /**
   * Closes the session: refuses new sends at once, gives queued bytes up to
   * `timeout` milliseconds to be written, closes the connection, then runs
   * `onClose`. Calling it again returns the same promise.
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
    if (this.#finished === undefined) {
      this.#state = "closing";
      this.#closeReason = reason;
      this.#closeError = error;
      this.#backlog = undefined;
      if (this.#liveness !== undefined) this.#clock!.delete(this.#liveness);
      runClosing(this);
      this.#finished = this.#finish(timeout ?? this.#closeTimeout);
    }
    return this.#finished;
  }

  async #finish(timeout: number): Promise<void> {
    const deadline = performance.now() + timeout;
    if (this.#writtenTotal < this.#enqueuedTotal) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.flush(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, timeout);
        }),
      ]);
      clearTimeout(timer);
    }
    if (this.#writtenTotal >= this.#enqueuedTotal) await this.#linger(deadline);
    this.#state = "closed";
    try {
      this.#conn.close();
    } catch {
      // Already closed underneath us (e.g. by Deno after a fatal error).
    }
    this.#dropQueue();
    // Closing the conn cancels these; let them settle before reporting.
    await this.#reading?.catch(() => {});
    await this.#writingNow?.catch(() => {});
    await this.#ending;
    const reason = this.#closeReason!;
    try {
      await this.#options.onClose?.(this, reason);
    } catch (error) {
      this.#report(error);
    }
    this.#resolveClosed(reason);
  }

  // Everything queued has been written, but maybe not yet received: closing
  // a socket whose peer's bytes sit unread (or still arrive) makes the kernel
  // reset it and throw away what it still holds for the peer. So end our
  // side (FIN after the data), keep reading and discarding (#drain), and
  // close once the peer has ended its side too, has sent nothing for
  // LINGER_QUIET ms, or the close timeout is up.
  async #linger(deadline: number): Promise<void> {
    const reader = this.#reader;
    if (reader === undefined || performance.now() >= deadline) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // TLS can't end its side before the handshake is done: a peer that
      // stalls the handshake would hold this up until the deadline.
      let ending: Promise<boolean>;
      try {
        ending = this.#ending = this.#conn.closeWrite().then(
          () => true,
          () => false,
        );
      } catch {
        return; // the connection is already gone
      }
      const ended = await Promise.race([
        ending,
        new Promise<boolean>((resolve) => {
          const wait = Math.min(deadline - performance.now(), LINGER_QUIET);
          timer = setTimeout(resolve, wait, false);
        }),
      ]);
      clearTimeout(timer);
      if (!ended) return;
      for (;;) {
        const left = deadline - performance.now();
        if (left <= 0) return;
        const heard = this.#bytesIn;
        const done = await Promise.race([
          reader.then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(resolve, Math.min(left, LINGER_QUIET), false);
          }),
        ]);
        clearTimeout(timer);
        if (done || this.#bytesIn === heard) return;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #enqueue(frame: Uint8Array): boolean {
    const size = frame.byteLength;
    if (!this.#admit(size)) return false;
    if (size < COPY_BELOW) {
      let tail = this.#tail;
      if (tail === undefined || tail.length - this.#tailFill < size) {
        tail = this.#openTail(size);
      }
      tail.set(frame, this.#tailFill);
      this.#tailFill += size;
    } else {
      this.#sealTail();
      this.#queue.push(frame);
    }
    this.#accept(size);
    return true;
  }

  // Applies the budget to a frame of `size` bytes about to be queued.
  #admit(size: number): boolean {
    if (this.#queuedBytes + size <= this.#budget || this.#queuedBytes === 0) {
      return true;
    }
    if (this.#options.overflow === "drop") {
      this.#framesDropped++;
    } else {
      // No grace period: the peer is not keeping up, and cutting it now
      // frees its queue at once.
      this.#close(CloseReason.SlowConsumer, undefined, 0);
    }
    return false;
  }

  // Counts a frame of `size` bytes just queued, and schedules the flush.
  #accept(size: number): void {
    this.#queuedBytes += size;
    this.#enqueuedTotal += size;
    this.#framesOut++;
    if (!this.#writing && !this.#flushScheduled) {
      // Deferred to the end of the turn so every frame queued in this turn
      // leaves in the same write.
      this.#flushScheduled = true;
      queueMicrotask(this.#flushBound);
    }
  }

  // Makes room for `size` more bytes in the chunk being filled: grows it
  // while it is under CHUNK_MAX (so a turn's small frames stay in one
  // write), otherwise seals it and starts the next.
  #openTail(size: number): Uint8Array {
    const old = this.#tail;
    const fill = this.#tailFill;
    if (old !== undefined && fill + size <= CHUNK_MAX) {
      const grown = takeChunk(
        Math.min(CHUNK_MAX, Math.max(old.length * 2, fill + size)),
      );
      grown.set(old.subarray(0, fill));
      giveChunk(old.buffer as ArrayBuffer);
      this.#chunkSize = grown.length;
      return this.#tail = grown;
    }
    this.#sealTail();
    const tail = takeChunk(Math.max(size, this.#chunkSize));
    this.#tail = tail;
    this.#tailFill = 0;
    return tail;
  }

  // Moves the gathered bytes of the current chunk to the write queue.
  #sealTail(): void {
    const tail = this.#tail;
    if (tail === undefined) return;
    this.#tail = undefined;
    if (this.#tailFill > 0) {
      this.#queue.push(tail.subarray(0, this.#tailFill));
      (this.#sealed ??= []).push(tail.buffer as ArrayBuffer);
    }
    // A chunk that stayed mostly empty makes the next one smaller.
    if (this.#tailFill * 4 < tail.length) {
      this.#chunkSize = Math.max(CHUNK_MIN, this.#chunkSize >> 1);
    }
    this.#tailFill = 0;
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#state !== "closed") {
        const chunk = this.#nextWrite();
        if (chunk === undefined) break;
        await (this.#writingNow = this.#writer.write(chunk));
        this.#queuedBytes -= chunk.byteLength;
        this.#writtenTotal += chunk.byteLength;
        if (this.#sealed?.[0] === chunk.buffer) {
          giveChunk(this.#sealed.shift()!);
        }
        this.#writes++;
        if (this.#flushWaiters !== undefined) this.#wakeFlushWaiters();
      }
    } catch (error) {
      this.#dropQueue();
      if (this.#state === "open") this.#close(CloseReason.Reset, error);
    } finally {
      this.#writing = false;
    }
  }

  // Takes the next write off the queue; the chunk being filled goes last.
  #nextWrite(): Uint8Array | undefined {
    const queue = this.#queue;
    if (this.#head === queue.length) {
      if (this.#tailFill === 0) return undefined;
      this.#sealTail();
    }
    const chunk = queue[this.#head]!;
    queue[this.#head++] = EMPTY;
    if (this.#head === queue.length) {
      queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024) {
      queue.splice(0, this.#head);
      this.#head = 0;
    }
    return chunk;
  }

  #wakeFlushWaiters(): void {
    const waiters = this.#flushWaiters!;
    const written = this.#writtenTotal;
    let kept = 0;
    for (const waiter of waiters) {
      if (waiter.target <= written) waiter.resolve(true);
      else waiters[kept++] = waiter;
    }
    waiters.length = kept;
    if (kept === 0) this.#flushWaiters = undefined;
  }

  #dropQueue(): void {
    this.#queue.length = 0;
    this.#head = 0;
    this.#tail = undefined;
    this.#tailFill = 0;
    this.#sealed = undefined;
    this.#queuedBytes = 0;
    const waiters = this.#flushWaiters;
    this.#flushWaiters = undefined;
    if (waiters !== undefined) {
      for (const waiter of waiters) waiter.resolve(false);
    }
  }

  async #run(): Promise<void> {
    const onOpen = this.#options.onOpen;
    if (onOpen !== undefined && this.#state === "open") {
      this.#opening = true;
      try {
        await onOpen(this);
      } catch (error) {
        this.#report(error);
      }
      this.#opening = false;
    }
    let buffer = new Uint8Array(READ_BUFFER_MIN);
    let smallReads = 0;
    while (this.#state === "open") {
      let n: number | null;
      try {
        n = await (this.#reading = this.#conn.read(buffer));
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
        this.#partialFor = 0;
        this.#framesEnded++;
      }
      if (this.#handlerBusy !== undefined) await this.#handlerBusy;
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
    await this.#drain(buffer);
  }

  // A closing session goes on reading, and discards what it reads, until the
  // peer ends its side or the connection is closed; see #linger.
  async #drain(buffer: Uint8Array): Promise<void> {
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
    if (heartbeat !== undefined && heartbeat.isPong(message)) {
      // The answer to our ping, or the peer's own ping: answer that one.
      if (this.#pinged) this.#pinged = false;
      else if (this.#answersPings) this.sendFrame(heartbeat.ping);
      return;
    }
    this.#pinged = false;
    if (this.#backlog !== undefined) {
      this.#backlog.push(message);
      return;
    }
    this.#dispatch(message);
  }

  #dispatch(message: In): void {
    const onMessage = this.#options.onMessage;
    if (onMessage === undefined) return;
    try {
      const result = onMessage(this, message);
      if (result !== undefined && typeof result.then === "function") {
        this.#backlog = [];
        this.#handlerBusy = this.#drainBacklog(result);
      }
    } catch (error) {
      this.#report(error);
    }
  }

  // Awaits an async handler, then handles the messages that arrived
  // meanwhile, one at a time, until none is left.
  async #drainBacklog(pending: Promise<void>): Promise<void> {
    const onMessage = this.#options.onMessage!;
    try {
      await pending;
    } catch (error) {
      this.#report(error);
    }
    while (this.#backlog !== undefined && this.#backlog.length > 0) {
      const message = this.#backlog.shift()!;
      try {
        await onMessage(this, message);
      } catch (error) {
        this.#report(error);
      }
    }
    this.#backlog = undefined;
    this.#handlerBusy = undefined;
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
    const timeouts = [
      options.idleTimeout ?? 0,
      options.frameTimeout ?? 0,
      options.heartbeatInterval ?? 0,
    ].filter((ms) => ms > 0);
    if (timeouts.length === 0) return;
    this.#liveness = { tick: (elapsed) => this.#tick(elapsed) };
    this.#clock = livenessClock(tickFor(Math.min(...timeouts)));
    this.#clock.add(this.#liveness);
  }

  // Called by the shared liveness clock. `elapsed` is already capped, so a
  // stalled event loop never counts against the peer.
  #tick(elapsed: number): void {
    if (this.#state !== "open") return;
    const options = this.#options;
    const framesArrived = this.#framesEnded !== this.#seenEnded;
    // Our own pings don't count as traffic the peer is busy reading.
    const wrote = this.#writtenTotal - this.#seenWritten - this.#pingBytes > 0;
    this.#seenEnded = this.#framesEnded;
    this.#seenWritten = this.#writtenTotal;
    this.#pingBytes = 0;
    // Writes complete in batches of up to 64 KiB, so a slow but steady
    // reader leaves ticks without progress: queued bytes count as sending
    // until they have made no progress for a whole timeout.
    if (wrote || this.#queuedBytes === 0) this.#stalledFor = 0;
    else this.#stalledFor += elapsed;
    const sending = wrote ||
      (this.#queuedBytes > 0 &&
        this.#stalledFor <
          Math.max(options.idleTimeout ?? 0, options.heartbeatInterval ?? 0));
    // Not the peer's fault: we are not reading because our onOpen or the
    // handler of its last message still runs, or we are busy sending to it
    // and it is reading.
    const busy = this.#handlerBusy !== undefined || this.#opening;
    const excused = busy || sending;

    if (framesArrived) this.#idleFor = 0;
    else if (!excused) this.#idleFor += elapsed;
    const idleTimeout = options.idleTimeout ?? 0;
    if (idleTimeout > 0 && this.#idleFor >= idleTimeout) {
      this.#close(CloseReason.IdleTimeout, undefined);
      return;
    }

    const frameTimeout = options.frameTimeout ?? 0;
    if (frameTimeout > 0) {
      if (framesArrived || this.#decoder.buffered === 0) this.#partialFor = 0;
      else if (!busy) this.#partialFor += elapsed;
      if (this.#partialFor >= frameTimeout) {
        this.#close(CloseReason.FrameTimeout, undefined);
        return;
      }
    }

    const interval = options.heartbeatInterval ?? 0;
    if (interval > 0) {
      if (framesArrived) {
        this.#silentFor = 0;
        this.#missedBeats = 0;
      } else if (!excused) {
        this.#silentFor += elapsed;
      }
      if (this.#silentFor >= interval) {
        this.#silentFor -= interval;
        if (++this.#missedBeats > (options.heartbeatMaxMissed ?? 3)) {
          this.#close(CloseReason.HeartbeatTimeout, undefined);
          return;
        }
        const ping = this.#heartbeat?.ping;
        if (ping !== undefined && this.sendFrame(ping)) {
          this.#pingBytes += ping.byteLength;
          this.#pinged = true;
        }
      }
    }
  }
}

const EMPTY = new Uint8Array(0);

function ignore(): void {}

// Whether a codec's ping decodes as its own pong (microSocket's empty frame):
// then a session answers pings with pings. Asked once per codec.
const symmetricHeartbeat = new WeakMap<object, boolean>();

function answersPings<In, Out>(codec: Codec<In, Out>): boolean {
  const heartbeat = codec.heartbeat;
  if (heartbeat === undefined) return false;
  let answers = symmetricHeartbeat.get(codec);
  if (answers === undefined) {
    let pongs = 0;
    try {
      codec.decoder().decode(heartbeat.ping, (message) => {
        if (heartbeat.isPong(message)) pongs++;
      });
    } catch {
      // A ping its own decoder rejects is no pong.
    }
    answers = pongs === 1;
    symmetricHeartbeat.set(codec, answers);
  }
  return answers;
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
