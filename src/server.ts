// The accept loop and the server's lifecycle: limits, vetoes, stats and a
// graceful shutdown that delivers what was already queued.
import type { Codec } from "./codec/codec.ts";
import { lines } from "./codec/lines.ts";
import type { Session, SessionOptions } from "./session/session.ts";
import { SessionManager } from "./session_manager.ts";
import { CloseReason } from "./close_reason.ts";
import {
  addMeters,
  continueSession,
  observe,
  SessionMeters,
  type SessionObserver,
} from "./session/_internals.ts";
import { serverMeter, type ServerMeterSource } from "./_meters.ts";
import { validateListenOptions } from "./_validate_options.ts";
import { ErrorLog } from "./_error_log.ts";
import type { ClusterBridge } from "./cluster_bridge.ts";
import { sendFrames } from "./_fan_out.ts";
import type { WebSocketListenOptions } from "./websocket/websocket_listen.ts";
import type { Listener } from "./transport/transport.ts";
import { transportOf } from "./transport/transports.ts";
import {
  closeQuietly,
  type Connection,
  peerIp,
} from "./transport/connection.ts";
import { openSession } from "./transport/open_session.ts";
import type { WebSocketServerStats } from "./transport/stats.ts";
import { DEFAULT_SHUTDOWN_TIMEOUT } from "./defaults.ts";
// Recovery (issue 17): opt-in, see src/recovery/.
import {
  type RecoveryOpened,
  type RecoveryOptions,
  type ServerRecovery,
  serverRecovery,
  shareClusterRecovery,
} from "./recovery/server_recovery.ts";

/**
 * Where a TCP (or TLS) server listens.
 *
 * @example Loopback only, on a port the system picks
 * ```ts
 * import { listen, type TcpListenOptions } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const where: TcpListenOptions = { hostname: "127.0.0.1", port: 0 };
 * await using server = listen({ ...where });
 * assert.notEqual(server.addr.port, 0);
 * ```
 */
export interface TcpListenOptions extends
  // Keys of the other transports, refused (also at run time).

  Partial<
    Record<
      | "path"
      | "origins"
      | "protocols"
      | "handshakeTimeout"
      | "maxHeadBytes"
      | "maxHeaders"
      | "perMessageDeflate"
      | "serve",
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
   * The address to bind. By default loopback only, so a server is not
   * reachable from other machines by accident (as Redis's protected mode
   * and dev servers do); give `"0.0.0.0"` (or `"::"`) to serve the network,
   * e.g. in a container. It matches `connect()`'s default.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * The port; `0` picks a free one (read it back from `server.addr`).
   *
   * @default {0}
   */
  port?: number;
  /**
   * How many connections the kernel may complete and hold before `accept()`
   * takes them (the `listen(2)` backlog; Linux caps it at
   * `net.core.somaxconn`). With Deno's default of 511, a burst of thousands
   * of connections overflows it, and with SYN cookies on (the Linux
   * default) a client whose handshake completed during the overflow and
   * that waits for the server to speak first hangs, unseen by the server.
   *
   * @default {4096}
   */
  backlog?: number;
  /**
   * Let several processes listen on the same address and port, the kernel
   * spreading connections among them (`SO_REUSEPORT`, Linux). Deno marks
   * it unstable: run with `--unstable-net` (or `"unstable": ["net"]` in
   * deno.json), otherwise `listen()` throws a `TypeError` saying so. A
   * `reusePort` listener can't share a port with one listening without it.
   *
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Serve TLS with this PEM certificate chain and private key
   * (`Deno.listenTls`). The session API is the same.
   */
  tls?: { cert: string; key: string };
  /**
   * The most sessions open at once from one IP address; further
   * connections are closed at once and counted in
   * `stats().rejected.maxConnectionsPerIp`.
   *
   * @default {Infinity}
   */
  maxConnectionsPerIp?: number;
  /**
   * Turn off Nagle's algorithm (TCP_NODELAY), so a small frame leaves at
   * once instead of waiting for the peer's delayed ACK (up to 40 ms on
   * Linux). Coalescing already keeps the number of packets down.
   *
   * @default {true}
   */
  noDelay?: boolean;
}

