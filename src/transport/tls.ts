// TLS, under TCP and WebSocket (`wss:`): a listener with a certificate,
// and the client's handshake over a TCP connection it made itself, so that
// the socket options are set on it first and an untrusted certificate
// fails the attempt instead of a session that seemed open.
import type { Attempt } from "./transport.ts";

/** A server's certificate chain and private key, PEM. */
export interface TlsCertificate {
  cert: string;
  key: string;
}

/** Binds a TLS listener. */
export function listenTls(
  hostname: string,
  port: number,
  tcpBacklog: number,
  tls: TlsCertificate,
): Deno.TlsListener {
  return Deno.listenTls({
    hostname,
    port,
    tcpBacklog,
    cert: tls.cert,
    key: tls.key,
  });
}

/**
 * Runs the client's TLS handshake over `tcp`, recording the TLS
 * connection in `attempt` (it owns the TCP one from then on).
 */
export async function startTls(
  tcp: Deno.TcpConn,
  hostname: string,
  tls: true | { caCerts?: string[] },
  attempt: Attempt,
): Promise<Deno.TlsConn> {
  const caCerts = tls === true ? undefined : tls.caCerts;
  const conn = await Deno.startTls(
    tcp,
    caCerts === undefined ? { hostname } : { hostname, caCerts },
  );
  attempt.conn = conn;
  await conn.handshake();
  return conn;
}
