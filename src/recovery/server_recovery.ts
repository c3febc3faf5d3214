// The server's side of recovery (issue 17): tells a recovery client from a
// plain one, opens a resumable session for the first, resumes a detached
// one, and closes a detached session for good once its window passes. One
// instance per server with `recovery` set.
//
// Telling them apart: over WebSocket the client asks in the upgrade URL, so
// a plain WebSocket client is never sniffed; over TCP, TLS and Unix the
// first byte decides (see _preamble.ts). A recovery client sends its hello
// the moment it connects: it rides right behind the handshake's last packet
// (TLS: right after the TLS handshake, which is waited for first), so the
// server waits for a first byte only `helloTimeout` (default 20 ms) before
// taking a silent connection for a plain client. A plain client that
// speaks first is never delayed; one that waits for the server to speak
// first (nc and a welcome line) gets its first bytes at most that much
// later. The README gives the measurement behind the default.
import type { Session } from "../session/session.ts";
import { CloseReason } from "../close_reason.ts";
import {
  messagesIn,
  observe,
  queueReplayed,
  resume,
  sendShared,
  suspend,
  type WithParts,
} from "../session/_internals.ts";
import type { Codec } from "../codec/codec.ts";
import type { BackplaneSession, RecoveryBackplane } from "./backplane.ts";
import {
  positionWords,
  readPosition,
  readSent,
  type WirePosition,
} from "./_cluster_wire.ts";
import { PositionedFrames } from "./_positioned_frames.ts";
import { closeQuietly, type Connection } from "../transport/connection.ts";
import {
  DEFAULT_RECOVERY_HELLO_TIMEOUT,
  DEFAULT_RECOVERY_MAX_BYTES,
  DEFAULT_RECOVERY_MAX_MESSAGES,
  DEFAULT_RECOVERY_WINDOW,
  DEFAULT_RECOVERY_WS_HELLO_TIMEOUT,
} from "../defaults.ts";
import {
  type Hello,
  parseHello,
  preamble,
  readPreamble,
  readWebSocketLine,
  WEBSOCKET_PARAM,
  webSocketLine,
  writeAll,
} from "./_preamble.ts";
import { ResumableConn } from "./resumable_conn.ts";
import { PendingConn } from "./_pending_conn.ts";
import { newToken, sameToken } from "./_tokens.ts";
import { MessageLog } from "./_message_log.ts";
import type { RecoveryMeter, RecoveryRefusal } from "../_meters.ts";

/**
 * The `recovery` option of `listen()` (TCP, TLS, Unix and WebSocket): a
 * client that asks for it (`connect({ recovery: true })`, or the browser
 * module `microsocket_browser.js`) keeps its session across a dropped
 * connection for `window` ms: same id, rooms and data, and every message
 * sent to it meanwhile arrives once and in order, before new ones. When
 * the gap can't be filled the client is refused and starts a fresh session
 * (`recovered: false`). Clients that don't ask see no change.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example
 * ```ts
 * import { listen, type RecoveryOptions } from "@x/microsocket";
 *
 * const recovery: RecoveryOptions<unknown, string, string> = {
 *   window: 30_000,
 *   onResume: (session) => console.log(`session ${session.id} is back`),
 * };
 * await using server = listen({ hostname: "127.0.0.1", port: 0, recovery });
 * ```
 */
export interface RecoveryOptions<Data, In, Out> {
  /**
   * How long a session whose connection dropped waits for its client, in
   * milliseconds; then it closes with reason `"recovery expired"`.
   *
   * @default {30000}
   */
  window?: number;
  /**
   * The most messages a session keeps of what it sent, to send again after
   * a drop; a client that missed more starts a fresh session.
   *
   * @default {1000}
   */
  maxMessages?: number;
  /**
   * The most bytes those messages may hold (a broadcast's bytes are shared
   * by every member's log, not copied).
   *
   * @default {1048576}
   */
  maxBytes?: number;
  /**
   * TCP, TLS and Unix: how long a new connection may stay silent before
   * it is taken for a plain client (one that waits for the server to speak
   * first gets its first bytes up to this much later).
   *
   * @default {20}
   */
  helloTimeout?: number;
  /** Called when a session's client came back and the session goes on. */
  onResume?: (session: Session<Data, In, Out>) => void;
  /** Called when a session's connection dropped and it waits for its client. */
  onDetach?: (session: Session<Data, In, Out>) => void;
}

