// The upgrade request each WebSocket session was opened with: the
// WebSocket listener (src/transport/websocket.ts) and upgradeWebSocket()
// (src/transport/native.ts) keep it on the connection they open, the
// session keeps that connection, and webSocketRequest() reads it back.
import type { DecoderLink } from "../codec/codec.ts";
import { connectionOf, parts, type WithParts } from "../session/_internals.ts";

/**
 * The upgrade request a WebSocket session was opened with; see
 * {@linkcode webSocketRequest}.
 *
 * @example
 * ```ts
 * import type { WebSocketRequest } from "@x/microsocket";
 *
 * const seen: WebSocketRequest = {
 *   target: "/ws?room=den",
 *   path: "/ws",
 *   headers: new Map([["host", "127.0.0.1"]]),
 *   protocol: undefined,
 * };
 * ```
 */
export interface WebSocketRequest {
  /** The request target: path and query, e.g. `/ws?room=den`. */
  readonly target: string;
  /** The target's path, without the query. */
  readonly path: string;
  /** The header fields by lower-case name (repeats joined with `", "`). */
  readonly headers: ReadonlyMap<string, string>;
  /** The subprotocol chosen, if any. */
  readonly protocol: string | undefined;
}

/**
 * The upgrade request of a session accepted by `listen({ transport:
 * "websocket" })` or made by `upgradeWebSocket()`: its path, query and
 * headers (a token, a cookie, the `Origin`) and the subprotocol chosen
 * (for `upgradeWebSocket()`, its `protocol` option). Set before `data()`
 * and `onOpen` run.
 *
 * @param session A session.
 * @returns The request, or `undefined` for a session that did not come
 * from a WebSocket server or `upgradeWebSocket()`.
 *
 * @example A room picked from the query
 * ```ts
 * import { listen, webSocketRequest } from "@x/microsocket";
 *
 * await using server = listen({
 *   transport: "websocket",
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   data: (session) => ({
 *     room: new URLSearchParams(
 *       webSocketRequest(session)?.target.split("?")[1],
 *     ).get("room") ?? "lobby",
 *   }),
 * });
 * ```
 */
export function webSocketRequest(
  session: DecoderLink,
): WebSocketRequest | undefined {
  // A session made by a WebSocket listener holds a connection with a
  // request; any other session, or another object, has none.
  if (typeof session !== "object" || session === null) return undefined;
  const link = session as Partial<WithParts>;
  if (link[parts] === undefined) return undefined;
  const connection = connectionOf(link as WithParts) as
    | { readonly request?: WebSocketRequest }
    | undefined;
  return connection?.request;
}
