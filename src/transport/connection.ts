// What every transport hands to openSession(): a byte stream, ready for a
// codec, and what its opening already read. TCP, TLS and Unix connections
// are ready at once; a WebSocket one after its handshake, which may have
// read the peer's first frames and carries its upgrade request (see
// websocket.ts). The session keeps it for its whole life, so what a
// transport learned while opening it lives here, not in a side table.

import type { Codec } from "../codec/codec.ts";
import type { OpenedConnection } from "../session/_internals.ts";

/**
 * A connection a transport accepted, dialed or adopted, ready to become a
 * session. Package-internal.
 */
export interface Connection {
  /** The byte stream; the session owns it from now on. */
  readonly conn: Deno.Conn;
  /**
   * Bytes already read from `conn` past a handshake (the peer's first
   * frames), decoded before anything else; `undefined` when none.
   */
  readonly prelude: Uint8Array | undefined;
  /**
   * The codec this connection's session uses instead of the server's or
   * client's (a WebSocket connection that negotiated permessage-deflate
   * uses the compressing variant of the adapter); unset: that codec.
   */
  // deno-lint-ignore no-explicit-any
  readonly adapt?: (<C extends Codec<any, any>>(codec: C) => C) | undefined;
  /** Set when the session is resumable (issue 17); see src/recovery/. */
  readonly resumable?: OpenedConnection["resumable"];
}

/** Wraps a connection that needs no opening step (TCP, TLS, Unix). */
export function streamConnection(conn: Deno.Conn): Connection {
  return { conn, prelude: undefined };
}

/** Closes `conn`, which may already be closed. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * The peer's IP address, which `maxConnectionsPerIp` counts by; `undefined`
 * for a Unix socket, which has none.
 */
export function peerIp(addr: Deno.Addr): string | undefined {
  return addr.transport === "tcp" || addr.transport === "udp"
    ? addr.hostname
    : undefined;
}
