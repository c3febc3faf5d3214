// Package-internal: the WebSocket opening handshake (RFC 6455 section 4) on
// both sides, over heads parsed by `_http_head.ts`. The server side decides
// what to do with a request (upgrade it, answer it as plain HTTP, or refuse
// it with the right status) and builds the response bytes; the client side
// builds an upgrade request and checks the server's answer. No sockets here:
// bytes in, bytes and decisions out.
import type { HttpRequestHead, HttpResponseHead } from "./_http_head.ts";
import {
  acceptDeflateResponse,
  CLIENT_OFFER,
  deflateConfig,
  type DeflateParams,
  negotiateDeflate,
  type PerMessageDeflateOptions,
} from "./_deflate.ts";

/** The GUID RFC 6455 section 1.3 appends to a key before hashing it. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// A base64 encoding of exactly 16 bytes, canonical padding bits.
const KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

const encoder = new TextEncoder();

/**
 * Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64 of the
 * SHA-1 of the key followed by the RFC's GUID.
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @returns The matching `Sec-WebSocket-Accept` value.
 *
 * @example The example of RFC 6455 section 1.3
 * ```ts
 * import { acceptKey } from "./_handshake.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="),
 *   "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
 * );
 * ```
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + GUID),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/**
 * Options for {@linkcode checkUpgrade}.
 *
 * @example Only `/ws`, only from one site, speaking `chat.v1`
 * ```ts
 * import type { UpgradeOptions } from "./_handshake.ts";
 *
 * const options: UpgradeOptions = {
 *   path: "/ws",
 *   origins: ["https://chat.example"],
 *   protocols: ["chat.v1"],
 * };
 * ```
 */
