// Error types a caller may want to catch or recognise in `onError` /
// `Session.closeError`. Misuse of the API throws plain TypeError/RangeError.

/**
 * Raised by a {@linkcode Decoder} when the incoming bytes break the framing
 * rules (bad magic, invalid UTF-8, invalid JSON, ...). A session whose decoder
 * throws is closed with reason `"decode error"`; the error is kept in
 * `Session.closeError`.
 *
 * @example Recognising a decode error
 * ```ts
 * import { DecodeError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new DecodeError("invalid UTF-8 in line");
 * assert.ok(error instanceof Error);
 * assert.equal(error.name, "DecodeError");
 * ```
 */
export class DecodeError extends Error {
  /**
   * Creates a decode error.
   *
   * @param message What was wrong with the bytes.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DecodeError";
  }
}

/**
 * Raised by a {@linkcode Decoder} when a frame announces (or grows to) more
 * bytes than the codec's limit. It is thrown **before** any buffer of that
 * size is allocated. A session whose decoder throws it is closed with reason
 * `"frame too large"`.
 *
 * @example Inspecting the sizes
 * ```ts
 * import { FrameTooLargeError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new FrameTooLargeError(5_000_000, 1_048_576);
 * assert.equal(error.size, 5_000_000);
 * assert.equal(error.limit, 1_048_576);
 * ```
 */
export class FrameTooLargeError extends DecodeError {
  /** The announced or observed frame size, in bytes. */
  readonly size: number;
  /** The codec's limit, in bytes. */
  readonly limit: number;

