// Package-internal: an incremental parser for the head of an HTTP/1.1
// message (start line and header fields, up to the empty line), which is all
// a WebSocket opening handshake reads (RFC 6455 section 4). The server side
// parses a request, the client side a response. Hostile input like every
// decoder: the size and header-count limits are checked before bytes are
// stored, storage grows with what arrives, and bytes after the head (the
// first WebSocket frames) are left to the caller.
import { DecodeError } from "../errors.ts";
import { sizeLimit } from "../codec/_limit.ts";
import { DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_HEADERS } from "../defaults.ts";

/**
 * Options for {@linkcode RequestHeadParser} and
 * {@linkcode ResponseHeadParser}.
 *
 * @example
 * ```ts
 * import { type HttpHeadOptions, RequestHeadParser } from "./_http_head.ts";
 *
 * const options: HttpHeadOptions = { maxHeadBytes: 4096, maxHeaders: 32 };
 * new RequestHeadParser(options);
 * ```
 */
export interface HttpHeadOptions {
  /**
   * The largest head accepted, in bytes, start line and final empty line
   * included. More is an {@linkcode HttpHeadError} with status 431.
   *
   * @default {8192}
   */
  maxHeadBytes?: number;
  /**
   * The most header fields accepted. More is an {@linkcode HttpHeadError}
   * with status 431.
   *
   * @default {64}
   */
  maxHeaders?: number;
}

/**
 * The head of an HTTP request.
 *
 * @example
 * ```ts
 * import type { HttpRequestHead } from "./_http_head.ts";
 *
 * const head: HttpRequestHead = {
 *   method: "GET",
 *   target: "/ws?room=a",
 *   path: "/ws",
 *   version: "HTTP/1.1",
 *   headers: new Map([["host", "127.0.0.1"]]),
 * };
 * ```
 */
export interface HttpRequestHead {
  /** The method, as sent (methods are case-sensitive): `"GET"`. */
  readonly method: string;
  /** The request target as sent: path and query, e.g. `/ws?room=a`. */
  readonly target: string;
  /** The target's path, without the query: `/ws`. */
  readonly path: string;
  /** The protocol version, e.g. `"HTTP/1.1"`. */
  readonly version: string;
  /**
   * The header fields by lower-case name. Repeated fields are joined with
   * `", "` (RFC 9110 section 5.3), so a repeated single-valued field such as
   * `Sec-WebSocket-Key` no longer validates.
   */
  readonly headers: ReadonlyMap<string, string>;
  /**
   * The head as it arrived, one character per byte (start line to the
   * final empty line), when a {@linkcode RequestHeadParser} made it:
   * {@linkcode requestHeaderFields} gives its `headers` again, for a
   * holder that keeps this one string rather than the map.
   */
  readonly text?: string;
}

/**
 * The header fields of a request head's text, as its
 * {@linkcode HttpRequestHead.headers}: parsed again from the text a
 * {@linkcode RequestHeadParser} kept (it was valid then, so this does not
 * throw for it).
 *
 * @param text {@linkcode HttpRequestHead.text}.
 * @returns The header fields by lower-case name.
 * @throws {HttpHeadError} 400 when the text is not a valid head.
 *
 * @example
 * ```ts
 * import { requestHeaderFields } from "./_http_head.ts";
 * import assert from "node:assert/strict";
 *
 * const fields = requestHeaderFields("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
 * assert.equal(fields.get("host"), "a");
 * ```
 */
export function requestHeaderFields(text: string): Map<string, string> {
  return parseFields(splitLines(text));
}

/**
 * The head of an HTTP response.
 *
 * @example
 * ```ts
 * import type { HttpResponseHead } from "./_http_head.ts";
 *
 * const head: HttpResponseHead = {
 *   version: "HTTP/1.1",
 *   status: 101,
 *   statusText: "Switching Protocols",
 *   headers: new Map([["upgrade", "websocket"]]),
 * };
 * ```
 */
export interface HttpResponseHead {
  /** The protocol version, e.g. `"HTTP/1.1"`. */
  readonly version: string;
  /** The status code. */
  readonly status: number;
  /** The reason phrase, possibly empty. */
  readonly statusText: string;
  /** The header fields by lower-case name; see {@linkcode HttpRequestHead}. */
  readonly headers: ReadonlyMap<string, string>;
}

/**
 * Raised when an HTTP head is malformed (status 400) or over a limit
 * (status 431). {@linkcode status} is the status to answer a request with.
 *
 * @example
 * ```ts
 * import { HttpHeadError } from "./_http_head.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new HttpHeadError("Too many header fields", 431).status, 431);
 * ```
 */