/** What {@linkcode ServerRecovery.open} made of a connection. */
export type RecoveryOpened =
  | { readonly kind: "plain"; readonly connection: Connection }
  | {
    readonly kind: "new";
    readonly connection: Connection;
    readonly id: number;
  }
  | { readonly kind: "resumed" }
  | {
    // A session whose node died (or let it go), resumed here from the
    // cluster's backplane: the server makes it again with this id, data
    // and rooms, without onOpen, then calls adopted().
    readonly kind: "adopted";
    readonly connection: Connection;
    readonly id: number;
    readonly data: unknown;
    readonly rooms: readonly string[];
  };

/** The cluster part of a server's recovery: see backplane.ts. */
export interface ClusterRecoveryLink {
  /** The cluster's backplane. */
  readonly backplane: RecoveryBackplane;
  /** The codec the backplane's frames are in (the server's). */
  // deno-lint-ignore no-explicit-any
  readonly codec: Codec<any, any>;
}

interface Entry<Data, In, Out> {
  readonly conn: ResumableConn;
  readonly log: MessageLog;
  readonly webSocket: boolean;
  readonly compressed: boolean;
  token: string;
  session: Session<Data, In, Out> | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  // Kept in the cluster's backplane too.
  clustered: boolean;
  // Another node resumed it: its record is that node's now.
  lost: boolean;
  // A session adopted from a dead node counts on from its client's counts:
  // messages it took before (inBase) and was sent before (outBase).
  inBase: number;
  outBase: number;
  // Entries the backplane gave before the session existed.
  early: [number, Uint8Array][] | undefined;
}

/** Package-internal: the server's recovery state; see the file comment. */
export class ServerRecovery<Data, In, Out> {
  readonly #window: number;
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #helloTimeout: number;
  readonly #options: RecoveryOptions<Data, In, Out>;
  readonly #nextId: () => number;
  readonly #report: (error: unknown, session?: Session<Data, In, Out>) => void;
  readonly #entries = new Map<number, Entry<Data, In, Out>>();
  // Answered for, not yet made into a session by the server (abandon()).
  readonly #unbound = new Map<number, Entry<Data, In, Out>>();
  readonly #cluster: ClusterRecoveryLink | undefined;
  readonly #frames: PositionedFrames | undefined;
  /** The counters the metrics read (issue 18). */
  readonly meter: RecoveryMeter;

  constructor(
    options: RecoveryOptions<Data, In, Out>,
    nextId: () => number,
    report: (error: unknown, session?: Session<Data, In, Out>) => void,
    cluster?: ClusterRecoveryLink,
  ) {
    this.#cluster = cluster;
    this.#frames = cluster && new PositionedFrames(cluster.codec);
    this.#options = options;
    this.#window = options.window ?? DEFAULT_RECOVERY_WINDOW;
    this.#maxMessages = options.maxMessages ?? DEFAULT_RECOVERY_MAX_MESSAGES;
    this.#maxBytes = options.maxBytes ?? DEFAULT_RECOVERY_MAX_BYTES;
    this.#helloTimeout = options.helloTimeout ??
      DEFAULT_RECOVERY_HELLO_TIMEOUT;
    this.#nextId = nextId;
    this.#report = report;
    const entries = this.#entries;
    this.meter = {
      resumed: 0,
      fresh: 0,
      refused: {
        unknown_session: 0,
        bad_token: 0,
        trimmed: 0,
        bad_hello: 0,
        transport_changed: 0,
        epoch: 0,
        future: 0,
      },
      expired: 0,
      get detached(): number {
        let n = 0;
        for (const entry of entries.values()) {
          if (!entry.conn.attached && entry.session?.state === "open") n++;
        }
        return n;
      },
    };
  }

