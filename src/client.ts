// The client side: the same Session and codecs over Deno.connect, with
// optional reconnection and exponential backoff, a bounded buffer for sends
// made while reconnecting, and messages as an async iterable.
import type { Codec, DecoderLink } from "./codec/codec.ts";
import { lines } from "./codec/lines.ts";
import { peerCloseCode, peerCloseReason } from "./websocket/websocket_codec.ts";
import type { PerMessageDeflateOptions } from "./websocket/_deflate.ts";
import type { Session, SessionOptions } from "./session/session.ts";
import type { RequestOptions } from "./session/options.ts";
import { SessionClosedError } from "./errors.ts";
import { CloseReason } from "./close_reason.ts";
import { RefusedError } from "./errors.ts";
import type { Attempt, Transport } from "./transport/transport.ts";
import { closeQuietly, type Connection } from "./transport/connection.ts";
import { transportOf, withTransport } from "./transport/transports.ts";
import { openSession } from "./transport/open_session.ts";
// Recovery (issue 17): opt-in, see src/recovery/.
import {
  ClientRecovery,
  type ClientRecoveryOptions,
} from "./recovery/client_recovery.ts";
import { WEBSOCKET_PARAM } from "./recovery/_preamble.ts";
import { validateConnectOptions } from "./_validate_options.ts";
import {
  DEFAULT_CONNECT_TIMEOUT,
  DEFAULT_RECONNECT_FACTOR,
  DEFAULT_RECONNECT_INITIAL_DELAY,
  DEFAULT_RECONNECT_JITTER,
  DEFAULT_RECONNECT_MAX_ATTEMPTS,
  DEFAULT_RECONNECT_MAX_DELAY,
  DEFAULT_RECONNECT_STABLE_AFTER,
  DEFAULT_SEND_BUFFER_MESSAGES,
} from "./defaults.ts";

/**
 * What `Client.closed` resolves with: a {@linkcode CloseReason} (e.g.
 * `"eof"`, `"reset"`, `"aborted"`, or `"error"` when the first connection
 * failed) or the string given to `close()`.
 *
 * @example Telling the library's reasons from the application's
 * ```ts
 * import type { ClientCloseReason } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const describe = (reason: ClientCloseReason): string =>
 *   reason === "aborted" ? "cancelled" : reason;
 * assert.equal(describe("aborted"), "cancelled");
 * assert.equal(describe("bye"), "bye");
 * ```
 */
export type ClientCloseReason = CloseReason | (string & Record<never, never>);

/**
 * The opt-in buffer of {@linkcode Client.send} while the client is
 * reconnecting: messages wait in memory and leave, in order, once the next
 * connection's `onOpen` has run.
 *
 * @example Keep the latest 100 messages across an outage
 * ```ts
 * import type { SendBufferOptions } from "@x/microsocket";
 *
 * const sendBuffer: SendBufferOptions = { maxMessages: 100, whenFull: "drop-oldest" };
 * ```
 */
export interface SendBufferOptions {
  /**
   * The most messages kept.
   *
   * @default {1024}
   */
  maxMessages?: number;
  /**
   * What a send does when the buffer is full: `"drop-newest"` refuses it
   * (`send()` returns `false`); `"drop-oldest"` makes room by discarding
   * the oldest buffered message.
   *
   * @default {"drop-newest"}
   */
  whenFull?: "drop-newest" | "drop-oldest";
}

/**
 * When and how a {@linkcode Client} reconnects after losing its connection.
 * Delays grow from `initialDelay` by `factor` up to `maxDelay`, each with up
 * to ±`jitter` of random spread so that many clients don't return at once.
 * They start over from `initialDelay` only once a connection has stayed
 * open `stableAfter` milliseconds: a server that accepts and then drops the
 * client at once is retried ever more slowly, not in a tight loop. A
 * refusal ({@linkcode RefusedError}) is final: the client stops.
 *
 * @example Giving up once the server is gone
 * ```ts
 * import { connect, listen, type ReconnectOptions } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * const backoff: ReconnectOptions = { initialDelay: 5, maxDelay: 20, jitter: 0, maxAttempts: 3 };
 * await using client = await connect({
 *   port: server.addr.port,
 *   reconnect: backoff,
 * });
 * await server.shutdown(); // retried after 5, 10 and 20 ms, then given up
 * assert.equal(await client.closed, "eof");
 * assert.equal(client.session, undefined);
 * ```
 */
