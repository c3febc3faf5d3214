// Package-internal: the upgrade request of each WebSocket session a server
// accepted, for webSocketRequest().
import type { DecoderLink } from "../codec/codec.ts";
import type { WebSocketRequest } from "./websocket_listen.ts";

/** Filled by the server right after it creates a WebSocket session. */
export const upgradeRequests: WeakMap<DecoderLink, WebSocketRequest> =
  new WeakMap();
