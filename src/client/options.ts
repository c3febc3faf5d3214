// The public options of connect(): where to connect, per transport (TCP,
// Unix, WebSocket), and the transport-independent part (codec, handlers,
// reconnection, send buffer).
import type { Codec } from "../codec/codec.ts";
import type { PerMessageDeflateOptions } from "../websocket/_deflate.ts";
import type { Session, SessionOptions } from "../session/session.ts";
import type { CloseReason } from "../close_reason.ts";
import type { ClientRecoveryOptions } from "../recovery/client_recovery.ts";

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
   * `reconnect`, if on, opens a fresh one: `Client.recovered` is
   * then `false` (reload your state in `onOpen`). `true`, or the bounds of
   * the client's own log of what it sent.
   *
   * @default {false}
   */
  recovery?: boolean | ClientRecoveryOptions;
}