  /** Sessions waiting for their client. */
  get detached(): number {
    return this.meter.detached;
  }

  /**
   * Reads the connection's hello, if any, and decides; `undefined` when the
   * connection was refused (or failed) and is closed.
   */
  async open(connection: Connection): Promise<RecoveryOpened | undefined> {
    const conn = connection.conn;
    // A WebSocket client asks in its URL; one that didn't is not sniffed.
    const request = (connection as { request?: { target: string } }).request;
    const webSocket = request !== undefined;
    if (webSocket && !asksForRecovery(request.target)) {
      return { kind: "plain", connection };
    }
    let line: string | undefined;
    let rest: Uint8Array;
    try {
      if (webSocket) {
        const read = await readWebSocketLine(
          conn,
          performance.now() + DEFAULT_RECOVERY_WS_HELLO_TIMEOUT,
          connection.prelude,
        );
        line = read.line;
        rest = read.rest;
      } else {
        // TLS: the hello follows the TLS handshake; time it from there.
        if ("handshake" in conn) {
          await (conn as Deno.TlsConn).handshake();
        }
        const read = await readPreamble(
          conn,
          performance.now() + this.#helloTimeout,
          false,
          connection.prelude,
        );
        if (read.line === undefined) {
          const plain = read.pending === undefined ? conn : new PendingConn(
            conn,
            read.pending,
            read.buffer,
          ) as unknown as Deno.Conn;
          return {
            kind: "plain",
            connection: {
              ...connection,
              conn: plain,
              prelude: read.rest.length > 0 ? read.rest : undefined,
            },
          };
        }
        line = read.line;
        rest = read.rest;
      }
    } catch {
      closeQuietly(conn);
      return undefined;
    }
    const hello = line === undefined ? undefined : parseHello(line);
    if (hello === undefined) {
      return await this.#refuse(conn, webSocket, "bad_hello");
    }
    if (hello.kind === "resume") {
      return await this.#resume(connection, webSocket, hello, line!, rest);
    }
    const id = this.#nextId();
    const entry = this.#entry(connection, webSocket, rest, 0, 0);
    let words = "";
    const backplane = this.#cluster?.backplane;
    if (backplane !== undefined) {
      try {
        const opened = await backplane.open(id, this.#hooks(entry));
        entry.clustered = true;
        entry.token = opened.token;
        words = positionWords(opened);
      } catch (error) {
        // The engine can't be reached: the session resumes on this node
        // only (its client learns so: no position words).
        this.#report(error);
      }
    }
    try {
      await this.#answer(
        conn,
        webSocket,
        `ok 0 ${id} ${entry.token} 0 ${this.#window}${words}`,
      );
    } catch {
      closeQuietly(conn);
      if (entry.clustered) this.#end(id, entry);
      return undefined;
    }
    this.meter.fresh++;
    return {
      kind: "new",
      connection: this.#resumable(connection, entry, id),
      id,
    };
  }

  /**
   * An adopted session (see {@linkcode RecoveryOpened}) was made again
   * with its data and rooms: what the backplane gave meanwhile goes out,
   * after its replay, and `onResume` runs.
   */
  adopted(session: Session<Data, In, Out>): void {
    const entry = this.#entries.get(session.id);
    if (entry === undefined || entry.session !== session) return;
    const early = entry.early;
    entry.early = undefined;
    if (early !== undefined) {
      for (const [position, frame] of early) {
        this.#deliver(entry, position, frame, true);
      }
    }
    this.meter.resumed++;
    this.#call(this.#options.onResume, session);
  }

  /**
   * The server could not make the session `open()` answered for; with
   * `keep` (it is shutting down), its cluster record stays, so its client
   * resumes on another node.
   */
  abandon(id: number, keep = false): void {
    const entry = this.#unbound.get(id);
    this.#unbound.delete(id);
    if (entry === undefined || !entry.clustered) return;
    entry.lost ||= keep;
    this.#end(id, entry);
  }