export interface ReconnectOptions {
  /**
   * The delay before the first retry, in milliseconds.
   *
   * @default {100}
   */
  initialDelay?: number;
  /**
   * The longest delay between retries, in milliseconds.
   *
   * @default {5000}
   */
  maxDelay?: number;
  /**
   * How much each delay grows.
   *
   * @default {2}
   */
  factor?: number;
  /**
   * Random spread of each delay, as a fraction of it.
   *
   * @default {0.2}
   */
  jitter?: number;
  /**
   * Give up after this many failed attempts in a row.
   *
   * @default {Infinity}
   */
  maxAttempts?: number;
  /**
   * How long, in milliseconds, a connection must stay open to count as
   * healthy, so that the next reconnection starts from `initialDelay`
   * again. A connection closed sooner lets the delay go on growing.
   *
   * @default {5000}
   */
  stableAfter?: number;
}

/**
 * Options of {@linkcode connect}: where to connect, the codec, the session
 * handlers (they run for every connection the client makes), and
 * reconnection.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages the client sends.
 *
 * @example JSON, per-connection data and a greeting on open
 * ```ts
 * import { type ConnectOptions, connect, json, listen } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Msg = { from: string };
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: json<Msg>(),
 *   onMessage: (session, message) => void session.send({ from: `hi ${message.from}` }),
 * });
 * const reply = Promise.withResolvers<Msg>();
 * const options: ConnectOptions<{ name: string }, Msg, Msg> = {
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 *   codec: json<Msg>(),
 *   data: () => ({ name: "ada" }),
 *   onOpen: (session) => void session.send({ from: session.data.name }),
 *   onMessage: (_session, message) => reply.resolve(message),
 * };
 * await using client = await connect(options);
 * assert.deepEqual(await reply.promise, { from: "hi ada" });
 * assert.equal(client.session?.data.name, "ada");
 * ```
 */
export type ConnectOptions<Data, In, Out> =
  & (TcpConnectOptions | UnixConnectOptions | WebSocketConnectOptions)
  & ClientOptions<Data, In, Out>;

/**
 * Where a TCP (or TLS) client connects. Keys of the other transports are
 * refused, at compile and at run time.
 *
 * @example A TLS server on this machine
 * ```ts
 * import type { TcpConnectOptions } from "@x/microsocket";
 *
 * const where: TcpConnectOptions = { hostname: "127.0.0.1", port: 8443, tls: true };
 * ```
 */
export interface TcpConnectOptions extends
  Partial<
    Record<
      "path" | "url" | "protocols" | "origin" | "perMessageDeflate",
      never
    >
  > {
  /**
   * TCP, the default.
   *
   * @default {"tcp"}
   */
  transport?: "tcp";
  /**
   * The server's host name or address.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The server's port. */
  port: number;
  /**
   * Connect with TLS. `caCerts` adds trusted PEM certificates (e.g. a
   * self-signed one); `true` uses the system's roots.
   */
  tls?: true | { caCerts?: string[] };
  /**
   * Turn on TCP keep-alive (`SO_KEEPALIVE`), so that the system notices a
   * peer that vanished without closing.
   *
   * @default {false}
   */
  keepAlive?: boolean;
  /**
   * Turn off Nagle's algorithm (TCP_NODELAY), so a small frame leaves at
   * once.
   *
   * @default {true}
   */
  noDelay?: boolean;
}

/**
 * Where a Unix domain socket client connects. Network keys (`hostname`,
 * `port`, `tls`, `keepAlive`, `noDelay`) and WebSocket keys are refused, at
 * compile and at run time.
 *
 * @example A socket file
 * ```ts
 * import type { UnixConnectOptions } from "@x/microsocket";
 *
 * const where: UnixConnectOptions = { transport: "unix", path: "/run/app.sock" };
 * ```
 */
export interface UnixConnectOptions extends
  Partial<
    Record<
      | "hostname"
      | "port"
      | "url"
      | "protocols"
      | "origin"
      | "perMessageDeflate"
      | "tls"
      | "keepAlive"
      | "noDelay",
      never
    >
  > {
  /** A Unix domain socket. */
  transport: "unix";
  /** The socket file's path. */
  path: string;
}

/**
 * Where a WebSocket client connects: RFC 6455 framing over TCP, or TLS for
 * `wss:` (see {@linkcode webSocketCodec} for how the codec's messages map
 * onto WebSocket messages). The URL says where, so `hostname` and `port`
 * are refused, at compile and at run time.
 *
 * @example A WebSocket endpoint
 * ```ts
 * import type { WebSocketConnectOptions } from "@x/microsocket";
 *
 * const where: WebSocketConnectOptions = {
 *   transport: "websocket",
 *   url: "ws://127.0.0.1:8080/ws",
 *   protocols: ["chat"],
 * };
 * ```
 */
