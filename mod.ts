/**
 * microsocket: sessions, rooms and broadcast for TCP servers on Deno.
 *
 * Each accepted `Deno.Conn` becomes a {@linkcode Session} that owns the
 * connection's single writer, so writes never interleave; frames queued in
 * the same turn leave in one write, and a per-session byte budget keeps slow
 * peers from eating memory. A {@linkcode SessionManager} finds sessions by
 * id, sends by id, broadcasts (encoding once for everyone) and keeps rooms.
 * Codecs ({@linkcode lines}, {@linkcode lengthPrefixed}, …) frame the bytes
 * and reject hostile input before allocating for it.
 *
 * @example A chat room
 * ```ts
 * import { listen, lines } from "@x/microsocket";
 *
 * const server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: lines({ maxLineBytes: 4096 }),
 *   onMessage: (session, line): void => {
 *     server.sessions.broadcast(`${session.id}: ${line}`, { except: session });
 *   },
 * });
 * console.log("listening on", server.addr);
 * await server.shutdown();
 * ```
 *
 * @module
 */
export * from "./src/errors.ts";
export * from "./src/close_reason.ts";
export * from "./src/codec/codec.ts";
export * from "./src/codec/lines.ts";
export * from "./src/codec/length_prefixed.ts";
export * from "./src/session/options.ts";
export * from "./src/session/session.ts";
export * from "./src/session_manager.ts";
export * from "./src/rooms.ts";
export * from "./src/server.ts";
export type { RecoveryOptions } from "./src/recovery/server_recovery.ts";
export type { ClientRecoveryOptions } from "./src/recovery/client_recovery.ts";
export * from "./src/metrics/prometheus.ts";
export * from "./src/metrics/handler.ts";
export type { MetricsServers } from "./src/metrics/_collect.ts";
export * from "./src/cluster_bridge.ts";
export * from "./src/recovery/backplane.ts";
export * from "./src/codec/json.ts";
export * from "./src/codec/microsocket.ts";
export * from "./src/router.ts";
export * from "./src/client/options.ts";
export * from "./src/client/client.ts";
export * from "./src/websocket/websocket_codec.ts";
export * from "./src/websocket/websocket_listen.ts";
export {
  type WebSocketRequest,
  webSocketRequest,
} from "./src/websocket/websocket_request.ts";
export * from "./src/transport/native.ts";
export type { WebSocketServerStats } from "./src/transport/stats.ts";