export interface UpgradeOptions {
  /**
   * The path upgrade requests must target (the query is ignored); an upgrade
   * request for another path is refused with 404. Unset: any path.
   *
   * @default {undefined}
   */
  path?: string;
  /**
   * Which `Origin`s may open a WebSocket: a list of exact origins
   * (`"https://chat.example"`, compared case-insensitively) or a function.
   * A refused origin gets 403. This is the defence against cross-site
   * WebSocket hijacking by browsers; a request without `Origin` (not a
   * browser, which could send any origin anyway) passes a list, and a
   * function receives `undefined` for it. Unset: every origin.
   *
   * @default {undefined}
   */
  origins?: readonly string[] | ((origin: string | undefined) => boolean);
  /**
   * The subprotocols this server speaks. The first one, in the client's
   * order, that the client offers and this list contains is chosen and
   * echoed in `Sec-WebSocket-Protocol`; when none match, the header is
   * left out (the client then decides whether to go on, as a browser's
   * `WebSocket` fails the connection). Unset: subprotocols are ignored.
   *
   * @default {undefined}
   */
  protocols?: readonly string[];
  /**
   * Accept permessage-deflate (RFC 7692) when the client offers it; see
   * {@linkcode PerMessageDeflateOptions}. Unset: no extension is accepted.
   *
   * @default {false}
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
}

/**
 * What {@linkcode checkUpgrade} decided about a request:
 * - `"upgrade"`: a valid WebSocket upgrade; answer with
 *   {@linkcode upgradeResponse}`(key, protocol)` and switch to frames;
 * - `"http"`: not an upgrade request at all (no `Upgrade: websocket`); the
 *   server may answer it as plain HTTP (a page, or 404) with
 *   {@linkcode httpResponse};
 * - `"reject"`: an upgrade request that breaks a rule; send `response` and
 *   close.
 */
export type UpgradeDecision =
  | {
    readonly kind: "upgrade";
    /** The client's `Sec-WebSocket-Key`. */
    readonly key: string;
    /** The chosen subprotocol, if any. */
    readonly protocol: string | undefined;
    /** The permessage-deflate agreed on, if any. */
    readonly deflate?: DeflateParams | undefined;
    /** The `Sec-WebSocket-Extensions` answer, if any. */
    readonly extensions?: string | undefined;
  }
  | { readonly kind: "http" }
  | {
    readonly kind: "reject";
    /** 400, 403, 404, 405 or 426. */
    readonly status: number;
    /** Why, for logs (also the response body). */
    readonly message: string;
    /** The whole response to send before closing. */
    readonly response: Uint8Array;
  };

/**
 * Decides what to do with a request head on a WebSocket server (RFC 6455
 * section 4.2.1): upgrade it, treat it as plain HTTP, or reject it with the
 * status the RFC asks for (405 for a method other than GET, 400 for a
 * malformed upgrade, 404 for another path, 426 with
 * `Sec-WebSocket-Version: 13` for another protocol version, 403 for a
 * refused origin).
 *
 * @param request The parsed request head.
 * @param options Path, origins and subprotocols.
 * @returns The decision; see {@linkcode UpgradeDecision}.
 *
 * @example
 * ```ts
 * import { checkUpgrade } from "./_handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const decision = checkUpgrade({
 *   method: "GET",
 *   target: "/ws",
 *   path: "/ws",
 *   version: "HTTP/1.1",
 *   headers: new Map([
 *     ["host", "127.0.0.1"],
 *     ["upgrade", "websocket"],
 *     ["connection", "keep-alive, Upgrade"],
 *     ["sec-websocket-version", "13"],
 *     ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
 *     ["sec-websocket-protocol", "chat.v2, chat.v1"],
 *   ]),
 * }, { path: "/ws", protocols: ["chat.v1"] });
 * assert.equal(decision.kind, "upgrade");
 * assert.equal(decision.kind === "upgrade" && decision.protocol, "chat.v1");
 * ```
 */
export function checkUpgrade(
  request: HttpRequestHead,
  options: UpgradeOptions = {},
): UpgradeDecision {
  const headers = request.headers;
  if (!hasToken(headers.get("upgrade"), "websocket")) return { kind: "http" };
  if (request.method !== "GET") {
    return reject(405, "WebSocket upgrades use GET", { Allow: "GET" });
  }
  if (request.version !== "HTTP/1.1") {
    return reject(400, "WebSocket upgrades need HTTP/1.1");
  }
  if (options.path !== undefined && request.path !== options.path) {
    return reject(404, "No WebSocket endpoint at this path");
  }
  if (!hasToken(headers.get("connection"), "upgrade")) {
    return reject(400, "Connection header lacks the upgrade token");
  }
  if (!headers.has("host")) return reject(400, "Host header missing");
  if (headers.get("sec-websocket-version") !== "13") {
    return reject(426, "Unsupported WebSocket version", {
      "Sec-WebSocket-Version": "13",
    });
  }
  const key = headers.get("sec-websocket-key");
  if (key === undefined || !KEY.test(key)) {
    return reject(400, "Invalid Sec-WebSocket-Key");
  }
  const origin = headers.get("origin");
  if (!originAllowed(origin, options.origins)) {
    return reject(403, "Origin not allowed");
  }
  let protocol: string | undefined;
  const offered = headers.get("sec-websocket-protocol");
  if (options.protocols !== undefined && offered !== undefined) {
    const supported = options.protocols;
    protocol = splitList(offered).find((p) => supported.includes(p));
  }
  const config = deflateConfig(options.perMessageDeflate);
  const deflate = config === undefined
    ? undefined
    : negotiateDeflate(headers.get("sec-websocket-extensions"), config);
  if (deflate === undefined) return { kind: "upgrade", key, protocol };
  return {
    kind: "upgrade",
    key,
    protocol,
    deflate: deflate.params,
    extensions: deflate.response,
  };
}

function originAllowed(
  origin: string | undefined,
  allowed: UpgradeOptions["origins"],
): boolean {
  if (allowed === undefined) return true;
  if (typeof allowed === "function") return allowed(origin);
  if (origin === undefined) return true;
  const lower = origin.toLowerCase();
  return allowed.some((o) => o.toLowerCase() === lower);
}

/**
 * Builds the `101 Switching Protocols` response that accepts an upgrade.
 *
 * @param key The client's `Sec-WebSocket-Key` (from an `"upgrade"`
 * decision).
 * @param protocol The chosen subprotocol, if any.
 * @param extensions The `Sec-WebSocket-Extensions` answer, if any.
 * @returns The response head's bytes; frames may follow right after.
 *
 * @example
 * ```ts
 * import { upgradeResponse } from "./_handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = await upgradeResponse("dGhlIHNhbXBsZSBub25jZQ==", undefined);
 * const text = new TextDecoder().decode(bytes);
 * assert.ok(text.startsWith("HTTP/1.1 101 Switching Protocols\r\n"));
 * assert.ok(text.includes("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
 * ```
 */
export async function upgradeResponse(
  key: string,
  protocol: string | undefined,
  extensions?: string,
): Promise<Uint8Array> {
  let head = "HTTP/1.1 101 Switching Protocols\r\n" +
    "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n`;
  if (protocol !== undefined) head += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  if (extensions !== undefined) {
    head += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  }
  return encoder.encode(head + "\r\n");
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/**
 * Builds a complete plain HTTP/1.1 response that closes the connection:
 * for requests that are not upgrades (a page, a 404) and for refusals.
 *
 * @param status The status code, 200 to 599.
 * @param body The body: text is sent as UTF-8.
 * @param headers Extra header fields; `Content-Type` defaults to
 * `text/plain; charset=utf-8`. `Content-Length` and `Connection: close` are
 * always set.
 * @returns The response's bytes.
 * @throws {RangeError} When the status is out of range.
 * @throws {TypeError} When a header name or value is not valid.
 *
 * @example A page
 * ```ts
 * import { httpResponse } from "./_handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = httpResponse(200, "<p>hi</p>", {
 *   "Content-Type": "text/html; charset=utf-8",
 * });
 * const text = new TextDecoder().decode(bytes);
 * assert.ok(text.startsWith("HTTP/1.1 200 OK\r\n"));
 * assert.ok(text.endsWith("\r\n\r\n<p>hi</p>"));
 * ```
 */
export function httpResponse(
  status: number,
  body: string | Uint8Array = "",
  headers: Readonly<Record<string, string>> = {},
): Uint8Array {
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new RangeError(`Invalid status ${status}`);
  }
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const fields: Record<string, string> = {
    "Content-Type": "text/plain; charset=utf-8",
    ...headers,
    "Content-Length": String(bytes.length),
    "Connection": "close",
  };
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ""}\r\n`;
  for (const [name, value] of Object.entries(fields)) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new TypeError(`Invalid header field ${JSON.stringify(name)}`);
    }
    head += `${name}: ${value}\r\n`;
  }
  const head8 = encoder.encode(head + "\r\n");
  const out = new Uint8Array(head8.length + bytes.length);
  out.set(head8);
  out.set(bytes, head8.length);
  return out;
}

function reject(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): UpgradeDecision {
  return {
    kind: "reject",
    status,
    message,
    response: httpResponse(status, message + "\n", headers),
  };
}

// Comma-separated list elements, trimmed, empty ones dropped.
function splitList(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function hasToken(value: string | undefined, token: string): boolean {
  return value !== undefined &&
    splitList(value).some((t) => t.toLowerCase() === token);
}

/**
 * Options for {@linkcode clientHandshake}.
 *
 * @example
 * ```ts
 * import type { ClientHandshakeOptions } from "./_handshake.ts";
 *
 * const options: ClientHandshakeOptions = {
 *   protocols: ["chat.v1"],
 *   headers: { "User-Agent": "microsocket" },
 * };
 * ```
 */
export interface ClientHandshakeOptions {
  /**
   * Subprotocols to offer, in order of preference.
   *
   * @default {[]}
   */
  protocols?: readonly string[];
  /**
   * An `Origin` header to send (browsers always send one; other clients
   * need not).
   *
   * @default {undefined}
   */
  origin?: string;
  /**
   * Extra header fields for the request.
   *
   * @default {{}}
   */
  headers?: Readonly<Record<string, string>>;
  /**
   * Offer permessage-deflate (RFC 7692), with `server_no_context_takeover`.
   *
   * @default {false}
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
}

/**
 * A client's opening handshake, ready to send: see
 * {@linkcode clientHandshake}.
 */
export interface ClientHandshake {
  /** The request bytes to write once connected. */
  readonly request: Uint8Array;
  /** The random `Sec-WebSocket-Key` sent, to check the response with. */
  readonly key: string;
  /** The host to connect to (brackets removed from an IPv6 literal). */
  readonly hostname: string;
  /** The port to connect to (80 or 443 when the URL has none). */
  readonly port: number;
  /** Whether the URL is `wss:` (connect with TLS). */
  readonly secure: boolean;
  /** The subprotocols offered. */
  readonly protocols: readonly string[];
  /** The compression offered (threshold and level), if any. */
  readonly deflate?: { threshold: number; level: number } | undefined;
}

/**
 * Builds a client's upgrade request for a `ws:` or `wss:` URL, with a fresh
 * random 16-byte key (RFC 6455 section 4.1).
 *
 * @param url The server's URL, e.g. `ws://127.0.0.1:9001/ws`.
 * @param options Subprotocols, origin, extra headers.
 * @returns The request and what to connect to.
 * @throws {TypeError} When the URL is not `ws:`/`wss:`, has a fragment, or a
 * subprotocol or header is not valid.
 *
 * @example
 * ```ts
 * import { clientHandshake } from "./_handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const handshake = clientHandshake("ws://127.0.0.1:9001/ws?room=a");
 * const text = new TextDecoder().decode(handshake.request);
 * assert.ok(text.startsWith("GET /ws?room=a HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"));
 * assert.equal(handshake.port, 9001);
 * assert.equal(handshake.key.length, 24);
 * ```
 */
export function clientHandshake(
  url: string | URL,
  options: ClientHandshakeOptions = {},
): ClientHandshake {
  const parsed = new URL(url);
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new TypeError(`Not a WebSocket URL: ${parsed.href}`);
  }
  if (parsed.hash !== "") {
    throw new TypeError("A WebSocket URL has no fragment");
  }
  const secure = parsed.protocol === "wss:";
  const protocols = options.protocols ?? [];
  for (const protocol of protocols) {
    if (!TOKEN.test(protocol)) {
      throw new TypeError(`Invalid subprotocol ${JSON.stringify(protocol)}`);
    }
  }
  const random = crypto.getRandomValues(new Uint8Array(16));
  const key = btoa(String.fromCharCode(...random));
  let head = `GET ${parsed.pathname}${parsed.search} HTTP/1.1\r\n` +
    `Host: ${parsed.host}\r\n` +
    "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
  if (protocols.length > 0) {
    head += `Sec-WebSocket-Protocol: ${protocols.join(", ")}\r\n`;
  }
  const deflate = deflateConfig(options.perMessageDeflate);
  if (deflate !== undefined) {
    head += `Sec-WebSocket-Extensions: ${CLIENT_OFFER}\r\n`;
  }
  const extra: Record<string, string> = { ...options.headers };
  if (options.origin !== undefined) extra["Origin"] = options.origin;
  for (const [name, value] of Object.entries(extra)) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new TypeError(`Invalid header field ${JSON.stringify(name)}`);
    }
    head += `${name}: ${value}\r\n`;
  }
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  return {
    request: encoder.encode(head + "\r\n"),
    key,
    hostname,
    port: parsed.port === "" ? (secure ? 443 : 80) : Number(parsed.port),
    secure,
    protocols,
    deflate,
  };
}