export interface WebSocketConnectOptions
  extends Partial<Record<"hostname" | "port" | "path", never>> {
  /**
   * RFC 6455 WebSocket. A `url` alone implies it, so it may be left out.
   *
   * @default {"websocket"}
   */
  transport?: "websocket";
  /** The server's URL, `ws://host:port/path` or `wss:`. */
  url: string | URL;
  /** Subprotocols to offer, in order of preference. */
  protocols?: readonly string[];
  /** The `Origin` header to send. */
  origin?: string;
  /**
   * Offer permessage-deflate compression (RFC 7692): `true`, or options
   * (see {@linkcode PerMessageDeflateOptions}). The server may decline;
   * the connection is then uncompressed.
   *
   * @default {false}
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * TLS options for `wss:` (or TLS on a `ws:` URL): `caCerts` adds trusted
   * PEM certificates; `true` uses the system's roots.
   */
  tls?: true | { caCerts?: string[] };
  /**
   * Turn on TCP keep-alive (`SO_KEEPALIVE`).
   *
   * @default {false}
   */
  keepAlive?: boolean;
  /**
   * Turn off Nagle's algorithm (TCP_NODELAY), so a small frame leaves at
   * once.
   *
   * @default {true}
   */
  noDelay?: boolean;
}

/**
 * The transport-independent part of {@linkcode ConnectOptions}: the codec,
 * the session handlers, reconnection.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages the client sends.
 *
 * @example One policy for clients of several servers
 * ```ts
 * import type { ClientOptions } from "@x/microsocket";
 *
 * const policy: ClientOptions<unknown, string, string> = {
 *   reconnect: { initialDelay: 200, maxAttempts: 10 },
 *   connectTimeout: 2000,
 * };
 * ```
 */
export interface ClientOptions<Data, In, Out>
  extends Omit<SessionOptions<Data, In, Out>, "codec" | "noDelay"> {
  /**
   * The framing, as on the server.
   *
   * @default {lines()}
   */
  codec?: Codec<In, Out>;
  /** Creates each connection's initial `data`, before `onOpen`. */
  data?: (session: Session<unknown, In, Out>) => Data;
  /**
   * Reconnect when the connection is lost (`true` for the defaults). When
   * off, the client is closed for good with its first connection.
   *
   * @default {false}
   */
  reconnect?: boolean | ReconnectOptions;
  /** Aborting it closes the client and stops reconnecting. */
  signal?: AbortSignal;
  /**
   * The largest message accepted from the server, in bytes, on every transport:
   * a bigger one closes the session (reason `"frame too large"`) with a
   * {@linkcode MessageTooBigError} naming the option in force, before its
   * bytes are stored. The codec's own limit (e.g. `lines({ maxLineBytes })`)
   * applies too, and the smaller one is in force. Over WebSocket it bounds
   * each WebSocket message (close code 1009) whatever the codec; over
   * TCP, TLS and Unix sockets only the codec can tell where a message
   * ends, so it needs a codec that takes a limit (the built-in ones do; a
   * custom codec with it is a TypeError, and bounds its messages itself).
   * Unset, the default applies over WebSocket, and on the other transports
   * the codec's own limit alone (64 KiB for `lines()`, 1 MiB for the
   * others, unless configured).
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * How long one connection attempt may take, TLS handshake included, in
   * milliseconds; past it the attempt fails with `Deno.errors.TimedOut`
   * (and is retried when `reconnect` is on). `0` waits as long as the
   * system does.
   *
   * @default {10000}
   */
  connectTimeout?: number;
  /**
   * Buffer sends made while reconnecting instead of refusing them (`true`
   * for the defaults). Needs `reconnect` (refused without it). Off, `send()` returns `false`
   * while disconnected.
   *
   * @default {false}
   */
  sendBuffer?: boolean | SendBufferOptions;
  /**
   * Recognises the server's refusal among its messages (e.g. the `notice`
   * of a {@linkcode Refusal}, the only way to say why on TCP): return the
   * reason for a message that refuses the client, `undefined` for any
   * other. The message is still delivered; then the client closes, stops
   * reconnecting and reports a {@linkcode RefusedError}. WebSocket
   * refusals (close code 4401 or 4403, or 1008 with reason
   * `"unauthorized"`) are recognised without it.
   */
  refusalOf?: (message: In) => string | undefined;
  /**
   * Keep the session across a dropped connection (every transport; the
   * server needs its `recovery` option): the client redials at once, then
   * with backoff and jitter, within the server's window, and the session
   * goes on: same id, rooms and data, every message in both directions
   * delivered once and in order. When it can't (window passed, too much
   * missed), the session closes with reason `"recovery failed"` and
   * `reconnect`, if on, opens a fresh one: {@linkcode Client.recovered} is
   * then `false` (reload your state in `onOpen`). `true`, or the bounds of
   * the client's own log of what it sent.
   *
   * @default {false}
   */
  recovery?: boolean | ClientRecoveryOptions;
}

