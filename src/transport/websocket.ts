// WebSocket (RFC 6455) over TCP or TLS. The listener yields connections
// with their opening handshake done: the upgrade request, the subprotocol
// and the bytes read past the head (the peer's first frames); a connection
// over a limit is told why (429/503) instead of being dropped. The dialer
// runs the client's handshake. Framing is the codec adapter's
// (src/websocket/websocket_codec.ts), chosen here once per server or
// client.
import type { Codec } from "../codec/codec.ts";
import type { WebSocketListenOptions } from "../websocket/websocket_listen.ts";
import {
  upgradeRequest,
  type WebSocketRequest,
} from "../websocket/websocket_request.ts";
import { webSocketCodec } from "../websocket/websocket_codec.ts";
import { adaptCodec, compressedAdapter } from "../websocket/_adapt.ts";
import type {
  DeflateParams,
  PerMessageDeflateOptions,
} from "../websocket/_deflate.ts";
import {
  type AcceptOptions,
  acceptWebSocket,
  refuseWebSocket,
} from "../websocket/_accept.ts";
import { clientHandshake } from "../websocket/_handshake.ts";
import { dialWebSocket } from "../websocket/_dial.ts";
import { DEFAULT_HANDSHAKE_TIMEOUT } from "../defaults.ts";
import type { Attempt, Listener, Transport } from "./transport.ts";
import type { TransportStats, WebSocketServerStats } from "./stats.ts";
import { bindTcp, dialTcp } from "./tcp.ts";
import { closeQuietly, type Connection } from "./connection.ts";

/** A connection past its WebSocket handshake. */
export interface WebSocketConnection extends Connection {
  /** The upgrade request (on the client: `undefined`, it made it). */
  readonly request: WebSocketRequest | undefined;
}

/** Where and how the client dials a WebSocket server. */
export interface WebSocketDialOptions {
  url?: string | URL | undefined;
  protocols?: readonly string[] | undefined;
  origin?: string | undefined;
  keepAlive?: boolean | undefined;
  noDelay?: boolean | undefined;
  tls?: true | { caCerts?: string[] } | undefined;
  perMessageDeflate?: boolean | PerMessageDeflateOptions | undefined;
}

// How long a refused peer has to read its 429/503, and how many refusals
// may be pending at once.
const REFUSAL_LINGER = 2000;
const MAX_REFUSING = 64;

/**
 * A WebSocket server's listener: runs each admitted connection's
 * handshake and counts how handshakes end. Package-internal.
 */