export class HttpHeadError extends DecodeError {
  /** 400 Bad Request or 431 Request Header Fields Too Large. */
  readonly status: 400 | 431;

  /**
   * Creates an HTTP head error.
   *
   * @param message What was wrong.
   * @param status 400 (malformed) or 431 (over a limit).
   */
  constructor(message: string, status: 400 | 431) {
    super(message);
    this.name = "HttpHeadError";
    this.status = status;
  }
}

const LF = 10;
const CR = 13;
const INITIAL_STORAGE = 512;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, obs-text, spaces and tabs; no other control.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const VERSION = /^HTTP\/[0-9]\.[0-9]$/;

/**
 * The shared machinery of {@linkcode RequestHeadParser} and
 * {@linkcode ResponseHeadParser}: feed chunks to {@linkcode push} until it
 * returns how many bytes of the last chunk belonged to the head; then
 * {@linkcode head} holds the parsed head.
 *
 * @typeParam H The parsed head's type.
 */
export abstract class HttpHeadParser<H> {
  readonly #maxBytes: number;
  readonly #maxHeaders: number;
  #storage: Uint8Array | undefined;
  #filled = 0;
  #lineLength = 0; // bytes of the current line so far, CRs not counted
  #lines = 0; // non-empty lines so far
  #head: H | undefined;

