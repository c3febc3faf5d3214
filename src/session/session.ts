// The public face of one connection: Session, its options and handlers.
// The class is a façade; the work is done by its parts, each in its own
// file and joined by narrow interfaces:
//   _writer.ts     budget, outbound queue, flush pass, the write loop,
//                  drain waiters, flow hold (the single owner of writes)
//   _reader.ts     the read loop (buffer sizing, prelude, discard on close)
//   _inbound.ts    heartbeat → reply → auth → rate → dispatch, one state
//   _lifecycle.ts  open → closing → closed, linger, observers
//   _liveness.ts   idle, frame and heartbeat timeouts
// The server, client and manager reach a session only through
// _internals.ts.
import type { Codec, DecoderLink } from "../codec/codec.ts";
import { CloseReason } from "../close_reason.ts";
import { SessionClosedError } from "../errors.ts";
import { Lifecycle, type LifecycleParts } from "./_lifecycle.ts";
import { Writer } from "./_writer.ts";
import { Reader } from "./_reader.ts";
import { Inbound } from "./_inbound.ts";
import { Liveness } from "./_liveness.ts";
import { parts, type SessionParts } from "./_internals.ts";
import type {
  OverflowPolicy,
  RateLimitOptions,
  RequestOptions,
  SessionState,
} from "./options.ts";
import type { WaitOptions } from "./_flow_control.ts";
import { DEFAULT_NO_DELAY, DEFAULT_REQUEST_TIMEOUT } from "../defaults.ts";