/**
 * A connection to a server that can outlive its sessions: with `reconnect`,
 * a lost connection is replaced by a new session after a backoff.
 * Create one with {@linkcode connect}.
 *
 * Messages from every session are also an async iterable: `for await
 * (const message of client)` sees the messages that arrive while it
 * iterates (after the `onMessage` handler), and ends when the client is
 * closed for good: quietly when you closed it (`close()`, the `signal`) or
 * the server ended the connection (`"eof"`, `"server shutdown"`), by
 * throwing a {@linkcode RefusedError} when the server refused the client,
 * and by throwing a {@linkcode SessionClosedError} carrying the reason when
 * a failure or a policy ended it (`"reset"`, `"slow consumer"`,
 * `"idle timeout"`, …), after the messages that arrived before. A slow loop
 * slows the reading of the connection, not the memory: at most 256 messages
 * wait for it.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages the client sends.
 *
 * @example Talking to a server
 * ```ts
 * import { connect, listen, lines } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: lines(),
 *   onMessage: (session, line) => void session.send(`echo ${line}`),
 * });
 * const reply = Promise.withResolvers<string>();
 * await using client = await connect({
 *   port: server.addr.port,
 *   codec: lines(),
 *   onMessage: (_session, line) => reply.resolve(line),
 * });
 * client.send("hi");
 * assert.equal(await reply.promise, "echo hi");
 * ```
 *
 * @example Messages as an async iterable
 * ```ts
 * import { connect, listen } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onOpen: (session) => {
 *     session.send("one");
 *     session.send("two");
 *     void session.close("done");
 *   },
 * });
 * const client = await connect({ port: server.addr.port });
 * const got: string[] = [];
 * for await (const line of client) got.push(line); // ends with the client
 * assert.deepEqual(got, ["one", "two"]);
 * assert.equal(await client.closed, "eof");
 * ```
 */
