// The seam between the server or client and the ways bytes travel. The
// server and the client know only this interface; each transport (tcp.ts,
// unix.ts, websocket.ts; TLS in tls.ts, under TCP and WebSocket) fills it
// in, and transports.ts lists them by the `transport` option's name.
import type { Codec } from "../codec/codec.ts";
import type { Connection } from "./connection.ts";
import type { TransportStats } from "./stats.ts";

/**
 * A bound listener, as the server drives it: it accepts raw connections
 * (the server applies its limits and `onAccept` to them first), then
 * opens the admitted ones. Package-internal.
 */
export interface Listener {
  /** The bound address. */
  readonly addr: Deno.Addr;
  /** The next raw connection; rejects once closed (`BadResource`). */
  accept(): Promise<Deno.Conn>;
  /**
   * Makes an admitted connection ready for a session: at once for a byte
   * stream, after the opening handshake for WebSocket, which resolves
   * `undefined` when it ended without one (the connection is closed then
   * and counted in the transport's stats).
   */
  open(conn: Deno.Conn): Connection | Promise<Connection | undefined>;
  /**
   * Turns away a connection over a limit, telling the peer why when its
   * protocol can (WebSocket: 429 or 503), and closes it.
   */
  refuse(conn: Deno.Conn, status: 429 | 503, message: string): void;
  /** Stops accepting; idempotent. */
  close(): void;
  /**
   * Cuts the refusals still running and resolves once they have ended (the
   * server awaits the openings it started itself).
   */
  settled(): Promise<void>;
  /** The transport's own counters, under its name; `{}` when none. */
  stats(): TransportStats;
}

/**
 * A connection attempt the client may abandon (its connect timeout): the
 * dialer records each connection it makes, and gives up when told.
 */
export interface Attempt {
  /** The outermost connection made so far (TLS once it exists). */
  conn: Deno.Conn | undefined;
  /** Set when the attempt timed out: the dialer stops and closes. */
  abandoned: boolean;
}

/** Everything a transport is asked by the server or the client. */
export interface Transport<ListenOptions, DialOptions> {
  /**
   * The codec the sessions of this transport use for `codec` (WebSocket
   * maps messages onto frames); the codec itself for a byte stream.
   *
   * @param who The caller, for error messages: `"listen()"`, `"connect()"`.
   */
  codec<In, Out>(
    codec: Codec<In, Out>,
    role: "server" | "client",
    maxMessageBytes: number | undefined,
    who: string,
  ): Codec<In, Out>;
  /** Binds a listener. */
  listen(options: ListenOptions, onError: (error: unknown) => void): Listener;
  /** Makes one connection, within the attempt. */
  dial(options: DialOptions, attempt: Attempt): Promise<Connection>;
}