  #entry(
    connection: Connection,
    webSocket: boolean,
    rest: Uint8Array,
    inBase: number,
    outBase: number,
  ): Entry<Data, In, Out> {
    const entry: Entry<Data, In, Out> = {
      conn: new ResumableConn(connection.conn, rest, {
        detached: () => this.#detached(entry),
      }),
      log: new MessageLog({
        maxMessages: this.#maxMessages,
        maxBytes: this.#maxBytes,
      }),
      webSocket,
      compressed: connection.adapt !== undefined,
      token: newToken(),
      session: undefined,
      timer: undefined,
      clustered: false,
      lost: false,
      inBase,
      outBase,
      early: undefined,
    };
    return entry;
  }

  #resumable(
    connection: Connection,
    entry: Entry<Data, In, Out>,
    id: number,
  ): Connection {
    this.#unbound.set(id, entry);
    return {
      ...connection,
      conn: entry.conn as unknown as Deno.Conn,
      prelude: undefined,
      resumable: {
        log: entry.log,
        bind: (session: WithParts) => this.#bind(entry, id, session),
      },
    } as Connection;
  }

  // What the backplane calls for one session.
  #hooks(entry: Entry<Data, In, Out>): BackplaneSession {
    return {
      deliver: (position, frame) => this.#deliver(entry, position, frame),
      data: () => entry.session?.data,
      lost: () => {
        entry.lost = true;
        const session = entry.session;
        if (session?.state === "open") {
          void session.close(CloseReason.RecoveryFailed);
        }
      },
    };
  }

  // An entry from the backplane (see _positioned_frames.ts). What was
  // replayed (given before the session existed) goes past its budget.
  #deliver(
    entry: Entry<Data, In, Out>,
    position: number,
    frame: Uint8Array,
    replayed = false,
  ): void {
    const session = entry.session;
    if (session === undefined) {
      (entry.early ??= []).push([position, frame]);
      return;
    }
    if (session.state !== "open") return;
    const bytes = this.#frames!.for(
      position,
      frame,
      session.codec,
      entry.webSocket,
    );
    if (bytes === undefined) return;
    if (replayed) queueReplayed(session, bytes.base, bytes.start, bytes.end);
    else sendShared(session, bytes.base, bytes.start, bytes.end, 1);
  }

  #end(id: number, entry: Entry<Data, In, Out>): void {
    const backplane = this.#cluster!.backplane;
    if (entry.lost) {
      backplane.release(id);
      return;
    }
    backplane.end(id).catch((error) => this.#report(error));
  }

  async #resume(
    connection: Connection,
    webSocket: boolean,
    hello: Extract<Hello, { kind: "resume" }>,
    line: string,
    rest: Uint8Array,
  ): Promise<RecoveryOpened | undefined> {
    const conn = connection.conn;
    const entry = this.#entries.get(hello.id);
    const session = entry?.session;
    if (entry === undefined && this.#cluster !== undefined) {
      return await this.#adopt(connection, webSocket, hello, line, rest);
    }
    if (entry === undefined || session === undefined || entry.conn.closed) {
      return await this.#refuse(conn, webSocket, "unknown_session");
    }
    if (!sameToken(entry.token, hello.token)) {
      return await this.#refuse(conn, webSocket, "bad_token");
    }
    // The token was right: whatever happens next, it is spent, so that a
    // second resume with it (a replay, or a race) is refused.
    entry.token = newToken();
    if (entry.clustered) {
      // Spent in the cluster too, so no other node resumes it with it.
      const next = await this.#cluster!.backplane.renew(hello.id, hello.token);
      if (next === undefined) {
        return await this.#refuse(conn, webSocket, "unknown_session");
      }
      entry.token = next;
    }
    if (
      entry.webSocket !== webSocket ||
      entry.compressed !== (connection.adapt !== undefined)
    ) {
      void session.close(CloseReason.RecoveryFailed);
      return await this.#refuse(conn, webSocket, "transport_changed");
    }
    const from = hello.received - entry.outBase;
    if (from < 0 || !entry.log.canReplayFrom(from)) {
      // The gap can't be filled: never a partial replay. The session is of
      // no use to anyone now.
      void session.close(CloseReason.RecoveryFailed);
      return await this.#refuse(conn, webSocket, "trimmed");
    }
    // From here nothing read from the old connection counts.
    entry.conn.release();
    clearTimeout(entry.timer);
    entry.timer = undefined;
    const took = messagesIn(session) + entry.inBase;
    // A cluster client keeps its own position: it is said back unchanged.
    const at = entry.clustered ? readPosition(line) : undefined;
    const words = at === undefined ? "" : positionWords(at);
    try {
      await this.#answer(
        conn,
        webSocket,
        `ok 1 ${hello.id} ${entry.token} ${took} ${this.#window}${words}`,
      );
    } catch {
      closeQuietly(conn);
      this.#detached(entry);
      return undefined;
    }
    if (session.state !== "open" || !resume(session, from)) {
      // Closed, or trimmed while the answer was being written.
      closeQuietly(conn);
      if (session.state === "open") {
        void session.close(CloseReason.RecoveryFailed);
      }
      return undefined;
    }
    entry.conn.attach(conn, rest);
    this.meter.resumed++;
    this.#call(this.#options.onResume, session);
    return { kind: "resumed" };
  }

  // A resume for a session this node doesn't hold: its node died (or let
  // it go). The backplane checks the token, claims the record and replays
  // what the client missed after its position; the client's counts carry
  // on (what the dead node took is not known: see _cluster_wire.ts).
  async #adopt(
    connection: Connection,
    webSocket: boolean,
    hello: Extract<Hello, { kind: "resume" }>,
    line: string,
    rest: Uint8Array,
  ): Promise<RecoveryOpened | undefined> {
    const conn = connection.conn;
    const at: WirePosition | undefined = readPosition(line);
    const sent = readSent(line);
    if (at === undefined || sent === undefined) {
      return await this.#refuse(conn, webSocket, "unknown_session");
    }
    const backplane = this.#cluster!.backplane;
    const entry = this.#entry(
      connection,
      webSocket,
      rest,
      sent,
      hello.received,
    );
    entry.early = [];
    let result;
    try {
      result = await backplane.resume(
        { id: hello.id, token: hello.token, ...at },
        this.#hooks(entry),
      );
    } catch (error) {
      // The engine didn't answer: no answer either (not a refusal, which
      // would start a fresh session); the client tries again.
      this.#report(error);
      closeQuietly(conn);
      return undefined;
    }
    if (!result.recovered) {
      const reason = result.reason as RecoveryRefusal;
      return await this.#refuse(
        conn,
        webSocket,
        reason in this.meter.refused ? reason : "unknown_session",
      );
    }
    entry.clustered = true;
    entry.token = result.token;
    try {
      await this.#answer(
        conn,
        webSocket,
        `ok 1 ${hello.id} ${entry.token} ${sent} ${this.#window}${
          positionWords(at)
        }`,
      );
    } catch {
      closeQuietly(conn);
      // The client never got the next token: nobody can resume it now.
      this.#end(hello.id, entry);
      return undefined;
    }
    return {
      kind: "adopted",
      connection: this.#resumable(connection, entry, hello.id),
      id: hello.id,
      data: result.data,
      rooms: result.rooms,
    };
  }

  #bind(entry: Entry<Data, In, Out>, id: number, bound: WithParts): void {
    const session = bound as Session<Data, In, Out>;
    this.#unbound.delete(id);
    entry.session = session;
    this.#entries.set(id, entry);
    observe(session, {
      closed: (_session, reason) => {
        clearTimeout(entry.timer);
        entry.timer = undefined;
        entry.log.clear();
        entry.early = undefined;
        this.#entries.delete(id);
        if (!entry.clustered) return;
        // A server shutting down lets its sessions resume on other nodes.
        if (reason === CloseReason.ServerShutdown) entry.lost = true;
        this.#end(id, entry);
      },
    });
  }

  #detached(entry: Entry<Data, In, Out>): void {
    const session = entry.session;
    if (session === undefined || entry.conn.closed) return;
    if (session.state !== "open") return;
    suspend(session);
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (session.state !== "open") return;
      this.meter.expired++;
      void session.close(CloseReason.RecoveryExpired);
    }, this.#window);
    this.#call(this.#options.onDetach, session);
  }

  async #answer(
    conn: Deno.Conn,
    webSocket: boolean,
    line: string,
  ): Promise<void> {
    await writeAll(
      conn,
      webSocket ? webSocketLine(line, false) : preamble(line),
    );
  }

  async #refuse(
    conn: Deno.Conn,
    webSocket: boolean,
    reason: RecoveryRefusal,
  ): Promise<undefined> {
    this.meter.refused[reason]++;
    try {
      await this.#answer(conn, webSocket, `fail ${reason}`);
    } catch {
      // The client is gone: nothing to tell.
    }
    closeQuietly(conn);
    return undefined;
  }

  #call(
    handler: ((session: Session<Data, In, Out>) => void) | undefined,
    session: Session<Data, In, Out>,
  ): void {
    if (handler === undefined) return;
    try {
      handler(session);
    } catch (error) {
      this.#report(error, session);
    }
  }
}