export class Client<Data = unknown, In = string, Out = In>
  implements AsyncDisposable, AsyncIterable<In> {
  /** Resolves with the last close reason once the client is closed for good. */
  readonly closed: Promise<ClientCloseReason>;

  readonly #options: ConnectOptions<Data, In, Out>;
  readonly #sessionOptions: SessionOptions<Data, In, Out>;
  readonly #reconnect: Required<ReconnectOptions> | undefined;
  readonly #resolveClosed: (reason: ClientCloseReason) => void;
  readonly #abortListener: () => void;
  readonly #buffer: Required<SendBufferOptions> | undefined;
  readonly #pending: Out[] = [];
  readonly #readers = new Set<MessageQueue<In>>();
  #session: Session<Data, In, Out> | undefined;
  #closing: ClientCloseReason | undefined;
  #ended = false;
  // Why the client ended, for loops to throw, when a failure ended it.
  #failure: SessionClosedError | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #started: Promise<void> | undefined;
  // deno-lint-ignore no-explicit-any
  readonly #transport: Transport<any, ConnectOptions<Data, In, Out>>;
  // The next reconnection's delay, and when the current session opened:
  // the delay starts over only after a connection that stayed up.
  #delay = 0;
  #openedAt = 0;
  #refused: RefusedError | undefined;
  readonly #recovery: ClientRecovery | undefined;
  #recovered = false;
  #resumes = 0;

  /**
   * Prepares a client; {@linkcode connect} creates and starts one.
   *
   * @param options Where to connect, codec, handlers, reconnection.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(options: ConnectOptions<Data, In, Out>) {
    options = withTransport(options);
    validateConnectOptions(options);
    // Recovery over WebSocket is asked for in the URL (see _preamble.ts).
    const recovery = options.recovery;
    if (recovery && options.transport === "websocket") {
      const url = new URL(String(options.url));
      url.searchParams.set(WEBSOCKET_PARAM, "1");
      options = { ...options, url };
    }
    this.#options = options;
    this.#transport = transportOf(options);
    const codec = this.#transport.codec(
      options.codec ?? (lines() as unknown as Codec<In, Out>),
      "client",
      options.maxMessageBytes,
      "connect()",
    );
    const onOpen = options.onOpen;
    const onMessage = options.onMessage;
    const refusalOf = options.refusalOf;
    this.#sessionOptions = {
      ...options,
      codec,
      // Buffered sends leave after the new connection's own greeting.
      onOpen: async (session) => {
        if (onOpen !== undefined) await onOpen(session);
        this.#sendPending(session);
      },
      onMessage: (session, message) => {
        const result = onMessage?.(session, message);
        if (refusalOf !== undefined) {
          const reason = refusalOf(message);
          if (reason !== undefined) {
            this.#refused ??= new RefusedError(reason);
            void session.close(reason);
          }
        }
        if (this.#readers.size === 0) return result;
        const waits = this.#deliver(message);
        if (waits === undefined) return result;
        return Promise.all([result, waits]).then(ignore);
      },
    };
    const reconnect = options.reconnect;
    this.#reconnect = reconnect === undefined || reconnect === false
      ? undefined
      : {
        initialDelay: DEFAULT_RECONNECT_INITIAL_DELAY,
        maxDelay: DEFAULT_RECONNECT_MAX_DELAY,
        factor: DEFAULT_RECONNECT_FACTOR,
        jitter: DEFAULT_RECONNECT_JITTER,
        maxAttempts: DEFAULT_RECONNECT_MAX_ATTEMPTS,
        stableAfter: DEFAULT_RECONNECT_STABLE_AFTER,
        ...(reconnect === true ? {} : reconnect),
      };
    this.#delay = this.#reconnect?.initialDelay ?? 0;
    const buffer = options.sendBuffer;
    if (buffer !== undefined && buffer !== false) {
      if (this.#reconnect === undefined) {
        throw new TypeError("sendBuffer needs reconnect");
      }
      this.#buffer = {
        maxMessages: DEFAULT_SEND_BUFFER_MESSAGES,
        whenFull: "drop-newest",
        ...(buffer === true ? {} : buffer),
      };
    }
    const { promise, resolve } = Promise.withResolvers<ClientCloseReason>();
    this.closed = promise;
    this.#resolveClosed = resolve;
    this.#abortListener = () => void this.close(CloseReason.Aborted);
    this.#recovery = recovery === undefined || recovery === false
      ? undefined
      : new ClientRecovery(() => this.#dialOnce(), {
        timeout: options.connectTimeout || DEFAULT_CONNECT_TIMEOUT,
        webSocket: options.transport === "websocket",
        limits: recovery,
        delays: {
          initial: Math.min(this.#reconnect?.initialDelay ?? 100, 100),
          max: this.#reconnect?.maxDelay ?? 2000,
        },
      }, {
        opened: (recovered) => {
          this.#recovered = recovered;
          if (recovered) this.#resumes++;
        },
      });
  }

  /**
   * With `recovery`: whether the latest connection continued the session
   * (`false` for the first one, and for a fresh session after a gap that
   * could not be filled: the app should reload its state then).
   *
   * @example
   * ```ts ignore
   * import { connect } from "@x/microsocket";
   *
   * const client = await connect({ hostname: "127.0.0.1", port: 7000, recovery: true });
   * console.log(client.recovered); // false: the first connection
   * ```
   */
  get recovered(): boolean {
    return this.#recovered;
  }

  /** With `recovery`: how many times the session resumed. */
  get resumes(): number {
    return this.#resumes;
  }

  /** The current session, while connected. */
  get session(): Session<Data, In, Out> | undefined {
    return this.#session?.state === "open" ? this.#session : undefined;
  }

  /**
   * Why the server refused the client, once it has: a WebSocket close with
   * code 4401 or 4403 (or 1008 with reason `"unauthorized"`), or a message
   * the `refusalOf` option recognised. A refused client does not
   * reconnect; `closed` resolves with the refusal's reason.
   */
  get refused(): RefusedError | undefined {
    return this.#refused;
  }

  /** Messages waiting in the send buffer for the next connection. */
  get buffered(): number {
    return this.#pending.length;
  }

  /**
   * Sends through the current session. While reconnecting, with
   * `sendBuffer`, the message waits for the next connection instead.
   *
   * @param message The message.
   * @returns `true` when queued (or buffered); `false` while disconnected
   * without a buffer (or with a full one, under `"drop-newest"`), after the
   * client closed, or when the session refused it.
   * @throws {TypeError} When the codec cannot encode the message.
   */
  send(message: Out): boolean {
    const session = this.session;
    if (session !== undefined && this.#pending.length === 0) {
      return session.send(message);
    }
    const buffer = this.#buffer;
    if (buffer === undefined || this.#closing !== undefined || this.#ended) {
      return false;
    }
    // Refuse what could never be sent, now rather than on reconnection.
    this.#sessionOptions.codec.encode(message);
    if (this.#pending.length >= buffer.maxMessages) {
      if (buffer.whenFull === "drop-newest") return false;
      this.#pending.shift();
    }
    this.#pending.push(message);
    return true;
  }

  /**
   * Sends a request through the current session and waits for its reply,
   * matched by the codec's {@linkcode Codec.correlation} (`json()`: a
   * reserved `$id` on the request, `$re` on the reply; the message's own
   * fields are left alone). The reply is typed as the codec's `In`, and goes
   * to this promise, not to `onMessage` or the async iterator. See
   * {@linkcode Session.request}.
   *
   * Requests are not buffered: while disconnected (reconnecting, or closed)
   * it rejects at once; a session lost while waiting rejects it too.
   *
   * @param message The request.
   * @param options Timeout (default 10 s) and abort signal.
   * @returns The reply.
   * @throws {TypeError} When the codec has no correlation, or refuses the
   * message (`json()`: one that already has `$id`).
   * @throws {RequestTimeoutError} (rejects) When no reply came in time.
   * @throws {SessionClosedError} (rejects) When not connected, or the
   * session closed first.
   *
   * @example Asking a Router for a user
   * ```ts
   * import { connect, json, listen, Router, type Session } from "@x/microsocket";
   * import assert from "node:assert/strict";
   *
   * type Ask = { type: "getUser"; id: number };
   * type User = { type: "user"; id: number; name: string };
   * const router = new Router<Ask, User, Session<unknown, Ask, User>>()
   *   .on("getUser", (session, ask) =>
   *     void session.reply(ask, { type: "user", id: ask.id, name: "ada" }));
   * await using server = listen<unknown, Ask, User>({
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   codec: json<Ask, User>(),
   *   onMessage: router.handler,
   * });
   * await using client = await connect<unknown, User, Ask>({
   *   port: server.addr.port,
   *   codec: json<User, Ask>(),
   * });
   * const user = await client.request({ type: "getUser", id: 17 });
   * assert.equal(user.id, 17);
   * assert.equal(user.name, "ada");
   * ```
   */
  request(message: Out, options?: RequestOptions): Promise<In> {
    const codec = this.#sessionOptions.codec;
    if (codec.correlation === undefined) {
      throw new TypeError(
        `The ${codec.name} codec has no correlation for requests`,
      );
    }
    const session = this.session;
    if (session === undefined) {
      return Promise.reject(
        new SessionClosedError(this.#closing ?? "not connected"),
      );
    }
    return session.request(message, options);
  }

  /**
   * Closes the current session and stops reconnecting. Buffered sends are
   * dropped.
   *
   * @param reason The close reason.
   * @returns A promise that resolves once everything is released.
   */
  async close(reason: ClientCloseReason = CloseReason.Closed): Promise<void> {
    this.#closing ??= reason;
    this.#pending.length = 0;
    if (this.#started === undefined && !this.#ended) this.#finish(reason);
    this.#wake?.();
    await this.#session?.close(reason);
    await this.#started?.catch(ignore);
    await this.#loop;
  }

  /**
   * Closes the client, for `await using`.
   *
   * @returns A promise that resolves once everything is released.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Iterates over the messages of every session until the client is closed
   * for good; see the class documentation. Breaking out of the loop stops
   * this iteration only.
   *
   * @returns An async iterator of messages.
   */
  [Symbol.asyncIterator](): AsyncIterator<In> {
    const queue = new MessageQueue<In>(this.#readers);
    if (this.#ended) queue.end(this.#refused ?? this.#failure);
    else this.#readers.add(queue);
    return queue;
  }

  /**
   * Makes the first connection, then keeps reconnecting in the background
   * when so configured. {@linkcode connect} calls it; calling it again
   * returns the same promise (it never opens a second connection).
   *
   * @returns A promise that resolves once the first connection is open.
   * @throws {Deno.errors.ConnectionRefused} (and other connect errors) when
   * the first connection fails and `reconnect` is off, or its attempts are
   * used up.
   */
  start(): Promise<void> {
    return this.#started ??= this.#start();
  }

  async #start(): Promise<void> {
    const signal = this.#options.signal;
    signal?.throwIfAborted();
    signal?.addEventListener("abort", this.#abortListener, { once: true });
    try {
      await this.#attempt(true);
    } catch (error) {
      this.#finish(this.#closing ?? CloseReason.Error);
      throw error;
    }
    this.#loop = this.#keepConnected();
  }

  async #keepConnected(): Promise<void> {
    let reason: ClientCloseReason = CloseReason.Closed;
    while (this.#session !== undefined) {
      const session = this.#session;
      reason = await session.closed;
      this.#session = undefined;
      this.#refused ??= refusalIn(session);
      if (this.#refused !== undefined) {
        reason = this.#refused.reason;
        break;
      }
      const policy = this.#reconnect;
      if (policy === undefined || this.#closing !== undefined) break;
      if (performance.now() - this.#openedAt >= policy.stableAfter) {
        this.#delay = policy.initialDelay;
      }
      try {
        await this.#attempt(false);
      } catch {
        break; // attempts used up, or closed while waiting
      }
    }
    this.#finish(this.#closing ?? reason);
  }

  // Connects, retrying with backoff when reconnection is on. `first` tries
  // at once; a reconnection waits the current delay first.
  async #attempt(first: boolean): Promise<void> {
    const policy = this.#reconnect;
    for (let attempt = 1;; attempt++) {
      if (!first || attempt > 1) {
        if (policy === undefined) throw new Error("Reconnection is off");
        await this.#sleep(spread(this.#delay, policy.jitter));
        this.#delay = Math.min(this.#delay * policy.factor, policy.maxDelay);
      }
      if (this.#closing !== undefined) throw new Error("Client closed");
      try {
        const connection = await this.#dial();
        if (this.#closing !== undefined) {
          connection.conn.close();
          throw new Error("Client closed");
        }
        await this.#open(connection);
        return;
      } catch (error) {
        if (this.#closing !== undefined) throw error;
        if (policy === undefined || attempt >= policy.maxAttempts) {
          throw error;
        }
      }
    }
  }

  // One connection attempt within connectTimeout: TCP (or Unix), then the
  // TLS handshake, so that an untrusted certificate fails the attempt
  // instead of a session that seemed open.
  async #dial(): Promise<Connection> {
    const connection = await this.#dialOnce();
    return this.#recovery === undefined
      ? connection
      : await this.#recovery.open(connection);
  }

  async #dialOnce(): Promise<Connection> {
    const timeout = this.#options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    const attempt: Attempt = { conn: undefined, abandoned: false };
    const connecting = this.#transport.dial(this.#options, attempt);
    if (timeout === 0) return connecting;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Closing the TCP connection ends a handshake that hangs; one that
        // completes after all is closed as soon as it does.
        attempt.abandoned = true;
        if (attempt.conn !== undefined) closeQuietly(attempt.conn);
        connecting.then((connection) => closeQuietly(connection.conn), ignore);
        reject(
          new Deno.errors.TimedOut(`Connecting took more than ${timeout} ms`),
        );
      }, timeout);
    });
    try {
      return await Promise.race([connecting, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  // Wraps a connection in a session. When `data()` throws, the session is
  // closed at once (before onOpen), onError hears of it, and the attempt
  // fails with the error.
  async #open(connection: Connection): Promise<void> {
    // A data() that throws is reported to onError (as the server reports
    // it, since a reconnection retries, and fails, quietly otherwise).
    const opened = openSession(connection, this.#sessionOptions, {
      data: this.#options.data,
    });
    const session = opened.session;
    if (opened.dataFailed) {
      await session.closed;
      throw opened.dataError;
    }
    this.#session = session;
    this.#openedAt = performance.now();
  }

  #sendPending(session: Session<Data, In, Out>): void {
    const pending = this.#pending;
    let sent = 0;
    while (sent < pending.length && session.state === "open") {
      if (!session.send(pending[sent]!)) break;
      sent++;
    }
    pending.splice(0, sent);
  }

  // Hands a message to every iterating loop; a promise when one of them is
  // full, so that reading waits for it.
  #deliver(message: In): Promise<unknown> | undefined {
    let waits: Promise<void>[] | undefined;
    for (const reader of this.#readers) {
      const wait = reader.push(message);
      if (wait !== undefined) (waits ??= []).push(wait);
    }
    return waits && Promise.all(waits);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#wake = undefined;
        resolve();
      };
      this.#wake = wake;
      this.#timer = setTimeout(wake, ms);
    });
  }

  #finish(reason: ClientCloseReason): void {
    this.#ended = true;
    this.#pending.length = 0;
    this.#options.signal?.removeEventListener("abort", this.#abortListener);
    // A loop must not take a failure for the end of the stream.
    const error = this.#refused ??
      (this.#closing === undefined && FAILURES.has(reason)
        ? new SessionClosedError(reason)
        : undefined);
    this.#failure = error instanceof SessionClosedError ? error : undefined;
    for (const reader of this.#readers) reader.end(error);
    this.#readers.clear();
    this.#resolveClosed(reason);
  }
}

