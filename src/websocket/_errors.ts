// Package-internal: the errors the WebSocket frame parser throws. Each one
// carries the close code (RFC 6455 section 7.4.1) the session sends before
// it closes, so mapping an error to a close frame is a property read.
import { DecodeError, FrameTooLargeError } from "../errors.ts";

/**
 * The close codes a frame parser error maps to: 1002 protocol error, 1007
 * invalid payload data (bad UTF-8), 1009 message too big.
 */
export type ParserCloseCode = 1002 | 1007 | 1009;

/**
 * Raised by the WebSocket frame parser when the peer breaks RFC 6455:
 * reserved bits or opcodes, bad masking, bad fragmentation, an invalid close
 * frame (code 1002), or text that is not valid UTF-8 (code 1007). The
 * session answers with a close frame of {@linkcode closeCode}.
 *
 * @example
 * ```ts
 * import { WebSocketProtocolError } from "./_errors.ts";
 * import { DecodeError } from "../errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new WebSocketProtocolError("Reserved bits set", 1002);
 * assert.ok(error instanceof DecodeError);
 * assert.equal(error.closeCode, 1002);
 * ```
 */
export class WebSocketProtocolError extends DecodeError {
  /** The close code to send the peer: 1002 or 1007. */
  readonly closeCode: 1002 | 1007;

  /**
   * Creates a protocol error.
   *
   * @param message What the peer did wrong.
   * @param closeCode 1002 (protocol error) or 1007 (invalid UTF-8).
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, closeCode: 1002 | 1007, options?: ErrorOptions) {
    super(message, options);
    this.name = "WebSocketProtocolError";
    this.closeCode = closeCode;
  }
}

/**
 * Raised by the WebSocket frame parser when a message (the sum of its
 * fragments, as announced by the frame headers) would exceed the limit. It is
 * thrown before any storage of that size is allocated; the close code is
 * 1009. A {@linkcode FrameTooLargeError}, so a session reports it as
 * `"frame too large"` like the other codecs' limits.
 *
 * @example
 * ```ts
 * import { MessageTooBigError } from "./_errors.ts";
 * import { FrameTooLargeError } from "../errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new MessageTooBigError(2 ** 40, 1_048_576);
 * assert.ok(error instanceof FrameTooLargeError);
 * assert.equal(error.closeCode, 1009);
 * ```
 */
export class MessageTooBigError extends FrameTooLargeError {
  /** The close code to send the peer: always 1009. */
  readonly closeCode: 1009 = 1009;

  /**
   * Creates a message-too-big error.
   *
   * @param size The announced message size so far, in bytes.
   * @param limit The parser's `maxMessageBytes`.
   */
  constructor(size: number, limit: number) {
    super(size, limit);
    this.name = "MessageTooBigError";
  }
}
