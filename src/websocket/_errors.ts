// Package-internal: the errors the WebSocket frame parser throws, and
// WebSocketCloseError (public, exported by websocket_codec.ts), which the
// codec mappings and the decoder throw. Each one carries the close code (RFC 6455 section 7.4.1) and the close reason the
// session sends before it closes, so mapping an error to a close frame is a
// property read.
//
// The close reasons are short, stable strings a peer (or a test) may match;
// each names the rule that was broken:
//
// | close reason | code | the peer sent |
// | --- | --- | --- |
// | `"unmasked client frame"` | 1002 | a client frame without a mask |
// | `"masked server frame"` | 1002 | a server frame with a mask |
// | `"reserved bits set"` | 1002 | RSV1-3 set (no extension is negotiated) |
// | `"reserved opcode N"` | 1002 | opcode 3-7 or 11-15 |
// | `"fragmented control frame"` | 1002 | a ping, pong or close without FIN |
// | `"control frame too long"` | 1002 | a control payload over 125 bytes |
// | `"continuation without start"` | 1002 | a continuation with no message open |
// | `"new message inside a fragmented one"` | 1002 | a text/binary frame while a fragmented message is open |
// | `"bad frame length"` | 1002 | a 64-bit length with its top bit set |
// | `"bad close frame"` | 1002 | a close payload of 1 byte |
// | `"bad close code"` | 1002 | a close code that may not be sent (e.g. 1005) |
// | `"invalid utf-8"` | 1007 | a text message or close reason that is not UTF-8 |
// | `"message of N bytes exceeds OPTION (M)"` | 1009 | a message over the limit ({@linkcode MessageTooBigError}) |
// | `"truncated frame"` | 1002 | the end of its input inside a frame or a fragmented message (a `TruncatedFrameError`, from `end()`) |
//
// The session's own close reason (`Session.closeReason`, `onClose`, stats)
// stays `"decode error"` for 1002/1007 and `"frame too large"` for 1009.
import { DecodeError, MessageTooBigError } from "../errors.ts";

export { MessageTooBigError };

/**
 * The close codes a frame parser error maps to: 1002 protocol error, 1007
 * invalid payload data (bad UTF-8), 1009 message too big.
 */
export type ParserCloseCode = 1002 | 1007 | 1009;

/**
 * Raised by the WebSocket frame parser when the peer breaks RFC 6455:
 * reserved bits or opcodes, bad masking, bad fragmentation, an invalid close
 * frame (code 1002), or text that is not valid UTF-8 (code 1007). The
 * session answers with a close frame of {@linkcode closeCode} and
 * {@linkcode closeReason}.
 *
 * @example
 * ```ts
 * import { WebSocketProtocolError } from "./_errors.ts";
 * import { DecodeError } from "../errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new WebSocketProtocolError(
 *   "Reserved bits set",
 *   1002,
 *   "reserved bits set",
 * );
 * assert.ok(error instanceof DecodeError);
 * assert.equal(error.closeCode, 1002);
 * assert.equal(error.closeReason, "reserved bits set");
 * ```
 */
export class WebSocketProtocolError extends DecodeError {
  /** The close code to send the peer: 1002 or 1007. */
  readonly closeCode: 1002 | 1007;
  /** The close reason to send the peer: the rule that was broken. */
  readonly closeReason: string;

  /**
   * Creates a protocol error.
   *
   * @param message What the peer did wrong.
   * @param closeCode 1002 (protocol error) or 1007 (invalid UTF-8).
   * @param closeReason The short, stable reason sent to the peer.
   * @param options Standard error options (`cause`).
   */
  constructor(
    message: string,
    closeCode: 1002 | 1007,
    closeReason: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "WebSocketProtocolError";
    this.closeCode = closeCode;
    this.closeReason = closeReason;
  }
}

/**
 * A decode error that carries the close code and reason the WebSocket peer
 * is sent: 1003 (a text message for a binary mapping, or the reverse, e.g.
 * `"binary message for lines()"`), 1007 (the payload is invalid for the
 * codec: `"invalid json"`, `"partial frame in binary message"`), 1008 (a
 * ping flood: `"too many pings"`).
 *
 * @example
 * ```ts
 * import { DecodeError, WebSocketCloseError } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const error = new WebSocketCloseError("Too many pings", 1008);
 * assert.ok(error instanceof DecodeError);
 * assert.equal(error.closeCode, 1008);
 * assert.equal(error.closeReason, "too many pings");
 * ```
 */
export class WebSocketCloseError extends DecodeError {
  /** The close code sent to the peer. */
  readonly closeCode: number;
  /**
   * The close reason sent to the peer: the message with a lower-case first
   * letter, unless `options.closeReason` gave another.
   */
  readonly closeReason: string;

  /**
   * Creates the error.
   *
   * @param message What the peer did.
   * @param closeCode The close code to send.
   * @param options Standard error options (`cause`), and the close reason
   * to send when it is not the message.
   */
  constructor(
    message: string,
    closeCode: number,
    options?: ErrorOptions & { closeReason?: string },
  ) {
    super(message, options);
    this.name = "WebSocketCloseError";
    this.closeCode = closeCode;
    this.closeReason = options?.closeReason ??
      message.charAt(0).toLowerCase() + message.slice(1);
  }
}
