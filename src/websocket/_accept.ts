// Package-internal: the server's WebSocket opening handshake on a raw,
// just-accepted connection, before any Session exists. Reads the request
// head under size and count limits and a deadline (slowloris), then either
// upgrades (101, returning the bytes read past the head for the session to
// decode first), or answers plain HTTP (the `serve` option, else 404) or a
// refusal (400/403/404/405/426/431) and gives up the connection. Nothing a
// peer does here may throw out of it: a hang-up is just `undefined`.
import type { DeflateParams } from "./_deflate.ts";
import {
  type HttpHeadOptions,
  type HttpRequestHead,
  RequestHeadParser,
} from "./_http_head.ts";
import {
  checkUpgrade,
  httpResponse,
  type UpgradeOptions,
  upgradeResponse,
} from "./_handshake.ts";

/** What the server passes to {@linkcode acceptWebSocket}. */
export interface AcceptOptions extends UpgradeOptions, HttpHeadOptions {
  /** Milliseconds the whole handshake may take; `0` never times out. */
  handshakeTimeout: number;
  /** Answers plain HTTP requests; unset: 404. */
  serve?: ((request: Request) => Response | Promise<Response>) | undefined;
  /** Receives errors thrown by `serve`. */
  onError(error: unknown): void;
}

/** An upgraded connection, ready to become a session. */
export interface Accepted {
  /** The upgrade request. */
  readonly request: HttpRequestHead;
  /** The subprotocol chosen, if any. */
  readonly protocol: string | undefined;
  /** Bytes read past the request head: the first frames. */
  readonly prelude: Uint8Array;
  /** The permessage-deflate agreed on, if any. */
  readonly deflate: DeflateParams | undefined;
}

/**
 * How a handshake ended without an upgrade: `"refused"` (an upgrade or a
 * head we answered with 4xx), `"http"` (a plain HTTP request, answered),
 * `"failed"` (the peer hung up, reset, or the deadline cut it).
 */
export type HandshakeEnd = "refused" | "http" | "failed";

const READ_BUFFER = 4096;

/**
 * Runs the handshake on `conn`. Resolves with the upgrade once the 101 is
 * written, or with how it ended otherwise; the caller closes the
 * connection then (closing twice is harmless).
 */
export async function acceptWebSocket(
  conn: Deno.Conn,
  options: AcceptOptions,
): Promise<Accepted | HandshakeEnd> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (options.handshakeTimeout > 0) {
    // The only way to end a pending read is to close the connection.
    timer = setTimeout(() => closeQuietly(conn), options.handshakeTimeout);
  }
  try {
    return await handshake(conn, options);
  } catch {
    // A peer that hangs up, resets, or is cut by the deadline.
    return "failed";
  } finally {
    clearTimeout(timer);
  }
}

async function handshake(
  conn: Deno.Conn,
  options: AcceptOptions,
): Promise<Accepted | HandshakeEnd> {
  const parser = new RequestHeadParser(options);
  const buffer = new Uint8Array(READ_BUFFER);
  let used = -1;
  let n = 0;
  while (used < 0) {
    const read = await conn.read(buffer);
    if (read === null) return "failed";
    n = read;
    try {
      used = parser.push(buffer.subarray(0, n));
    } catch (error) {
      const status = (error as { status?: number }).status ?? 400;
      await writeAll(
        conn,
        httpResponse(status, (error as Error).message + "\n"),
      );
      return "refused";
    }
  }
  const request = parser.head!;
  const decision = checkUpgrade(request, options);
  if (decision.kind === "reject") {
    await writeAll(conn, decision.response);
    return "refused";
  }
  if (decision.kind === "http") {
    await writeAll(conn, await serveHttp(request, conn, options));
    return "http";
  }
  await writeAll(
    conn,
    await upgradeResponse(decision.key, decision.protocol, decision.extensions),
  );
  return {
    request,
    protocol: decision.protocol,
    deflate: decision.deflate,
    // Copied: the read buffer is not kept.
    prelude: buffer.slice(used, n),
  };
}

/**
 * Answers a connection refused before its handshake (over a connection
 * limit) with `status` and `Connection: close`, ends our side, and closes
 * the connection once the peer has hung up. Reads and
 * drops what the peer sends until it hangs up, for at most `linger`
 * milliseconds: closing with its request unread would reset the
 * connection, and a reset may destroy the answer before the peer reads it.
 * Never throws.
 */
export async function refuseWebSocket(
  conn: Deno.Conn,
  status: number,
  message: string,
  linger: number,
): Promise<void> {
  // The only way to end a pending read or write is to close the connection.
  const timer = setTimeout(() => closeQuietly(conn), linger);
  try {
    await writeAll(conn, httpResponse(status, message + "\n"));
    // Our FIN tells the peer the answer is whole; it then hangs up.
    await conn.closeWrite();
    const buffer = new Uint8Array(1024);
    while (await conn.read(buffer) !== null) {
      // Dropped: the request of a connection we refuse.
    }
  } catch {
    // The peer hung up or reset, or the linger ran out.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

async function serveHttp(
  head: HttpRequestHead,
  conn: Deno.Conn,
  options: AcceptOptions,
): Promise<Uint8Array> {
  const serve = options.serve;
  if (serve === undefined) return httpResponse(404, "Not found\n");
  let request: Request;
  try {
    const scheme = "tls" in conn || "handshake" in conn ? "https" : "http";
    const host = head.headers.get("host") ?? "localhost";
    request = new Request(new URL(head.target, `${scheme}://${host}`), {
      method: head.method,
      headers: [...head.headers],
    });
  } catch {
    return httpResponse(400, "Bad request\n");
  }
  try {
    const response = await serve(request);
    const status = response.status;
    const body = head.method === "HEAD"
      ? new Uint8Array(0)
      : new Uint8Array(await response.arrayBuffer());
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      // httpResponse sets these three itself (Content-Type by default).
      if (name === "content-type") headers["Content-Type"] = value;
      else if (name !== "content-length" && name !== "connection") {
        headers[name] = value;
      }
    });
    if (status < 200) throw new RangeError(`Invalid status ${status}`);
    return httpResponse(status, body, headers);
  } catch (error) {
    options.onError(error);
    return httpResponse(500, "Internal server error\n");
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await conn.write(bytes.subarray(at));
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