export type { WaitOptions } from "./_flow_control.ts";

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
   * number of packets down. Ignored for other connections.
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
   * it. Off by default: a quiet peer is normal (a device, a background
   * tab); `heartbeatInterval` finds dead ones.
   *
   * @default {0}
   */
  idleTimeout?: number;
  /**
   * Close the session (reason `"frame timeout"`) when a frame has started
   * but not completed for this many milliseconds (slowloris protection,
   * on by default: 30 s still lets a 1 MiB frame arrive at ~35 KB/s).
   * `0` disables it.
   *
   * @default {30000}
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
   * throw, to close the session with reason `"unauthorized"` (a WebSocket
   * peer gets close code 4401 and that reason). Throw a
   * {@linkcode Refusal} to tell the peer why: its `notice` is sent as the
   * last message (on any transport) and a WebSocket peer gets its code and
   * reason; `closeError` is the refusal, and `onError` does not hear of it.
   * Messages that arrive meanwhile wait. A server adds the session to its
   * manager (rooms, broadcasts) only once it is authenticated.
   */
  authenticate?(
    session: Session<Data, In, Out>,
    message: In,
  ): Data | undefined | null | false | Promise<Data | undefined | null | false>;
  /**
   * How long, in milliseconds, a peer has to authenticate (from connect to
   * `authenticate` resolving) before it is closed with reason
   * `"auth timeout"` (a WebSocket peer gets close code 4408).
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
  /** @ignore Package-internal: see _internals.ts. */
  readonly [parts]: SessionParts;

  readonly #life: Lifecycle<Session<Data, In, Out>>;
  readonly #writer: Writer<Out>;

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
    this.remoteAddr = conn.remoteAddr;
    this.connectedAt = Date.now();
    this.codec = options.codec;
    const life = new Lifecycle(this, conn, options);
    const writer = new Writer(conn, options, life);
    const link = new SessionLink(this, writer);
    // Runs the codec's decoder(): user code that may throw.
    const decoder = options.codec.decoder(link);
    const inbound = new Inbound(this, options, life, writer);
    if ((options.noDelay ?? DEFAULT_NO_DELAY) && "setNoDelay" in conn) {
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // Not a socket option this connection supports.
      }
    }
    const liveness = Liveness.watch(
      options,
      life,
      writer,
      inbound,
      decoder,
      options.codec.heartbeat,
    );
    const reader = new Reader(
      conn,
      decoder,
      life,
      inbound,
      writer.flow,
      liveness,
      this.connectedAt,
    );
    // One object serves as the session's parts and the lifecycle's.
    const own: SessionParts & LifecycleParts = {
      writer,
      inbound,
      reader,
      liveness,
      lifecycle: life,
      connection: undefined,
      link,
    };
    life.bind(own);
    this.#life = life;
    this.#writer = writer;
    this[parts] = own;
    reader.start();
  }

  // The reader and the inbound pipeline, as the parts hold them: only cold
  // paths use them, so the session keeps no fields of its own for them.
  get #parts(): {
    readonly reader: Reader<In>;
    readonly inbound: Inbound<Session<Data, In, Out>, Data, In>;
  } {
    return this[parts] as unknown as {
      readonly reader: Reader<In>;
      readonly inbound: Inbound<Session<Data, In, Out>, Data, In>;
    };
  }

  /** Resolves, never rejects, with the close reason once fully closed. */
  get closed(): Promise<CloseReason | (string & Record<never, never>)> {
    return this.#life.closed;
  }

  /** Where the session is in its life. */
  get state(): SessionState {
    return this.#life.state;
  }

  /** The close reason, once `close()` has begun; otherwise `undefined`. */
  get closeReason(): string | undefined {
    return this.#life.closeReason;
  }

  /** The error behind the close (decode or network error), if any. */
  get closeError(): unknown {
    return this.#life.closeError;
  }

  /** When the last frame arrived (or the connection opened), epoch ms. */
  get lastSeen(): number {
    return this.#parts.reader.lastSeen;
  }

  /** Outbound bytes waiting in memory, including the write in flight. */
  get queuedBytes(): number {
    return this.#writer.queuedBytes;
  }

  /**
   * Whether more than `highWaterMark` bytes are queued: sends are still
   * accepted (up to the budget), but a well-behaved producer waits for
   * {@linkcode Session.drained} first.
   */
  get backpressure(): boolean {
    return this.#writer.backpressure;
  }

  /**
   * Whether some session this one sent to holds its reading back (flow
   * control).
   */
  get paused(): boolean {
    return this.#writer.flow.blocked;
  }

  /** Frames decoded from the peer. */
  get framesIn(): number {
    return this.#parts.inbound.framesIn;
  }

  /** Bytes read from the peer. */
  get bytesIn(): number {
    return this.#parts.reader.bytesIn;
  }

  /** Frames accepted by `send` / `sendFrame`. */
  get framesOut(): number {
    return this.#writer.framesOut;
  }

  /** Bytes written to the peer. */
  get bytesOut(): number {
    return this.#writer.bytesOut;
  }

  /**
   * Frames refused because the queue had no room for them (past
   * `outboundBudget`), under either overflow policy.
   */
  get framesDropped(): number {
    return this.#writer.framesDropped;
  }

  /**
   * Writes made to the connection. Frames queued together share a write, so
   * `framesOut / writes` shows how well sends coalesce.
   */
  get writes(): number {
    return this.#writer.writes;
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
    return this.#writer.send(message);
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
    return this.#writer.sendMessageFrame(frame);
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
    return this.#writer.flush(options);
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
    return this.#writer.drained(options);
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
    return this.#life.host?.join(this, room) ?? false;
  }

  /**
   * Takes this session out of a room.
   *
   * @param room The room's name.
   * @returns `true` when it was a member.
   */
  leave(room: string): boolean {
    return this.#life.host?.leave(this, room) ?? false;
  }

  /** The rooms this session is in (a snapshot). */
  get rooms(): ReadonlySet<string> {
    return this.#life.host?.roomsOf(this) ?? NO_ROOMS;
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
    const host = this.#life.host;
    if (host === undefined) return 0;
    return host.broadcast(message, { ...options, except: this });
  }

  /**
   * Sends a request and waits for its reply, matched by an id the codec's
   * {@linkcode Codec.correlation} stamps on it (`json()`: a reserved `$id`
   * field on the request, `$re` on the reply; the message's own fields are
   * never changed). The reply goes to this promise, not to `onMessage`; one
   * arriving after the timeout is dropped.
   *
   * @param message The request.
   * @param options Timeout and abort signal.
   * @returns The reply.
   * @throws {TypeError} When the codec has no correlation, or it or the
   * encoder refuses the message (`json()`: one that already has `$id`).
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
    const life = this.#life;
    if (life.state !== "open") {
      return Promise.reject(new SessionClosedError(life.closeReason));
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const requests = this.#parts.inbound.requests();
    const { id, reply } = requests.add(
      options.timeout ?? DEFAULT_REQUEST_TIMEOUT,
      signal,
    );
    let sent: boolean;
    try {
      sent = this.send(correlation.request(message, id));
    } catch (error) {
      // Refused before it left (a reserved field, an unencodable value):
      // the caller gets the throw, and nothing is left waiting.
      requests.forget(id);
      throw error;
    }
    if (!sent) requests.reject(new SessionClosedError(life.closeReason), id);
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
    return this.#life.close(reason, undefined, timeout);
  }

  /**
   * Closes the session, for `await using`.
   *
   * @returns A promise that resolves once the session is closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const NO_ROOMS: ReadonlySet<string> = new Set();

/**
 * What a session's decoder sends through. What it sends (pongs, close
 * frames) are control frames, not messages: a resumable session's log
 * leaves them out (issue 17). Methods, not closures: a quiet session holds
 * its link for life (issue 19 §4).
 */
class SessionLink implements DecoderLink {
  readonly owner: { close(reason?: string): Promise<void> };
  readonly #writer: { sendFrame(frame: Uint8Array): boolean };

  constructor(
    owner: { close(reason?: string): Promise<void> },
    writer: { sendFrame(frame: Uint8Array): boolean },
  ) {
    this.owner = owner;
    this.#writer = writer;
  }

  sendFrame(frame: Uint8Array): boolean {
    return this.#writer.sendFrame(frame);
  }

  close(reason?: string): Promise<void> {
    return this.owner.close(reason);
  }
}
