// The options of a WebSocket server: where it listens and what its
// handshake accepts. `listen({ transport: "websocket" })` in server.ts takes
// them and hands them to the WebSocket transport (src/transport/websocket.ts);
// the handshake itself runs in _accept.ts, and each session's upgrade
// request is kept on its connection (read by websocket_request.ts).

import type { PerMessageDeflateOptions } from "./_deflate.ts";

export type { PerMessageDeflateOptions };

/**
 * Where and how a WebSocket server listens: RFC 6455 on the accepted TCP
 * (or TLS) connection, so that each WebSocket is an ordinary
 * {@linkcode Session} with the same codec message types, budgets, flow
 * control, liveness and shutdown as a TCP one.
 *
 * @example A WebSocket endpoint at /ws and a page at /
 * ```ts
 * import { listen, type WebSocketListenOptions } from "@x/microsocket";
 *
 * const where: WebSocketListenOptions = {
 *   transport: "websocket",
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   path: "/ws",
 *   serve: () => new Response("<!doctype html><title>hi</title>", {
 *     headers: { "content-type": "text/html; charset=utf-8" },
 *   }),
 * };
 * await using server = listen({ ...where });
 * ```
 */
export interface WebSocketListenOptions {
  /** RFC 6455 WebSocket over TCP (TLS with `tls`: `wss:`). */
  transport: "websocket";
  /**
   * The address to bind: loopback only unless told, as for TCP (see
   * {@linkcode TcpListenOptions.hostname}).
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
   * The `listen(2)` backlog; see {@linkcode TcpListenOptions.backlog}.
   *
   * @default {4096}
   */
  backlog?: number;
  /**
   * Let several processes listen on the same address and port (Linux;
   * needs `--unstable-net`), as for TCP.
   *
   * @default {false}
   */
  reusePort?: boolean;
  /** Serve `wss:` with this PEM certificate chain and private key. */
  tls?: { cert: string; key: string };
  /**
   * The most sessions open at once from one IP address, as for TCP.
   *
   * @default {Infinity}
   */
  maxConnectionsPerIp?: number;
  /**
   * Turn off Nagle's algorithm (TCP_NODELAY), as for TCP.
   *
   * @default {true}
   */
  noDelay?: boolean;
  /**
   * The path upgrade requests must target (the query is ignored); an upgrade
   * for another path gets 404. Unset: any path.
   *
   * @default {undefined}
   */
  path?: string;
  /**
   * Which `Origin`s may open a WebSocket: exact origins (compared
   * case-insensitively) or a function. A refused origin gets 403. A request
   * without `Origin` (not a browser) passes a list. Unset: every origin.
   *
   * @default {undefined}
   */
  origins?: readonly string[] | ((origin: string | undefined) => boolean);
  /**
   * The subprotocols spoken; the first the client offers that is listed is
   * chosen. Unset: subprotocols are ignored.
   *
   * @default {undefined}
   */
  protocols?: readonly string[];
  /**
   * Milliseconds from accepting a connection to the end of its handshake;
   * a slower peer (slowloris) is disconnected. `0` never times out.
   *
   * @default {10000}
   */
  handshakeTimeout?: number;
  /**
   * The largest request head, in bytes; more gets 431.
   *
   * @default {8192}
   */
  maxHeadBytes?: number;
  /**
   * The most request header fields; more gets 431.
   *
   * @default {64}
   */
  maxHeaders?: number;
  /**
   * Answers plain HTTP requests (not upgrades), e.g. a page at `/`: the
   * request has no body, and the connection closes after the response.
   * Unset: 404. A throw gets 500 and goes to `onError`.
   */
  serve?: (request: Request) => Response | Promise<Response>;
  /**
   * Compress messages with permessage-deflate (RFC 7692) for the clients
   * that offer it (every browser does): `true`, or options (see
   * {@linkcode PerMessageDeflateOptions}). Each message is compressed on its
   * own (`server_no_context_takeover`), so a broadcast is compressed once
   * for every member that negotiated it; the others get the plain frame.
   * Messages shorter than `threshold` go uncompressed.
   *
   * @default {false}
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
}