/**
 * Raised on the client side when the server's answer to an upgrade request
 * is not a valid acceptance.
 *
 * @example
 * ```ts
 * import { HandshakeError } from "./_handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new HandshakeError("Expected status 101, got 404", 404);
 * assert.equal(error.status, 404);
 * ```
 */
export class HandshakeError extends Error {
  /** The response's status code. */
  readonly status: number;

  /**
   * Creates a handshake error.
   *
   * @param message What was wrong with the response.
   * @param status The response's status code.
   */
  constructor(message: string, status: number) {
    super(message);
    this.name = "HandshakeError";
    this.status = status;
  }
}

/**
 * Checks a server's response to {@linkcode clientHandshake}'s request (RFC
 * 6455 section 4.1): status 101, `Upgrade: websocket`, `Connection:
 * upgrade`, the right `Sec-WebSocket-Accept`, and a subprotocol only if one
 * was offered.
 *
 * @param response The parsed response head.
 * @param handshake The handshake the request came from.
 * @returns The subprotocol the server chose, if any.
 * @throws {HandshakeError} When the response does not accept the upgrade.
 *
 * @example
 * ```ts
 * import {
 *   acceptKey,
 *   checkUpgradeResponse,
 *   clientHandshake,
 * } from "./_handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const handshake = clientHandshake("ws://127.0.0.1:9001/");
 * const protocol = await checkUpgradeResponse({
 *   version: "HTTP/1.1",
 *   status: 101,
 *   statusText: "Switching Protocols",
 *   headers: new Map([
 *     ["upgrade", "websocket"],
 *     ["connection", "Upgrade"],
 *     ["sec-websocket-accept", await acceptKey(handshake.key)],
 *   ]),
 * }, handshake);
 * assert.equal(protocol, undefined);
 * ```
 */