export class WebSocketListener implements Listener {
  readonly addr: Deno.Addr;
  readonly #listener: Deno.Listener;
  readonly #accept: AcceptOptions;
  // Refusals still running (the server awaits the handshakes it started).
  readonly #pending = new Set<Promise<void>>();
  // Connections being told they are refused (429/503).
  readonly #refusing = new Set<Deno.Conn>();
  readonly #stats: WebSocketServerStats = {
    handshakeRefused: 0,
    handshakeFailed: 0,
    httpRequests: 0,
  };

  constructor(
    options: WebSocketListenOptions,
    onError: (error: unknown) => void,
  ) {
    this.#accept = {
      ...options,
      handshakeTimeout: options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
      onError,
    };
    this.#listener = bindTcp(options);
    this.addr = this.#listener.addr;
  }

  accept(): Promise<Deno.Conn> {
    return this.#listener.accept();
  }

  open(conn: Deno.Conn): Promise<WebSocketConnection | undefined> {
    return acceptWebSocket(conn, this.#accept).then(
      (accepted): WebSocketConnection | undefined => {
        if (accepted === "refused") this.#stats.handshakeRefused++;
        else if (accepted === "failed") this.#stats.handshakeFailed++;
        else if (accepted === "http") this.#stats.httpRequests++;
        if (typeof accepted === "string") {
          closeQuietly(conn);
          return undefined;
        }
        const { request, protocol, prelude, deflate } = accepted;
        return {
          conn,
          // Kept for the session's life: an empty one is ~0.2 KB for nothing.
          prelude: prelude.byteLength === 0 ? undefined : prelude,
          adapt: deflate === undefined ? undefined : compressing(deflate),
          request: upgradeRequest(request, protocol),
        };
      },
    );
  }

  // A WebSocket peer speaks HTTP, and is told why (a browser reports a
  // failed handshake either way, but other clients and logs show the
  // status): 503 when the server is full, 429 when this address holds its
  // share. Bounded: each answer lingers at most REFUSAL_LINGER, and past
  // MAX_REFUSING at once the rest are closed without one.
  refuse(conn: Deno.Conn, status: 429 | 503, message: string): void {
    if (this.#refusing.size >= MAX_REFUSING) {
      closeQuietly(conn);
      return;
    }
    this.#refusing.add(conn);
    const timeout = this.#accept.handshakeTimeout;
    const refusal = refuseWebSocket(
      conn,
      status,
      message,
      timeout > 0 ? Math.min(timeout, REFUSAL_LINGER) : REFUSAL_LINGER,
    ).finally(() => {
      this.#refusing.delete(conn);
      this.#pending.delete(refusal);
    });
    this.#pending.add(refusal);
  }

  close(): void {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
  }

  settled(): Promise<void> {
    for (const conn of this.#refusing) closeQuietly(conn);
    return Promise.all(this.#pending).then(ignore);
  }

  stats(): TransportStats {
    return { websocket: { ...this.#stats } };
  }
}

/**
 * Dials `options.url` and runs the client's handshake.
 *
 * @throws {HandshakeError} When the server refused or answered wrongly.
 */
export async function dialWebSocketConnection(
  options: WebSocketDialOptions,
  attempt: Attempt,
): Promise<WebSocketConnection> {
  const handshake = clientHandshake(options.url!, {
    ...(options.protocols === undefined
      ? {}
      : { protocols: options.protocols }),
    ...(options.origin === undefined ? {} : { origin: options.origin }),
    ...(options.perMessageDeflate === undefined
      ? {}
      : { perMessageDeflate: options.perMessageDeflate }),
  });
  const tls = options.tls ?? (handshake.secure ? true : undefined);
  const conn = await dialTcp({
    hostname: handshake.hostname,
    port: handshake.port,
    keepAlive: options.keepAlive,
    noDelay: options.noDelay,
    tls,
  }, attempt);
  try {
    const { prelude, deflate } = await dialWebSocket(conn, handshake);
    return {
      conn,
      prelude,
      request: undefined,
      adapt: deflate === undefined ? undefined : compressing(deflate),
    };
  } catch (error) {
    closeQuietly(conn);
    throw error;
  }
}

/** The WebSocket transport. */
export const websocket: Transport<
  WebSocketListenOptions,
  WebSocketDialOptions
> = {
  codec: <In, Out>(
    codec: Codec<In, Out>,
    role: "server" | "client",
    max: number | undefined,
    who: string,
  ): Codec<In, Out> =>
    // One adapter for every session: a broadcast encodes once for all.
    // Decided before binding: a codec of the wrong role throws.
    adaptCodec(codec, role, max, who, (plain) =>
      webSocketCodec(plain, {
        ...(role === "client" ? { role } : {}),
        ...(max === undefined ? {} : { maxMessageBytes: max }),
      })),
  listen: (options, onError) => new WebSocketListener(options, onError),
  dial: dialWebSocketConnection,
};

function ignore(): void {}

// Swaps a session's adapter for its compressing variant (one per adapter
// and parameters, shared by every session that negotiated them).
function compressing(
  params: DeflateParams,
  // deno-lint-ignore no-explicit-any
): <C extends Codec<any, any>>(codec: C) => C {
  // deno-lint-ignore no-explicit-any
  return <C extends Codec<any, any>>(codec: C): C =>
    compressedAdapter(codec, params) as C;
}