// The connection of an attempt in progress, for connectTimeout to close.
// The close reasons that end a `for await` loop with an error: failures and
// policies, not the ends someone chose.
const FAILURES: ReadonlySet<string> = new Set<string>([
  CloseReason.Reset,
  CloseReason.Error,
  CloseReason.DecodeError,
  CloseReason.FrameTooLarge,
  CloseReason.SlowConsumer,
  CloseReason.Flood,
  CloseReason.Unauthorized,
  CloseReason.AuthTimeout,
  CloseReason.IdleTimeout,
  CloseReason.HeartbeatTimeout,
  CloseReason.FrameTimeout,
]);

/** How many messages an iterating loop may fall behind before reading waits. */
const ITERATOR_HIGH_WATER = 256;

// The messages waiting for one `for await` loop over a client.
class MessageQueue<In> implements AsyncIterator<In> {
  readonly #owner: Set<MessageQueue<In>>;
  #items: In[] = [];
  #head = 0;
  #ended = false;
  // Why the client ended, when a loop should hear of it (once).
  #error: RefusedError | SessionClosedError | undefined;
  // Pending next() calls, oldest first (for-await makes one at a time).
  #waiting: PromiseWithResolvers<IteratorResult<In>>[] = [];
  #roomWaiters: (() => void)[] = [];

