// Package-internal: RFC 6455 frame encoding (section 5.2). The hot path,
// `encodeFrameInto`, writes a whole frame into a caller's buffer at an
// offset without allocating, so a session can pack many frames into one
// outbound chunk and send them in one write. Frames a server sends are never
// masked; frames a client sends always are (section 5.3), with keys from
// `crypto.getRandomValues`, drawn from a pooled block of random bytes.
import { isValidCloseCode } from "./_frame_parser.ts";
import { applyMask } from "./_mask.ts";

/**
 * The opcodes of RFC 6455 section 5.2.
 *
 * @example
 * ```ts
 * import { Opcode } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(Opcode.text, 1);
 * assert.equal(Opcode.close, 8);
 * ```
 */
export const Opcode = {
  /** A later fragment of a message. */
  continuation: 0,
  /** A text message (or its first fragment): UTF-8. */
  text: 1,
  /** A binary message (or its first fragment). */
  binary: 2,
  /** A close frame: optional 2-byte code and UTF-8 reason. */
  close: 8,
  /** A ping: the peer answers with a pong carrying the same payload. */
  ping: 9,
  /** A pong. */
  pong: 10,
} as const;

/** One of the values of {@linkcode Opcode}. */
export type Opcode = typeof Opcode[keyof typeof Opcode];

/**
 * The size of a frame header: 2 bytes, plus 2 or 8 for the extended payload
 * length (payloads over 125 and over 65535 bytes), plus 4 for a masking key.
 *
 * @param payloadLength The payload's length in bytes.
 * @param masked Whether the frame carries a masking key (client frames).
 * @returns The header size, from 2 to 14.
 *
 * @example
 * ```ts
 * import { headerSize } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(headerSize(5, false), 2);
 * assert.equal(headerSize(126, false), 4);
 * assert.equal(headerSize(65536, true), 14);
 * ```
 */
export function headerSize(payloadLength: number, masked: boolean): number {
  return (payloadLength <= 125 ? 2 : payloadLength <= 0xffff ? 4 : 10) +
    (masked ? 4 : 0);
}

// Random masking keys come from a block refilled with one
// crypto.getRandomValues() call per 1024 keys.
const randomPool = new Uint8Array(4096);
let randomOffset = randomPool.length;

/**
 * Writes 4 fresh random bytes (a masking key) into `target` at `offset`.
 *
 * @param target Where to write the key.
 * @param offset Where in `target` it starts.
 *
 * @example
 * ```ts
 * import { writeMaskKey } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * const key = new Uint8Array(4);
 * writeMaskKey(key, 0);
 * assert.equal(key.length, 4);
 * ```
 */
export function writeMaskKey(target: Uint8Array, offset: number): void {
  if (randomOffset + 4 > randomPool.length) {
    crypto.getRandomValues(randomPool);
    randomOffset = 0;
  }
  target[offset] = randomPool[randomOffset]!;
  target[offset + 1] = randomPool[randomOffset + 1]!;
  target[offset + 2] = randomPool[randomOffset + 2]!;
  target[offset + 3] = randomPool[randomOffset + 3]!;
  randomOffset += 4;
}

/**
 * Writes a frame header into `target` at `offset` and returns the offset
 * just past it (where the payload goes). Writes nothing and returns `-1`
 * when the header does not fit.
 *
 * @param target Where to write.
 * @param offset Where the header starts.
 * @param opcode The frame's opcode.
 * @param payloadLength The payload's length in bytes.
 * @param fin Whether this frame ends its message (always `true` for control
 * frames and unfragmented messages).
 * @param mask `false` for no masking key (server frames), `true` for a fresh
 * random key (client frames), or 4 bytes to use as the key (tests).
 * @returns The offset just past the header, or `-1`.
 * @throws {RangeError} When the length is not a safe non-negative integer,
 * or a control frame is fragmented or over 125 bytes.
 *
 * @example The unmasked "Hello" of RFC 6455 section 5.7
 * ```ts
 * import { encodeHeaderInto, Opcode } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = new Uint8Array(7);
 * const at = encodeHeaderInto(frame, 0, Opcode.text, 5, true, false);
 * new TextEncoder().encodeInto("Hello", frame.subarray(at));
 * assert.deepEqual([...frame], [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
 * ```
 */