  /**
   * Creates a parser with empty state.
   *
   * @param options Limits.
   * @throws {RangeError} When a limit is not a positive integer.
   */
  constructor(options: HttpHeadOptions = {}) {
    this.#maxBytes = sizeLimit(
      "maxHeadBytes",
      options.maxHeadBytes,
      DEFAULT_MAX_HEAD_BYTES,
      16,
      1048576,
    );
    this.#maxHeaders = sizeLimit(
      "maxHeaders",
      options.maxHeaders,
      DEFAULT_MAX_HEADERS,
      1,
      10000,
    );
  }

  /** Bytes held for a head that has not completed yet. */
  get buffered(): number {
    return this.#head === undefined ? this.#filled : 0;
  }

  /** The parsed head, once {@linkcode push} has returned a count. */
  get head(): H | undefined {
    return this.#head;
  }

  /**
   * Consumes bytes of the head from `chunk`.
   *
   * @param chunk Bytes just read (copied as needed; not kept).
   * @returns `-1` while the head is incomplete (all of `chunk` was taken);
   * once it completes, how many bytes of `chunk` belonged to it: the rest
   * are the first bytes after the head.
   * @throws {HttpHeadError} 431 when the head outgrows `maxHeadBytes` or
   * `maxHeaders` (checked before storing), 400 when it is malformed.
   * @throws {TypeError} When called again after the head completed.
   */
  push(chunk: Uint8Array): number {
    if (this.#head !== undefined) {
      throw new TypeError("The head is already complete");
    }
    // Find the end of the head in this chunk before storing anything: an
    // empty line (CRLF CRLF, or bare LFs, which RFC 9112 allows to accept)
    // after at least one non-empty line. Empty lines before the start line
    // are skipped (RFC 9112 section 2.2).
    let end = -1;
    let lineLength = this.#lineLength;
    let lines = this.#lines;
    for (let i = 0; i < chunk.length; i++) {
      if (this.#filled + i >= this.#maxBytes) {
        throw new HttpHeadError("HTTP head too large", 431);
      }
      const byte = chunk[i]!;
      if (byte === LF) {
        if (lineLength > 0) {
          lineLength = 0;
          if (++lines > this.#maxHeaders + 1) {
            throw new HttpHeadError("Too many header fields", 431);
          }
        } else if (lines > 0) {
          end = i + 1;
          break;
        }
      } else if (byte !== CR) {
        lineLength++;
      }
    }
    this.#lineLength = lineLength;
    this.#lines = lines;
    const take = end < 0 ? chunk.length : end;
    this.#store(chunk.subarray(0, take));
    if (end < 0) return -1;
    const text = latin1(this.#storage!.subarray(0, this.#filled));
    this.#storage = undefined;
    this.#filled = 0;
    this.#head = this.parse(text);
    return end;
  }

  #store(bytes: Uint8Array): void {
    const needed = this.#filled + bytes.length;
    let storage = this.#storage;
    if (storage === undefined || needed > storage.length) {
      const grown = new Uint8Array(
        Math.min(
          this.#maxBytes,
          Math.max(needed, storage ? storage.length * 2 : INITIAL_STORAGE),
        ),
      );
      if (storage !== undefined) grown.set(storage.subarray(0, this.#filled));
      this.#storage = storage = grown;
    }
    storage.set(bytes, this.#filled);
    this.#filled = needed;
  }

  /**
   * Parses a complete head's text (one character per byte).
   *
   * @param text The head, from the start line to the final empty line.
   * @returns The parsed head.
   * @throws {HttpHeadError} 400 when it is malformed.
   */
  protected abstract parse(text: string): H;
}

/**
 * An incremental parser for the head of an HTTP request: what a WebSocket
 * server reads first. See {@linkcode HttpHeadParser.push}.
 *
 * @example A request arriving in two chunks, with a frame right behind it
 * ```ts
 * import { RequestHeadParser } from "./_http_head.ts";
 * import assert from "node:assert/strict";
 *
 * const head = "GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
 * const bytes = new Uint8Array([...new TextEncoder().encode(head), 0x81, 0]);
 * const parser = new RequestHeadParser();
 * assert.equal(parser.push(bytes.subarray(0, 10)), -1);
 * const used = parser.push(bytes.subarray(10));
 * assert.deepEqual([...bytes.subarray(10 + used)], [0x81, 0x00]);
 * assert.equal(parser.head?.path, "/ws");
 * assert.equal(parser.head?.headers.get("upgrade"), "websocket");
 * ```
 */
export class RequestHeadParser extends HttpHeadParser<HttpRequestHead> {
  /**
   * Parses a request head's text.
   *
   * @param text The head.
   * @returns The request head.
   * @throws {HttpHeadError} 400 when it is malformed.
   */
  protected parse(text: string): HttpRequestHead {
    const lines = splitLines(text);
    const parts = lines[0]!.split(" ");
    if (parts.length !== 3) throw malformed("Malformed request line");
    const [method, target, version] = parts as [string, string, string];
    if (!TOKEN.test(method)) throw malformed("Malformed request method");
    if (!VERSION.test(version)) throw malformed("Malformed HTTP version");
    if (!/^[\x21-\x7e]+$/.test(target)) {
      throw malformed("Malformed request target");
    }
    const query = target.indexOf("?");
    return {
      method,
      target,
      path: query < 0 ? target : target.slice(0, query),
      version,
      headers: parseFields(lines),
      text,
    };
  }
}

/**
 * An incremental parser for the head of an HTTP response: what a WebSocket
 * client reads first. See {@linkcode HttpHeadParser.push}.
 *
 * @example
 * ```ts
 * import { ResponseHeadParser } from "./_http_head.ts";
 * import assert from "node:assert/strict";
 *
 * const parser = new ResponseHeadParser();
 * const bytes = new TextEncoder().encode(
 *   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
 * );
 * assert.equal(parser.push(bytes), bytes.length);
 * assert.equal(parser.head?.status, 101);
 * ```
 */
export class ResponseHeadParser extends HttpHeadParser<HttpResponseHead> {
  /**
   * Parses a response head's text.
   *
   * @param text The head.
   * @returns The response head.
   * @throws {HttpHeadError} 400 when it is malformed.
   */
  protected parse(text: string): HttpResponseHead {
    const lines = splitLines(text);
    const match = /^(HTTP\/[0-9]\.[0-9]) ([0-9]{3}) ?(.*)$/.exec(lines[0]!);
    if (match === null) throw malformed("Malformed status line");
    return {
      version: match[1]!,
      status: Number(match[2]),
      statusText: match[3]!,
      headers: parseFields(lines),
    };
  }
}

// The head's lines, without terminators, leading empty lines and the final
// empty line.
function splitLines(text: string): string[] {
  const lines = text.split("\n").map((line) =>
    line.endsWith("\r") ? line.slice(0, -1) : line
  );
  while (lines.length > 0 && lines[0] === "") lines.shift();
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  if (lines.some((line) => line.includes("\r"))) {
    throw malformed("Bare CR in the head");
  }
  return lines;
}

function parseFields(lines: string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) throw malformed("Malformed header field");
    const name = line.slice(0, colon);
    // No whitespace before the colon, no obs-fold (RFC 9112 section 5).
    if (!TOKEN.test(name)) throw malformed("Malformed header field name");
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (!FIELD_VALUE.test(value)) throw malformed("Malformed header value");
    const key = name.toLowerCase();
    const previous = headers.get(key);
    headers.set(key, previous === undefined ? value : `${previous}, ${value}`);
  }
  return headers;
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

function malformed(message: string): HttpHeadError {
  return new HttpHeadError(message, 400);
}