  /**
   * Creates a frame-too-large error.
   *
   * @param size The announced or observed frame size, in bytes.
   * @param limit The codec's limit, in bytes.
   */
  constructor(size: number, limit: number) {
    super(`Frame of ${size} bytes exceeds the limit of ${limit} bytes`);
    this.name = "FrameTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

/**
 * Raised by a {@linkcode Decoder}'s `end` when the input ends inside a frame:
 * the peer half-closed (or was cut) after sending part of one. A framed
 * codec can't tell a short frame from a lost one, so it says so instead of
 * dropping the bytes in silence. A session whose decoder throws it is closed
 * with reason `"truncated frame"`.
 *
 * @example Inspecting what was left
 * ```ts
 * import { DecodeError, TruncatedFrameError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new TruncatedFrameError(3);
 * assert.ok(error instanceof DecodeError);
 * assert.equal(error.buffered, 3);
 * assert.equal(error.message, "Truncated frame: the input ended 3 bytes into a frame");
 * ```
 */
export class TruncatedFrameError extends DecodeError {
  /** The bytes of the unfinished frame that had arrived. */
  readonly buffered: number;

  /**
   * Creates a truncated-frame error.
   *
   * @param buffered The bytes of the unfinished frame that had arrived.
   */
  constructor(buffered: number) {
    super(`Truncated frame: the input ended ${buffered} bytes into a frame`);
    this.name = "TruncatedFrameError";
    this.buffered = buffered;
  }
}

/**
 * Thrown by the default fallback of a {@linkcode Router} for a message whose
 * key has no route. Under `listen()` it reaches `onError` with the session,
 * which stays open.
 *
 * @example Recognising it in onError
 * ```ts
 * import { RouteNotFoundError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new RouteNotFoundError("nope");
 * assert.equal(error.key, "nope");
 * assert.equal(error.name, "RouteNotFoundError");
 * ```
 */
export class RouteNotFoundError extends Error {
  /** The message's key, or `undefined` when it had none. */
  readonly key: string | undefined;

  /**
   * Creates the error.
   *
   * @param key The key that has no route, or `undefined`.
   */
  constructor(key: string | undefined) {
    super(
      key === undefined
        ? "No route for a message without a key"
        : `No route for key ${JSON.stringify(clip(key))}`,
    );
    this.name = "RouteNotFoundError";
    this.key = key;
  }
}

// Keys come from peers: keep error messages (and logs) short.
function clip(key: string): string {
  return key.length > 64 ? key.slice(0, 64) + "…" : key;
}

/**
 * A request made with `Session.request()` got no reply in time.
 *
 * @example Telling a timeout apart
 * ```ts
 * import { RequestTimeoutError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new RequestTimeoutError(1000);
 * assert.equal(error.name, "RequestTimeoutError");
 * assert.equal(error.timeout, 1000);
 * ```
 */
export class RequestTimeoutError extends Error {
  /** How long the request waited, in milliseconds. */
  readonly timeout: number;

  /**
   * Creates the error.
   *
   * @param timeout How long the request waited, in milliseconds.
   */
  constructor(timeout: number) {
    super(`No reply within ${timeout} ms`);
    this.name = "RequestTimeoutError";
    this.timeout = timeout;
  }
}

/**
 * The session closed (or was not open) before the operation could finish,
 * e.g. a pending `Session.request()`.
 *
 * @example The reason travels with the error
 * ```ts
 * import { SessionClosedError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new SessionClosedError("eof");
 * assert.equal(error.reason, "eof");
 * ```
 */
export class SessionClosedError extends Error {
  /** The session's close reason, when known. */
  readonly reason: string | undefined;

  /**
   * Creates the error.
   *
   * @param reason The session's close reason, when known.
   */
  constructor(reason?: string) {
    super(
      reason === undefined
        ? "The session is closed"
        : `The session is closed (${reason})`,
    );
    this.name = "SessionClosedError";
    this.reason = reason;
  }
}

/**
 * A message over the limit in force: the smaller of `maxMessageBytes`
 * (an option of `listen()` and `connect()` on every transport) and the
 * codec's own limit (`lines({ maxLineBytes })`, `json({ maxFrameBytes })`,
 * `lengthPrefixed({ maxFrameBytes })`, `microSocket({ maxFrameBytes })`);
 * {@linkcode option} names the one that set it. The built-in codecs raise
 * it on a line or a frame header, and the WebSocket transport on a frame
 * header (the sum of a message's fragments), always before the payload is
 * stored. The session then closes with reason `"frame too large"`;
 * over WebSocket it sends close code {@linkcode closeCode} (1009) with
 * {@linkcode closeReason}, which names the option. `onError` receives it.
 *
 * @example Telling which limit a peer broke
 * ```ts
 * import { FrameTooLargeError, MessageTooBigError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new MessageTooBigError(2000, 1000, "maxMessageBytes");
 * assert.ok(error instanceof FrameTooLargeError);
 * assert.equal(error.option, "maxMessageBytes");
 * assert.equal(error.closeCode, 1009);
 * assert.equal(
 *   error.closeReason,
 *   "message of 2000 bytes exceeds maxMessageBytes (1000)",
 * );
 * ```
 */
export class MessageTooBigError extends FrameTooLargeError {
  /** The close code sent to the peer: always 1009 (message too big). */
  readonly closeCode: 1009 = 1009;
  /**
   * The option whose limit the message broke: `"maxMessageBytes"`, or the
   * codec's (`"maxLineBytes"`, `"maxFrameBytes"`).
   */
  readonly option: string;
  /**
   * The reason sent to the peer with the close frame, e.g.
   * `"message of 2000 bytes exceeds maxMessageBytes (1000)"`.
   */
  readonly closeReason: string;

  /**
   * Creates a message-too-big error.
   *
   * @param size The announced message size so far, in bytes; a `bigint`
   * for sizes past 2^53, which `message` prints exactly (`size` is then
   * the nearest number).
   * @param limit The limit in force, in bytes.
   * @param option The option that set the limit.
   */
  constructor(
    size: number | bigint,
    limit: number,
    option: string = "maxMessageBytes",
  ) {
    super(Number(size), limit);
    this.name = "MessageTooBigError";
    this.option = option;
    this.closeReason = `message of ${size} bytes exceeds ${option} (${limit})`;
    this.message = `Message of ${size} bytes exceeds ${option} (${limit})`;
  }
}

/**
 * What {@linkcode Refusal} takes besides its reason.
 *
 * @typeParam Out The type of the session's outbound messages.
 *
 * @example A refusal with a code and a last message
 * ```ts
 * import type { RefusalOptions } from "@x/microsocket";
 *
 * const options: RefusalOptions<string> = { code: 4403, notice: "ERR banned" };
 * ```
 */
export interface RefusalOptions<Out = unknown> {
  /**
   * The WebSocket close code: 1008, or 3000–4999. Other transports have
   * none.
   *
   * @default {4401}
   */
  code?: number;
  /**
   * A last message, in the session's codec, sent to the peer before the
   * close: on TCP, TLS and Unix sockets the only way to say why.
   */
  notice?: Out;
}

/**
 * Thrown from `authenticate` to turn a peer away and tell it why. The
 * session sends the `notice` (when given) as its last message, then closes
 * with reason `"unauthorized"` (its `closeError` is the refusal); a
 * WebSocket peer receives the refusal's code and reason in the close frame
 * (the reason cut to 123 bytes of UTF-8). Returning `false` instead refuses
 * with code 4401 and reason `"unauthorized"`, and no notice.
 *
 * 4401 and 4403 mirror HTTP 401 and 403 in the private range (RFC 6455
 * section 7.4.2), as graphql-ws does; `connect()` takes them as final and
 * stops reconnecting.
 *
 * @typeParam Out The type of the notice.
 *
 * @example Telling a TCP peer why it is refused
 * ```ts
 * import { lines, listen, Refusal } from "@x/microsocket";
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: lines(),
 *   authenticate: (_session, line) => {
 *     if (line !== "token secret") {
 *       throw new Refusal("bad token", { notice: "ERR bad token" });
 *     }
 *     return { user: "ada" };
 *   },
 * });
 * ```
 */
export class Refusal<Out = unknown> extends Error {
  /** Why the peer is refused; the WebSocket close reason. */
  readonly reason: string;
  /** The WebSocket close code. */
  readonly code: number;
  /** The last message sent to the peer, if any. */
  readonly notice: Out | undefined;

  /**
   * Creates a refusal.
   *
   * @param reason Why the peer is refused.
   * @param options The close code and a last message.
   * @throws {RangeError} When the code is not 1008 or 3000–4999.
   */
  constructor(reason: string, options: RefusalOptions<Out> = {}) {
    super(`Refused: ${reason}`);
    const code = options.code ?? 4401;
    if (
      code !== 1008 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)
    ) {
      throw new RangeError(
        `A refusal's close code must be 1008 or 3000-4999, got ${code}`,
      );
    }
    this.name = "Refusal";
    this.reason = reason;
    this.code = code;
    this.notice = options.notice;
  }
}

/**
 * The server refused the client: `Client.refused` holds it, and a `for
 * await` loop over the client's messages throws it once the messages that
 * arrived before are read. A refusal is a WebSocket close with code 4401 or
 * 4403 (or 1008 with reason `"unauthorized"`), or a message the
 * `refusalOf` option of `connect()` recognises.
 *
 * @example Recognising a refusal
 * ```ts
 * import { RefusedError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new RefusedError("bad token", 4401);
 * assert.equal(error.reason, "bad token");
 * assert.equal(error.code, 4401);
 * assert.equal(error.name, "RefusedError");
 * ```
 */
export class RefusedError extends Error {
  /** The reason the server gave. */
  readonly reason: string;
  /** The WebSocket close code, or `undefined` for a recognised message. */
  readonly code: number | undefined;

  /**
   * Creates the error.
   *
   * @param reason The reason the server gave.
   * @param code The WebSocket close code, if the refusal was one.
   */
  constructor(reason: string, code?: number) {
    super(`The server refused the client: ${reason}`);
    this.name = "RefusedError";
    this.reason = reason;
    this.code = code;
  }
}