export function encodeHeaderInto(
  target: Uint8Array,
  offset: number,
  opcode: Opcode,
  payloadLength: number,
  fin: boolean,
  mask: boolean | Uint8Array,
): number {
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0) {
    throw new RangeError(`Invalid payload length ${payloadLength}`);
  }
  if (opcode >= Opcode.close && (!fin || payloadLength > 125)) {
    throw new RangeError(
      "Control frames must be final and carry at most 125 bytes",
    );
  }
  const masked = mask !== false;
  const end = offset + headerSize(payloadLength, masked);
  if (end > target.length) return -1;
  target[offset] = (fin ? 0x80 : 0) | opcode;
  const maskBit = masked ? 0x80 : 0;
  let p = offset + 2;
  if (payloadLength <= 125) {
    target[offset + 1] = maskBit | payloadLength;
  } else if (payloadLength <= 0xffff) {
    target[offset + 1] = maskBit | 126;
    target[p] = payloadLength >>> 8;
    target[p + 1] = payloadLength & 0xff;
    p += 2;
  } else {
    target[offset + 1] = maskBit | 127;
    const high = Math.floor(payloadLength / 0x100000000);
    const low = payloadLength >>> 0;
    target[p] = high >>> 24;
    target[p + 1] = (high >>> 16) & 0xff;
    target[p + 2] = (high >>> 8) & 0xff;
    target[p + 3] = high & 0xff;
    target[p + 4] = low >>> 24;
    target[p + 5] = (low >>> 16) & 0xff;
    target[p + 6] = (low >>> 8) & 0xff;
    target[p + 7] = low & 0xff;
    p += 8;
  }
  if (mask === true) {
    writeMaskKey(target, p);
  } else if (mask !== false) {
    if (mask.length !== 4) throw new RangeError("A masking key is 4 bytes");
    target.set(mask, p);
  }
  return end;
}

/**
 * Writes a whole frame (header, then the payload, masked when `mask` says
 * so) into `target` at `offset`, without allocating. The same contract as
 * `Codec.encodeInto`: returns the offset just past the frame, or `-1` when
 * it does not fit (bytes past `offset` may have been written then).
 *
 * @param target Where to write.
 * @param offset Where the frame starts.
 * @param opcode The frame's opcode.
 * @param payload The payload (not modified).
 * @param fin Whether this frame ends its message.
 * @param mask See {@linkcode encodeHeaderInto}.
 * @returns The offset just past the frame, or `-1`.
 * @throws {RangeError} As {@linkcode encodeHeaderInto}.
 *
 * @example Two frames in one buffer, the way a session coalesces them
 * ```ts
 * import { encodeFrameInto, Opcode } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * const out = new Uint8Array(64);
 * const bytes = new Uint8Array([1, 2, 3]);
 * let at = encodeFrameInto(out, 0, Opcode.binary, bytes, true, false);
 * at = encodeFrameInto(out, at, Opcode.ping, new Uint8Array(0), true, false);
 * assert.deepEqual([...out.subarray(0, at)], [0x82, 3, 1, 2, 3, 0x89, 0]);
 * ```
 */
export function encodeFrameInto(
  target: Uint8Array,
  offset: number,
  opcode: Opcode,
  payload: Uint8Array,
  fin: boolean,
  mask: boolean | Uint8Array,
): number {
  const length = payload.length;
  const start = encodeHeaderInto(target, offset, opcode, length, fin, mask);
  if (start < 0 || start + length > target.length) return -1;
  target.set(payload, start);
  if (mask !== false) {
    applyMask(target.subarray(start, start + length), target, start - 4, 0);
  }
  return start + length;
}

/**
 * Writes a whole text frame for `text` into `target` at `offset`, encoding
 * the string as UTF-8 straight into place (no intermediate bytes). Returns
 * the offset just past the frame, or `-1` when it does not fit.
 *
 * @param target Where to write.
 * @param offset Where the frame starts.
 * @param text The message (or fragment) text.
 * @param fin Whether this frame ends its message.
 * @param mask See {@linkcode encodeHeaderInto}.
 * @param opcode `Opcode.text`, or `Opcode.continuation` for a later fragment.
 * @returns The offset just past the frame, or `-1`.
 *
 * @example
 * ```ts
 * import { encodeTextFrameInto } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * const out = new Uint8Array(16);
 * const end = encodeTextFrameInto(out, 0, "Hello", true, false);
 * assert.deepEqual(
 *   [...out.subarray(0, end)],
 *   [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
 * );
 * assert.equal(encodeTextFrameInto(out, 0, "x".repeat(20), true, false), -1);
 * ```
 */