export async function checkUpgradeResponse(
  response: HttpResponseHead,
  handshake: ClientHandshake,
): Promise<string | undefined> {
  const status = response.status;
  const fail = (message: string) => new HandshakeError(message, status);
  if (status !== 101) {
    throw fail(`Expected status 101, got ${status} ${response.statusText}`);
  }
  const headers = response.headers;
  if (!hasToken(headers.get("upgrade"), "websocket")) {
    throw fail("Upgrade header is not websocket");
  }
  if (!hasToken(headers.get("connection"), "upgrade")) {
    throw fail("Connection header lacks the upgrade token");
  }
  if (headers.get("sec-websocket-accept") !== await acceptKey(handshake.key)) {
    throw fail("Wrong Sec-WebSocket-Accept");
  }
  const extensions = headers.get("sec-websocket-extensions");
  if (extensions !== undefined) {
    if (handshake.deflate === undefined) {
      throw fail("Server chose an extension that was not offered");
    }
    const agreed = acceptDeflateResponse(extensions, handshake.deflate);
    if (typeof agreed === "string") throw fail(agreed);
  }
  const protocol = headers.get("sec-websocket-protocol");
  if (protocol !== undefined && !handshake.protocols.includes(protocol)) {
    throw fail(`Server chose a subprotocol that was not offered: ${protocol}`);
  }
  return protocol;
}