/**
 * Where a Unix domain socket server listens.
 *
 * @example A socket file in a temporary folder
 * ```ts
 * import { listen, type UnixListenOptions } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const where: UnixListenOptions = { transport: "unix", path: `${dir}/app.sock` };
 * {
 *   await using server = listen({ ...where });
 *   assert.equal(server.addr.transport, "unix");
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface UnixListenOptions extends
  // Keys of the network transports, refused (also at run time): a Unix
  // socket has no address, port, TLS, Nagle or peer IP.

  Partial<
    Record<
      | "origins"
      | "protocols"
      | "handshakeTimeout"
      | "maxHeadBytes"
      | "maxHeaders"
      | "perMessageDeflate"
      | "serve"
      | "hostname"
      | "port"
      | "backlog"
      | "reusePort"
      | "tls"
      | "noDelay"
      | "maxConnectionsPerIp",
      never
    >
  > {
  /** A Unix domain socket. */
  transport: "unix";
  /** The socket file's path. */
  path: string;
}

/**
 * Everything `listen()` takes: where to listen, the codec, limits, and the
 * handlers. The handlers receive the session first, then what happened.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example Options built apart from the call
 * ```ts
 * import { lengthPrefixed, listen, type ListenOptions } from "@x/microsocket";
 *
 * const options: ListenOptions<unknown, Uint8Array, Uint8Array> = {
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: lengthPrefixed({ maxFrameBytes: 64 * 1024 }),
 *   maxConnections: 1000,
 *   onMessage: (session, frame) => void session.send(frame),
 * };
 * await using server = listen(options);
 * ```
 */
export type ListenOptions<Data, In, Out> =
  & (TcpListenOptions | UnixListenOptions | WebSocketListenOptions)
  & ServerOptions<Data, In, Out>;

/**
 * The transport-independent part of {@linkcode ListenOptions}.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example One policy for several listeners
 * ```ts
 * import { lines, listen, type ServerOptions } from "@x/microsocket";
 *
 * const policy: ServerOptions<unknown, string, string> = {
 *   codec: lines({ maxLineBytes: 4096 }),
 *   maxConnections: 1000,
 *   idleTimeout: 60_000,
 *   onAccept: (conn) => conn.remoteAddr.transport === "tcp",
 * };
 * await using v4 = listen({ hostname: "127.0.0.1", port: 0, ...policy });
 * ```
 */