  constructor(owner: Set<MessageQueue<In>>) {
    this.#owner = owner;
  }

  push(message: In): Promise<void> | undefined {
    const waiting = this.#waiting.shift();
    if (waiting !== undefined) {
      waiting.resolve({ done: false, value: message });
      return undefined;
    }
    this.#items.push(message);
    if (this.#items.length - this.#head < ITERATOR_HIGH_WATER) return undefined;
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  end(error?: RefusedError | SessionClosedError): void {
    this.#ended = true;
    this.#error = error;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const { resolve, reject } of waiting) {
      const error = this.#takeError();
      if (error === undefined) resolve({ done: true, value: undefined });
      else reject(error);
    }
  }

  next(): Promise<IteratorResult<In>> {
    if (this.#head < this.#items.length) {
      const value = this.#items[this.#head]!;
      this.#items[this.#head++] = undefined as In;
      if (this.#head === this.#items.length) {
        this.#items = [];
        this.#head = 0;
      }
      this.#release();
      return Promise.resolve({ done: false, value });
    }
    if (this.#ended) {
      const error = this.#takeError();
      return error === undefined
        ? Promise.resolve({ done: true, value: undefined })
        : Promise.reject(error);
    }
    const waiting = Promise.withResolvers<IteratorResult<In>>();
    this.#waiting.push(waiting);
    return waiting.promise;
  }

  #takeError(): RefusedError | SessionClosedError | undefined {
    const error = this.#error;
    this.#error = undefined;
    return error;
  }