/**
 * The permessage-deflate a server's response (already checked by
 * {@linkcode checkUpgradeResponse}) agreed to, if any.
 *
 * @param response The parsed response head.
 * @param handshake The handshake the request came from.
 * @returns The parameters, or `undefined` when the server declined.
 *
 * @example
 * ```ts
 * import { clientHandshake, negotiatedDeflate } from "./_handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const handshake = clientHandshake("ws://127.0.0.1:9001/", {
 *   perMessageDeflate: true,
 * });
 * const params = negotiatedDeflate({
 *   version: "HTTP/1.1",
 *   status: 101,
 *   statusText: "Switching Protocols",
 *   headers: new Map([[
 *     "sec-websocket-extensions",
 *     "permessage-deflate; server_no_context_takeover",
 *   ]]),
 * }, handshake);
 * assert.equal(params?.windowBits, 15);
 * ```
 */
export function negotiatedDeflate(
  response: HttpResponseHead,
  handshake: ClientHandshake,
): DeflateParams | undefined {
  const extensions = response.headers.get("sec-websocket-extensions");
  if (extensions === undefined || handshake.deflate === undefined) {
    return undefined;
  }
  const agreed = acceptDeflateResponse(extensions, handshake.deflate);
  return typeof agreed === "string" ? undefined : agreed;
}