export interface ServerOptions<Data, In, Out>
  extends Omit<SessionOptions<Data, In, Out>, "codec" | "onError" | "noDelay"> {
  /**
   * The framing of every connection.
   *
   * @default {lines()}
   */
  codec?: Codec<In, Out>;
  /** Creates each session's initial `data`, before `onOpen`. */
  data?: (session: Session<unknown, In, Out>) => Data;
  /**
   * Decides whether to take a new connection, before any session exists.
   * Returning `false` closes the connection at once; anything other than
   * a boolean or a promise of one is reported to `onError` and counts as
   * `false`.
   */
  onAccept?: (conn: Deno.Conn) => boolean | Promise<boolean>;
  /**
   * Receives what any handler threw or rejected, decode errors (with the
   * session still open, so a last reply can be sent), and accept failures
   * (without a session). The server keeps running in every case.
   *
   * Without it, errors are logged with `console.error`, rate-limited (10
   * lines per 10 s, then a count of what was left out); errors a peer
   * causes (a {@linkcode DecodeError}, an unknown route) are logged once
   * per session, in one line.
   */
  onError?: (error: unknown, session?: Session<Data, In, Out>) => void;
  /**
   * Keeps a session across a dropped connection for clients that ask
   * (`connect({ recovery: true })`), on every transport. See the README's
   * Recovery section.
   */
  recovery?: RecoveryOptions<Data, In, Out>;
  /**
   * The most sessions open at once; further connections are closed at once
   * and counted in `stats().rejected.maxConnections`.
   *
   * @default {Infinity}
   */
  maxConnections?: number;
  /** Aborting it shuts the server down, as `shutdown()` does. */
  signal?: AbortSignal;
  /**
   * The largest message accepted from a peer, in bytes, on every transport:
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
   * Joins a cluster: session ids unique across it, room broadcasts and
   * send-by-id reaching every node. Build one with `connectCluster()` from
   * `@x/microsocket/cluster` (NATS or Redis); see {@linkcode ClusterBridge}.
   * It serves one server, and stays open when the server shuts down (close
   * it after).
   *
   * Servers sharing this server's `sessions` are in the cluster too: their
   * session ids come from it, and frames from other nodes reach their
   * members re-encoded in their codec (decoded with this server's codec,
   * so give the cluster to the server whose codec reads what it writes:
   * `lines`, `json`, `lengthPrefixed`, not a WebSocket one).
   */
  cluster?: ClusterBridge;
  /**
   * The manager the sessions join, to share one between servers (say a TCP
   * and a WebSocket one): a broadcast or a room then reaches the sessions
   * of both. Each server still counts, limits and shuts down its own.
   *
   * @default {new SessionManager()}
   */
  sessions?: SessionManager<Data, In, Out>;
}

/**
 * Options of {@linkcode Server.shutdown}.
 *
 * @example Two seconds to deliver what is queued
 * ```ts
 * import { listen, type ShutdownOptions } from "@x/microsocket";
 *
 * const server = listen({ hostname: "127.0.0.1", port: 0 });
 * const options: ShutdownOptions = { timeout: 2000, reason: "maintenance" };
 * await server.shutdown(options);
 * ```
 */
export interface ShutdownOptions {
  /**
   * How long sessions get to write what is queued for them before their
   * connections are cut, in milliseconds.
   *
   * @default {5000}
   */
  timeout?: number;
  /**
   * The close reason given to every session.
   *
   * @default {"server shutdown"}
   */
  reason?: string;
}

/**
 * A snapshot of a server's counters; see {@linkcode Server.stats}.
 *
 * @example Reading what the policies did
 * ```ts
 * import { listen, type ServerStats } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * const stats: ServerStats = server.stats();
 * assert.equal(stats.sessionsOpen, 0);
 * assert.deepEqual(stats.closedByReason, {});
 * assert.equal(stats.rejected.maxConnections, 0);
 * ```
 */
export interface ServerStats {
  /** Sessions not yet fully closed. */
  sessionsOpen: number;
  /** Sessions created since the server started. */
  sessionsTotal: number;
  /** Connections closed before becoming sessions, by cause. */
  rejected: {
    /** Over `maxConnections`. */
    maxConnections: number;
    /** Over `maxConnectionsPerIp`. */
    maxConnectionsPerIp: number;
    /** Vetoed by `onAccept`. */
    vetoed: number;
  };
  /** Failed `accept()` calls (e.g. EMFILE), each followed by a backoff. */
  acceptErrors: number;
  /** Frames decoded from peers. */
  framesIn: number;
  /** Bytes read from peers. */
  bytesIn: number;
  /** Frames accepted for sending. */
  framesOut: number;
  /** Bytes written to peers. */
  bytesOut: number;
  /** Writes made to connections (frames queued together share one). */
  writes: number;
  /** Frames refused because a queue had no room (past `outboundBudget`). */
  framesDropped: number;
  /** Closed sessions by close reason. */
  closedByReason: Record<string, number>;
  /**
   * The WebSocket transport's handshake counters; present only on a
   * server whose transport is `"websocket"`.
   */
  websocket?: WebSocketServerStats;
}

const ACCEPT_BACKOFF_MIN = 5;
const ACCEPT_BACKOFF_MAX = 1000;

