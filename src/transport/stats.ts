// The counters a transport keeps besides the server's own: only WebSocket
// has any (its handshake), and they appear in `server.stats()` under the
// transport's name, only for a server of that transport.

/**
 * A WebSocket server's handshake counters, in `server.stats().websocket`
 * (present only when the server's transport is `"websocket"`).
 *
 * @example Reading them
 * ```ts
 * import { listen, type WebSocketServerStats } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ transport: "websocket", hostname: "127.0.0.1", port: 0 });
 * const stats: WebSocketServerStats | undefined = server.stats().websocket;
 * assert.deepEqual(stats, { handshakeRefused: 0, handshakeFailed: 0, httpRequests: 0 });
 * ```
 */
export interface WebSocketServerStats {
  /**
   * Upgrade requests (or request heads) answered with a refusal (400, 403,
   * 404, 405, 426, 431).
   */
  handshakeRefused: number;
  /**
   * Handshakes the peer abandoned (hang-up, reset) or that
   * `handshakeTimeout` cut.
   */
  handshakeFailed: number;
  /** Plain HTTP requests answered (by `serve`, else 404). */
  httpRequests: number;
}

/** A transport's own counters, under its name. Package-internal. */
export interface TransportStats {
  /** The WebSocket transport's handshake counters. */
  readonly websocket?: WebSocketServerStats;
}
