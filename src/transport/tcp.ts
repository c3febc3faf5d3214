// TCP (and TLS over it, with `tls`): binding a listener and dialing. The
// WebSocket transport runs over these too.
import type { Attempt, Transport } from "./transport.ts";
import { listenTls, startTls, type TlsCertificate } from "./tls.ts";
import { streamCodec, StreamListener } from "./stream_listener.ts";
import { closeQuietly, streamConnection } from "./connection.ts";
import {
  DEFAULT_BACKLOG,
  DEFAULT_CONNECT_HOSTNAME,
  DEFAULT_LISTEN_HOSTNAME,
  DEFAULT_NO_DELAY,
  DEFAULT_PORT,
} from "../defaults.ts";

/** Where a TCP (or TLS) listener binds; the server's options narrowed. */
export interface TcpBindOptions {
  hostname?: string | undefined;
  port?: number | undefined;
  backlog?: number | undefined;
  reusePort?: boolean | undefined;
  tls?: TlsCertificate | undefined;
}

/** Where and how the client dials over TCP (or TLS). */
export interface TcpDialOptions {
  hostname?: string | undefined;
  port?: number | undefined;
  keepAlive?: boolean | undefined;
  noDelay?: boolean | undefined;
  tls?: true | { caCerts?: string[] } | undefined;
}

/** Binds a TCP listener, or a TLS one with `tls`. */
export function bindTcp(options: TcpBindOptions): Deno.Listener {
  const hostname = options.hostname ?? DEFAULT_LISTEN_HOSTNAME;
  const port = options.port ?? DEFAULT_PORT;
  const tcpBacklog = options.backlog ?? DEFAULT_BACKLOG;
  if (options.tls !== undefined) {
    return listenTls(hostname, port, tcpBacklog, options.tls);
  }
  if (options.reusePort !== true) {
    return Deno.listen({ hostname, port, tcpBacklog });
  }
  // Without --unstable-net, Deno.listen({ reusePort }) ends the process
  // (exit code 70) instead of throwing; listenDatagram exists only with
  // that flag, so its absence tells us in time to throw something useful.
  if (
    typeof (Deno as { listenDatagram?: unknown }).listenDatagram !== "function"
  ) {
    throw new TypeError(
      'reusePort needs Deno\'s --unstable-net flag (or "unstable": ["net"] in deno.json)',
    );
  }
  return Deno.listen({ hostname, port, tcpBacklog, reusePort: true });
}

/**
 * Connects over TCP, then runs the TLS handshake with `tls`. On failure
 * the connection made so far is closed.
 */
export async function dialTcp(
  options: TcpDialOptions,
  attempt: Attempt,
): Promise<Deno.Conn> {
  const hostname = options.hostname ?? DEFAULT_CONNECT_HOSTNAME;
  const tcp = await Deno.connect({ hostname, port: options.port! });
  attempt.conn = tcp;
  try {
    if (attempt.abandoned) throw new Error("Connection attempt abandoned");
    if (options.keepAlive === true) tcp.setKeepAlive(true);
    const tls = options.tls;
    if (tls === undefined) return tcp;
    // TlsConn has no socket options: TCP_NODELAY is set here, before the
    // handshake.
    if (options.noDelay ?? DEFAULT_NO_DELAY) tcp.setNoDelay(true);
    return await startTls(tcp, hostname, tls, attempt);
  } catch (error) {
    // The TLS connection once it exists: it owns the TCP one.
    closeQuietly(attempt.conn);
    throw error;
  }
}

/** The TCP transport: byte streams, TLS with `tls`. */
export const tcp: Transport<TcpBindOptions, TcpDialOptions> = {
  codec: streamCodec,
  listen: (options) => new StreamListener(bindTcp(options)),
  dial: async (options, attempt) =>
    streamConnection(await dialTcp(options, attempt)),
};