  return(): Promise<IteratorResult<In>> {
    this.#owner.delete(this);
    this.#items = [];
    this.#head = 0;
    this.end();
    this.#error = undefined;
    this.#release();
    return Promise.resolve({ done: true, value: undefined });
  }

  #release(): void {
    if (this.#items.length - this.#head >= ITERATOR_HIGH_WATER) return;
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Connects to a server with the given codec and handlers.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages (from the codec).
 * @typeParam Out The type of messages the client sends (from the codec).
 * @param options Where to connect, codec, handlers and reconnection; see
 * {@linkcode ConnectOptions}.
 * @returns The client, once its first connection is open.
 * @throws {Deno.errors.ConnectionRefused} (and other connect errors) when the
 * first connection fails and `reconnect` is off or gives up.
 *
 * @example Reconnecting with backoff
 * ```ts
 * import { connect, listen } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * const opened: number[] = [];
 * await using client = await connect({
 *   port: server.addr.port,
 *   reconnect: { initialDelay: 10 },
 *   onOpen: (session) => void opened.push(session.id),
 * });
 * // The server drops us; the client comes back on its own.
 * for (const session of server.sessions) await session.close("kicked");
 * while (opened.length < 2) await new Promise((r) => setTimeout(r, 10));
 * assert.ok(client.session !== undefined);
 * ```
 */
export async function connect<Data = unknown, In = string, Out = In>(
  options: ConnectOptions<Data, In, Out>,
): Promise<Client<Data, In, Out>> {
  const client = new Client(options);
  await client.start();
  return client;
}

function ignore(): void {}

// A WebSocket close that refuses the client: 4401/4403 (HTTP 401/403 in
// the private range, sent by Refusal) or a 1008 that says "unauthorized".
function refusalIn(
  session: DecoderLink,
): RefusedError | undefined {
  const code = peerCloseCode(session);
  if (code === undefined) return undefined;
  const reason = peerCloseReason(session) ?? "";
  if (
    code === 4401 || code === 4403 ||
    (code === 1008 && reason === CloseReason.Unauthorized)
  ) {
    return new RefusedError(
      reason === "" ? CloseReason.Unauthorized : reason,
      code,
    );
  }
  return undefined;
}

function spread(delay: number, jitter: number): number {
  return Math.max(0, delay * (1 + jitter * (Math.random() * 2 - 1)));
}