/**
 * A listening server: the accept loop, its sessions and its counters.
 * Create one with {@linkcode listen}.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example Shutting down with `await using`
 * ```ts
 * import { listen } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * {
 *   await using server = listen({ hostname: "127.0.0.1", port: 0 });
 *   assert.equal(server.sessions.size, 0);
 * } // shut down here
 * ```
 */
export class Server<
  Data = unknown,
  In = string,
  Out = In,
  Addr extends Deno.Addr = Deno.Addr,
> implements AsyncDisposable {
  /**
   * The bound address; with port 0, the port the system picked. Typed
   * `Deno.NetAddr` when {@linkcode listen} was given TCP options, and
   * `Deno.UnixAddr` for a Unix socket.
   */
  readonly addr: Addr;
  /** The open sessions, with rooms and broadcast. */
  readonly sessions: SessionManager<Data, In, Out>;
  /** Resolves once the server has shut down and released everything. */
  readonly closed: Promise<void>;
  /** @ignore Package-internal: see _meters.ts. */
  readonly [serverMeter]: ServerMeterSource;

  readonly #listener: Listener;
  readonly #options: ListenOptions<Data, In, Out>;
  readonly #sessionOptions: SessionOptions<Data, In, Out>;
  // Open sessions, each with the address its per-IP slot was counted under.
  readonly #live = new Map<Session<Data, In, Out>, string | undefined>();
  readonly #perIp = new Map<string, number>();
  readonly #observer: SessionObserver = {
    closed: (session, reason) =>
      this.#forget(session as Session<Data, In, Out>, reason),
    // A session that must authenticate joins the manager (rooms, broadcasts)
    // only once it has.
    opened: (session) =>
      void this.sessions.set(session as Session<Data, In, Out>),
  };

  readonly #pendingAccepts = new Set<Deno.Conn>();
  readonly #errorLog = new ErrorLog();
  // Connections in their transport's opening step (WebSocket handshake).
  readonly #opening = new Set<Promise<void>>();
  readonly #recovery: ServerRecovery<Data, In, Out> | undefined;
  readonly #resolveFinished: () => void;
  readonly #abortListener: (() => void) | undefined;
  #acceptLoop: Promise<void>;
  #stopping: Promise<void> | undefined;
  #backoffTimer: ReturnType<typeof setTimeout> | undefined;
  #wakeBackoff: (() => void) | undefined;

  // Counters of the server and of sessions already closed.
  #sessionsTotal = 0;
  #rejected = {
    maxConnections: 0,
    maxConnectionsPerIp: 0,
    vetoed: 0,
  };
  #acceptErrors = 0;
  #closedTotals = {
    framesIn: 0,
    bytesIn: 0,
    framesOut: 0,
    bytesOut: 0,
    writes: 0,
    framesDropped: 0,
  };
  #closedByReason: Record<string, number> = {};
  readonly #closedMeters = new SessionMeters();

  /**
   * Binds and starts accepting. Prefer {@linkcode listen}.
   *
   * @param options Where to listen, codec, limits and handlers.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   * @throws {Deno.errors.AddrInUse} When the address is taken.
   */
  constructor(options: ListenOptions<Data, In, Out>) {
    validateListenOptions(options);
    this.#options = options;
    const transport = transportOf(options);
    // Decided before binding: a WebSocket codec of the wrong role throws.
    const codec = transport.codec(
      options.codec ?? (lines() as unknown as Codec<In, Out>),
      "server",
      options.maxMessageBytes,
      "listen()",
    );
    // Checked before binding: a recovery option that can't apply throws.
    this.#recovery = serverRecovery(
      options,
      codec,
      () => this.sessions.nextId(),
      (error, session) => this.#report(error, session),
    );
    this.#listener = transport.listen(
      options,
      (error) => this.#report(error, undefined),
    );
    this.addr = this.#listener.addr as Addr;
    this.sessions = options.sessions ?? new SessionManager();
    // Servers sharing this manager resume across the cluster too.
    shareClusterRecovery(this.sessions, options.cluster, codec);
    const cluster = options.cluster;
    if (cluster !== undefined) {
      if (
        typeof cluster !== "object" || cluster === null ||
        typeof cluster.attach !== "function" ||
        typeof cluster.detach !== "function"
      ) {
        this.#listener.close();
        throw new TypeError("cluster must be a ClusterBridge");
      }
      const sessions = this.sessions;
      try {
        // The manager's rooms, ids and unknown ids go through the cluster
        // from now on; the membership stays in its local rooms.
        sessions.useRooms((local) =>
          cluster.attach({
            codec,
            local,
            deliverToSession: (id, frames, count = 1) => {
              const session = sessions.get(id);
              return session !== undefined &&
                sendFrames(session, codec, frames, count);
            },
          })
        );
      } catch (error) {
        this.#listener.close();
        throw error;
      }
    }
    this[serverMeter] = {
      transport: options.transport ??
        ("tls" in options && options.tls !== undefined ? "tls" : "tcp"),
      live: this.#live,
      closed: this.#closedMeters,
      recovery: this.#recovery?.meter,
    };
    // One options object shared by every session.
    this.#sessionOptions = {
      ...options,
      codec,
      onError: (error, session) => this.#report(error, session),
    };
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    this.#resolveFinished = resolve;
    const signal = options.signal;
    if (signal !== undefined) {
      const listener = () => void this.shutdown();
      this.#abortListener = listener;
      if (signal.aborted) queueMicrotask(listener);
      else signal.addEventListener("abort", listener, { once: true });
    }
    this.#acceptLoop = this.#accept();
  }

  /**
   * The server's counters: sessions, rejections, traffic, closes by reason.
   *
   * @returns A fresh snapshot.
   */
  stats(): ServerStats {
    const totals = { ...this.#closedTotals };
    for (const session of this.#live.keys()) addTraffic(totals, session);
    return {
      sessionsOpen: this.#live.size,
      sessionsTotal: this.#sessionsTotal,
      rejected: { ...this.#rejected },
      acceptErrors: this.#acceptErrors,
      ...totals,
      closedByReason: { ...this.#closedByReason },
      ...this.#listener.stats(),
    };
  }

  /**
   * Stops accepting, gives every session up to `timeout` to write what is
   * queued for it, closes them all and resolves when everything is
   * released. Calling it again returns the same promise.
   *
   * @param options Timeout and close reason.
   * @returns A promise that resolves once the server is shut down.
   */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    this.#stopping ??= this.#stop(
      options.timeout ?? DEFAULT_SHUTDOWN_TIMEOUT,
      options.reason ?? CloseReason.ServerShutdown,
    );
    return this.#stopping;
  }

  /**
   * Shuts down with the default options; see {@linkcode Server.shutdown}.
   *
   * @returns A promise that resolves once the server is shut down.
   */
  close(): Promise<void> {
    return this.shutdown();
  }

  /**
   * Shuts down, for `await using`.
   *
   * @returns A promise that resolves once the server is shut down.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  async #stop(timeout: number, reason: string): Promise<void> {
    this.#listener.close();
    this.#wakeBackoff?.();
    await this.#acceptLoop;
    for (const conn of this.#pendingAccepts) closeQuietly(conn);
    await this.#listener.settled();
    await Promise.all(this.#opening);
    await Promise.all(
      [...this.#live.keys()].map((session) => session.close(reason, timeout)),
    );
    if (this.#abortListener !== undefined) {
      this.#options.signal?.removeEventListener("abort", this.#abortListener);
    }
    if (this.#options.cluster !== undefined) {
      this.#options.cluster.detach();
      this.sessions.useRooms();
    }
    this.#resolveFinished();
  }

  // A loop over accept() rather than `for await`, which ends on the first
  // accept error (EMFILE): here errors back off and the loop goes on.
  async #accept(): Promise<void> {
    let backoff = ACCEPT_BACKOFF_MIN;
    while (this.#stopping === undefined) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#stopping !== undefined) return;
        if (error instanceof Deno.errors.BadResource) return;
        this.#acceptErrors++;
        this.#report(error, undefined);
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MAX);
        continue;
      }
      backoff = ACCEPT_BACKOFF_MIN;
      if (this.#stopping !== undefined) {
        closeQuietly(conn);
        return;
      }
      try {
        this.#admit(conn);
      } catch (error) {
        // Last resort: nothing a connection brings may end the loop.
        this.#report(error, undefined);
        closeQuietly(conn);
      }
    }
  }

  #admit(conn: Deno.Conn): void {
    const options = this.#options;
    // Connections still waiting for an async onAccept hold their slot too.
    const held = this.#live.size + this.#pendingAccepts.size;
    if (held >= (options.maxConnections ?? Infinity)) {
      this.#rejected.maxConnections++;
      this.#listener.refuse(conn, 503, "Server full");
      return;
    }
    const ip = peerIp(conn.remoteAddr);
    if (ip !== undefined) {
      const count = this.#perIp.get(ip) ?? 0;
      if (count >= (options.maxConnectionsPerIp ?? Infinity)) {
        this.#rejected.maxConnectionsPerIp++;
        this.#listener.refuse(
          conn,
          429,
          "Too many connections from your address",
        );
        return;
      }
      this.#perIp.set(ip, count + 1);
    }
    const onAccept = options.onAccept;
    if (onAccept === undefined) {
      this.#open(conn, ip);
      return;
    }
    let verdict: unknown;
    try {
      verdict = onAccept(conn);
      if (typeof verdict !== "boolean" && !isThenable(verdict)) {
        throw new TypeError(
          `onAccept must return a boolean or a promise of one, got ${
            verdict === null ? "null" : typeof verdict
          }`,
        );
      }
    } catch (error) {
      this.#report(error, undefined);
      verdict = false;
    }
    if (typeof verdict === "boolean") {
      this.#decide(conn, ip, verdict);
      return;
    }
    this.#pendingAccepts.add(conn);
    Promise.resolve(verdict).then(
      (accepted) => this.#decide(conn, ip, accepted === true),
      (error) => {
        this.#report(error, undefined);
        this.#decide(conn, ip, false);
      },
    );
  }

  #decide(conn: Deno.Conn, ip: string | undefined, accepted: boolean): void {
    this.#pendingAccepts.delete(conn);
    if (accepted && this.#stopping === undefined) {
      this.#open(conn, ip);
      return;
    }
    if (!accepted) this.#rejected.vetoed++;
    this.#release(ip);
    closeQuietly(conn);
  }

  #open(conn: Deno.Conn, ip: string | undefined): void {
    const opened = this.#listener.open(conn);
    if (this.#recovery !== undefined) {
      this.#openRecovering(conn, opened, ip);
      return;
    }
    if (!isThenable(opened)) {
      this.#start(opened, ip);
      return;
    }
    // The opening handshake holds the connection's slot, as onAccept does.
    this.#pendingAccepts.add(conn);
    const opening = opened.then((connection) => {
      this.#pendingAccepts.delete(conn);
      if (connection === undefined || this.#stopping !== undefined) {
        this.#release(ip);
        closeQuietly(conn);
        return;
      }
      this.#start(connection, ip);
    }).catch((error) => this.#report(error, undefined)).finally(() =>
      this.#opening.delete(opening)
    );
    this.#opening.add(opening);
  }

  // Recovery (issue 17): the connection's first bytes say whether it
  // resumes a session, opens a resumable one, or is a plain client.
  #openRecovering(
    conn: Deno.Conn,
    opened: Connection | Promise<Connection | undefined>,
    ip: string | undefined,
  ): void {
    this.#pendingAccepts.add(conn);
    const recovery = this.#recovery!;
    const opening = Promise.resolve(opened).then(async (connection) => {
      const outcome = connection === undefined
        ? undefined
        : await recovery.open(connection);
      this.#pendingAccepts.delete(conn);
      if (outcome === undefined || this.#stopping !== undefined) {
        this.#release(ip);
        if (outcome !== undefined && outcome.kind !== "resumed") {
          closeQuietly(outcome.connection.conn);
          if (outcome.kind !== "plain") recovery.abandon(outcome.id, true);
        }
        closeQuietly(conn);
        return;
      }
      if (outcome.kind === "resumed") {
        // The session holds its slot from its first connection.
        this.#release(ip);
        return;
      }
      if (outcome.kind === "plain") {
        this.#start(outcome.connection, ip);
        return;
      }
      if (outcome.kind === "adopted") {
        this.#adopt(outcome, ip);
        return;
      }
      if (this.#start(outcome.connection, ip, outcome.id) === undefined) {
        recovery.abandon(outcome.id);
      }
    }).catch((error) => this.#report(error, undefined)).finally(() =>
      this.#opening.delete(opening)
    );
    this.#opening.add(opening);
  }

  #start(
    connection: Connection,
    ip: string | undefined,
    id?: number,
  ): Session<Data, In, Out> | undefined {
    try {
      return openSession(connection, this.#sessionOptions, {
        // Unique in the manager, and across the cluster it may be in (this
        // server's, or one another server sharing the manager joined).
        id: id ?? this.sessions.nextId(),
        enrol: (session) => this.#enrol(session, ip),
        data: this.#options.data,
      }).session;
    } catch (error) {
      // The codec's decoder() (user code) threw.
      this.#report(error, undefined);
      this.#release(ip);
      closeQuietly(connection.conn);
      return undefined;
    }
  }

  // A session whose node died, made again here as it was: same id, data
  // and rooms, no onOpen (nor authentication: the token was its proof).
  #adopt(
    adopted: Extract<RecoveryOpened, { kind: "adopted" }>,
    ip: string | undefined,
  ): void {
    const recovery = this.#recovery!;
    let session: Session<Data, In, Out> | undefined;
    try {
      session = openSession(adopted.connection, this.#sessionOptions, {
        id: adopted.id,
        enrol: (opened) => this.#enrol(opened, ip),
      }).session;
    } catch (error) {
      this.#report(error, undefined);
      this.#release(ip);
      closeQuietly(adopted.connection.conn);
      recovery.abandon(adopted.id);
      return;
    }
    session.data = adopted.data as Data;
    continueSession(session);
    this.sessions.set(session);
    for (const room of adopted.rooms) this.sessions.join(session, room);
    recovery.adopted(session);
  }

  #enrol(session: Session<Data, In, Out>, ip: string | undefined): void {
    this.#sessionsTotal++;
    this.#live.set(session, ip);
    // Told before the session's onClose runs, so stats and per-IP slots are
    // up to date inside it. One observer for all sessions: a quiet session
    // carries no closures of its own.
    observe(session, this.#observer);
    if (this.#options.authenticate === undefined) this.sessions.set(session);
  }

  #forget(session: Session<Data, In, Out>, reason: string): void {
    const ip = this.#live.get(session);
    this.#live.delete(session);
    this.#release(ip);
    addTraffic(this.#closedTotals, session);
    addMeters(this.#closedMeters, session);
    this.#closedByReason[reason] = (this.#closedByReason[reason] ?? 0) + 1;
  }

  #release(ip: string | undefined): void {
    if (ip === undefined) return;
    const count = this.#perIp.get(ip)! - 1;
    if (count === 0) this.#perIp.delete(ip);
    else this.#perIp.set(ip, count);
  }

  #report(error: unknown, session: Session<Data, In, Out> | undefined): void {
    const onError = this.#options.onError;
    if (onError === undefined) {
      this.#errorLog.log(error, session);
      return;
    }
    try {
      onError(error, session);
    } catch (secondary) {
      console.error("microsocket: onError threw:", { error, secondary });
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(this.#backoffTimer);
        this.#backoffTimer = undefined;
        this.#wakeBackoff = undefined;
        resolve();
      };
      this.#wakeBackoff = wake;
      this.#backoffTimer = setTimeout(wake, ms);
    });
  }
}

/**
 * Starts a server: binds at once (so `server.addr` is ready when this
 * returns) and accepts connections in the background, each becoming a
 * {@linkcode Session} in `server.sessions`.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages (from the codec).
 * @typeParam Out The type of messages sessions send (from the codec).
 * @param options Where to listen, codec, limits and handlers; see
 * {@linkcode ListenOptions}.
 * @returns The running server.
 * @throws {TypeError} When an option is unknown, belongs to another
 * transport, means nothing without another one, or has the wrong type
 * (naming it).
 * @throws {RangeError} When an option is out of range (naming it), or
 * `heartbeatInterval` is set with a codec that has no heartbeat.
 * @throws {Deno.errors.AddrInUse} When the address is taken.
 *
 * @example An echo server and a client
 * ```ts
 * import { listen, lines } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: lines(),
 *   onMessage: (session, line) => void session.send(line.toUpperCase()),
 * });
 *
 * const { port } = server.addr; // a Deno.NetAddr: TCP options were given
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port });
 * await conn.write(new TextEncoder().encode("hello\n"));
 * const buffer = new Uint8Array(16);
 * const n = await conn.read(buffer);
 * assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), "HELLO\n");
 * ```
 */
export function listen<Data = unknown, In = string, Out = In>(
  options: TcpListenOptions & ServerOptions<Data, In, Out>,
): Server<Data, In, Out, Deno.NetAddr>;
/**
 * Starts a server on a Unix domain socket; see the TCP form above.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages (from the codec).
 * @typeParam Out The type of messages sessions send (from the codec).
 * @param options The socket path, codec, limits and handlers.
 * @returns The running server, whose `addr` is a `Deno.UnixAddr`.
 */
export function listen<Data = unknown, In = string, Out = In>(
  options: UnixListenOptions & ServerOptions<Data, In, Out>,
): Server<Data, In, Out, Deno.UnixAddr>;
/**
 * Starts a WebSocket server (RFC 6455 on each accepted connection); see
 * {@linkcode WebSocketListenOptions}. Sessions use the codec's message
 * types; see {@linkcode webSocketCodec} for how they map onto WebSocket
 * messages.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages (from the codec).
 * @typeParam Out The type of messages sessions send (from the codec).
 * @param options Where to listen, the handshake's rules, codec, limits and
 * handlers.
 * @returns The running server, whose `addr` is a `Deno.NetAddr`.
 */
export function listen<Data = unknown, In = string, Out = In>(
  options: WebSocketListenOptions & ServerOptions<Data, In, Out>,
): Server<Data, In, Out, Deno.NetAddr>;
/**
 * Starts a server with options whose transport is known only at run time.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages (from the codec).
 * @typeParam Out The type of messages sessions send (from the codec).
 * @param options Where to listen, codec, limits and handlers.
 * @returns The running server.
 */
export function listen<Data = unknown, In = string, Out = In>(
  options: ListenOptions<Data, In, Out>,
): Server<Data, In, Out>;
export function listen<Data = unknown, In = string, Out = In>(
  options: ListenOptions<Data, In, Out>,
): Server<Data, In, Out> {
  return new Server(options);
}

type Traffic = Pick<
  ServerStats,
  "framesIn" | "bytesIn" | "framesOut" | "bytesOut" | "writes" | "framesDropped"
>;

function addTraffic(totals: Traffic, session: Traffic): void {
  totals.framesIn += session.framesIn;
  totals.bytesIn += session.bytesIn;
  totals.framesOut += session.framesOut;
  totals.bytesOut += session.bytesOut;
  totals.writes += session.writes;
  totals.framesDropped += session.framesDropped;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
}