function asksForRecovery(target: string): boolean {
  const query = target.indexOf("?");
  return query !== -1 &&
    new URLSearchParams(target.slice(query + 1)).get(WEBSOCKET_PARAM) === "1";
}

// The cluster recovery of a manager whose server's cluster has history, for
// the other servers sharing that manager (e.g. a WebSocket server next to
// the TCP one, as the chat has): the frames in its engine are in that
// server's codec.
const sharedLinks = new WeakMap<object, ClusterRecoveryLink>();

/**
 * Called by a server with a cluster once its manager is known: servers
 * sharing the manager resume across the cluster too.
 */
export function shareClusterRecovery(
  sessions: object,
  cluster: { readonly recovery?: RecoveryBackplane | undefined } | undefined,
  // deno-lint-ignore no-explicit-any
  codec: Codec<any, any>,
): void {
  const backplane = cluster?.recovery;
  if (backplane !== undefined) sharedLinks.set(sessions, { backplane, codec });
}

/**
 * A server's recovery, local or across its cluster (the cluster's, or the
 * one of a server it shares its manager with).
 *
 * @throws {TypeError} When the cluster has history and `recovery` is unset.
 * @throws {RangeError} When `recovery.window` is longer than the history's
 * record window.
 */
export function serverRecovery<Data, In, Out>(
  options: {
    readonly recovery?: RecoveryOptions<Data, In, Out> | undefined;
    readonly cluster?:
      | { readonly recovery?: RecoveryBackplane | undefined }
      | undefined;
    readonly sessions?: object | undefined;
  },
  // deno-lint-ignore no-explicit-any
  codec: Codec<any, any>,
  nextId: () => number,
  report: (error: unknown, session?: Session<Data, In, Out>) => void,
): ServerRecovery<Data, In, Out> | undefined {
  const backplane = options.cluster?.recovery;
  if (options.recovery === undefined) {
    if (backplane !== undefined) {
      throw new TypeError(
        "cluster has history, which needs the recovery option (recovery: {}) to mean anything",
      );
    }
    return undefined;
  }
  const link = backplane !== undefined
    ? { backplane, codec }
    : options.sessions === undefined
    ? undefined
    : sharedLinks.get(options.sessions);
  const window = options.recovery.window ?? DEFAULT_RECOVERY_WINDOW;
  const limit = link?.backplane.window;
  if (limit !== undefined && window > limit) {
    throw new RangeError(
      `recovery.window (${window} ms) is longer than the cluster history's record window (${limit} ms)`,
    );
  }
  return new ServerRecovery(options.recovery, nextId, report, link);
}