export function encodeTextFrameInto(
  target: Uint8Array,
  offset: number,
  text: string,
  fin: boolean,
  mask: boolean | Uint8Array,
  opcode: Opcode = Opcode.text,
): number {
  const masked = mask !== false;
  // Reserve the header for the longest possible encoding, then move the
  // payload back if it came out short enough for a smaller header.
  const reserved = headerSize(text.length * 3, masked);
  const start = offset + reserved;
  if (start > target.length) return -1;
  const { read, written } = encoder.encodeInto(text, target.subarray(start));
  if (read < text.length) return -1;
  const actual = headerSize(written, masked);
  if (actual < reserved) {
    target.copyWithin(offset + actual, start, start + written);
  }
  const payloadStart = encodeHeaderInto(
    target,
    offset,
    opcode,
    written,
    fin,
    mask,
  );
  if (masked) {
    applyMask(
      target.subarray(payloadStart, payloadStart + written),
      target,
      payloadStart - 4,
      0,
    );
  }
  return payloadStart + written;
}

/**
 * Encodes a whole frame into fresh bytes. The convenience form of
 * {@linkcode encodeFrameInto}, for frames sent once (close, handshake-time
 * frames, tests).
 *
 * @param opcode The frame's opcode.
 * @param payload The payload (bytes, or a string encoded as UTF-8).
 * @param fin Whether this frame ends its message.
 * @param mask See {@linkcode encodeHeaderInto}.
 * @returns The frame.
 * @throws {RangeError} As {@linkcode encodeHeaderInto}.
 *
 * @example The masked "Hello" of RFC 6455 section 5.7
 * ```ts
 * import { encodeFrame, Opcode } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
 * const frame = encodeFrame(Opcode.text, "Hello", true, key);
 * assert.deepEqual(
 *   [...frame],
 *   [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
 * );
 * ```
 */
export function encodeFrame(
  opcode: Opcode,
  payload: Uint8Array | string,
  fin: boolean = true,
  mask: boolean | Uint8Array = false,
): Uint8Array {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  const frame = new Uint8Array(
    headerSize(bytes.length, mask !== false) + bytes.length,
  );
  encodeFrameInto(frame, 0, opcode, bytes, fin, mask);
  return frame;
}

const encoder = new TextEncoder();
// A close frame's payload: 2 bytes of code, then at most 123 of reason.
const MAX_REASON = 123;

/**
 * Builds a close frame's payload: the 2-byte status code, then the reason as
 * UTF-8, cut to the 123 bytes that fit a control frame at a character
 * boundary (never inside a UTF-8 sequence).
 *
 * @param code A status code a peer may send (1000–1003, 1007–1014,
 * 3000–4999), or `undefined` for an empty payload (the peer sees 1005).
 * @param reason A short explanation; ignored without a code.
 * @returns The payload, 0 to 125 bytes.
 * @throws {RangeError} When `code` may not be sent on the wire.
 *
 * @example
 * ```ts
 * import { closePayload } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...closePayload(1000, "ok")], [0x03, 0xe8, 0x6f, 0x6b]);
 * assert.equal(closePayload(1001, "é".repeat(100)).length, 2 + 122);
 * assert.equal(closePayload(undefined).length, 0);
 * ```
 */
export function closePayload(
  code: number | undefined,
  reason: string = "",
): Uint8Array {
  if (code === undefined) return new Uint8Array(0);
  if (!isValidCloseCode(code)) {
    throw new RangeError(`Close code ${code} may not be sent`);
  }
  const payload = new Uint8Array(2 + Math.min(MAX_REASON, reason.length * 3));
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  // encodeInto stops before a character that does not fit whole, which is
  // exactly the UTF-8 boundary cut.
  const { written } = encoder.encodeInto(reason, payload.subarray(2));
  return payload.subarray(0, 2 + written);
}

/**
 * Encodes a whole close frame: {@linkcode closePayload} in a frame.
 *
 * @param code See {@linkcode closePayload}.
 * @param reason See {@linkcode closePayload}.
 * @param mask See {@linkcode encodeHeaderInto}: `true` on the client side.
 * @returns The frame.
 * @throws {RangeError} When `code` may not be sent on the wire.
 *
 * @example
 * ```ts
 * import { encodeCloseFrame } from "./_frame_writer.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...encodeCloseFrame(1001)], [0x88, 2, 0x03, 0xe9]);
 * ```
 */
export function encodeCloseFrame(
  code: number | undefined,
  reason: string = "",
  mask: boolean | Uint8Array = false,
): Uint8Array {
  return encodeFrame(Opcode.close, closePayload(code, reason), true, mask);
}
