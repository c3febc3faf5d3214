// The upgrade request each WebSocket session was opened with: the
// WebSocket listener (src/transport/websocket.ts) and upgradeWebSocket()
// (src/transport/native.ts) keep it on the connection they open, the
// session keeps that connection, and webSocketRequest() reads it back.
import type { DecoderLink } from "../codec/codec.ts";
import { connectionOf, parts, type WithParts } from "../session/_internals.ts";
import { type HttpRequestHead, requestHeaderFields } from "./_http_head.ts";

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

// The upgrade request as a session keeps it for its whole life: the head's
// text and the target, and the header map made from the text on the first
// read of `headers` (a million quiet sessions each hold one string, not a
// map of strings: issue 19 §4). Read-only, like the interface.
class UpgradeRequest implements WebSocketRequest {
  readonly target: string;
  // The target itself when it has no query (no string of its own).
  readonly path: string;
  readonly protocol: string | undefined;
  #text: string | undefined;
  #headers: ReadonlyMap<string, string> | undefined;

  constructor(head: HttpRequestHead, protocol: string | undefined) {
    this.target = head.target;
    this.path = head.path;
    this.protocol = protocol;
    if (head.text === undefined) this.#headers = head.headers;
    else this.#text = head.text;
  }

  get headers(): ReadonlyMap<string, string> {
    if (this.#headers === undefined) {
      // Valid when it arrived: parsing it again does not throw.
      this.#headers = requestHeaderFields(this.#text!);
      this.#text = undefined;
    }
    return this.#headers;
  }
}

/**
 * The request `webSocketRequest()` gives for a connection upgraded with
 * `head`, kept compact while no one reads its headers. Package-internal.
 *
 * @param head The upgrade request's head, as the handshake parsed it.
 * @param protocol The subprotocol chosen, if any.
 * @returns The request.
 *
 * @example
 * ```ts
 * import { upgradeRequest } from "./websocket_request.ts";
 * import { RequestHeadParser } from "./_http_head.ts";
 * import assert from "node:assert/strict";
 *
 * const parser = new RequestHeadParser();
 * parser.push(new TextEncoder().encode("GET /ws?a=1 HTTP/1.1\r\nHost: h\r\n\r\n"));
 * const request = upgradeRequest(parser.head!, undefined);
 * assert.equal(request.path, "/ws");
 * assert.equal(request.headers.get("host"), "h");
 * assert.equal(request.headers, request.headers);
 * ```
 */
export function upgradeRequest(
  head: HttpRequestHead,
  protocol: string | undefined,
): WebSocketRequest {
  return new UpgradeRequest(head, protocol);
}
