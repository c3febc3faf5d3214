// The wire format of the Go microSocket framework (the seed), byte for byte:
// the 6 ASCII bytes "Header", a 4-byte big-endian int32 payload length, then
// a UTF-8 text map "k:v|k:v". Unlike the seed, hostile headers (wrong magic,
// negative or huge lengths) close the session instead of crashing the process
// or buffering without bound, and "|", ":" and "\" survive a round trip.
import type { Codec, Decoder } from "./codec.ts";
import { sizeLimit } from "./_limit.ts";
import { withKind } from "./_kind.ts";
import { decodeUtf8 } from "./_utf8.ts";
import { moduleMethodOrAction } from "./_route_keys.ts";
import { PartialPayload } from "./_partial_payload.ts";
import {
  DecodeError,
  MessageTooBigError,
  TruncatedFrameError,
} from "../errors.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../defaults.ts";

/**
 * A decoded microSocket message: the payload's `key:value` pairs.
 *
 * Decoded messages are objects without a prototype (`Object.create(null)`),
 * so a peer sending `__proto__:x` or `constructor:y` gets plain string
 * entries, never a polluted prototype or an inherited function.
 *
 * @example Encoding a message and decoding it back
 * ```ts
 * import { microSocket, type MicroSocketMessage } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const login: MicroSocketMessage = { module: "user", method: "Login", name: "ada" };
 * const codec = microSocket();
 * const got: MicroSocketMessage[] = [];
 * codec.decoder().decode(codec.encode(login), (message) => got.push(message));
 * assert.equal(got.length, 1);
 * assert.equal(Object.getPrototypeOf(got[0]), null);
 * assert.deepEqual({ ...got[0] }, login);
 * ```
 */
export type MicroSocketMessage = Record<string, string>;

/**
 * Options for {@linkcode microSocket}.
 *
 * @example A small payload limit
 * ```ts
 * import {
 *   FrameTooLargeError,
 *   microSocket,
 *   type MicroSocketMessage,
 *   type MicroSocketOptions,
 * } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const options: MicroSocketOptions = { maxFrameBytes: 32 };
 * const codec = microSocket(options);
 * const got: MicroSocketMessage[] = [];
 * codec.decoder().decode(codec.encode({ action: "ping" }), (m) => got.push(m));
 * assert.equal(got[0]?.action, "ping");
 *
 * const big = codec.encode({ action: "say", text: "x".repeat(64) });
 * assert.throws(() => codec.decoder().decode(big, () => {}), FrameTooLargeError);
 * ```
 */
export interface MicroSocketOptions {
  /**
   * The largest payload accepted, in bytes (the 10 header bytes not
   * counted). A header announcing more is a {@linkcode FrameTooLargeError}
   * before any byte of the payload is buffered.
   *
   * @default {1048576}
   */
  maxFrameBytes?: number;
}

/** The six ASCII bytes every microSocket frame starts with: `Header`. */
const MAGIC = new Uint8Array([0x48, 0x65, 0x61, 0x64, 0x65, 0x72]);
const MAGIC_BYTES = 6;
const HEADER_BYTES = 10;
const INITIAL_PAYLOAD = 4096;
// A buffer that grew past this for one big frame is dropped once the frame
// completes, so an idle connection does not keep a megabyte alive.
const KEEP_PAYLOAD = 65536;

const BACKSLASH = 0x5c; // "\"
const PIPE = 0x7c; // "|"
const COLON = 0x3a; // ":"
const SPECIAL = /[\\|:]/;
const SPECIAL_ALL = /[\\|:]/g;

// An empty frame is a keepalive. The decoder emits this one frozen object for
// it, and the codec's heartbeat recognises it by identity, so the session
// swallows it as a pong and handlers never see it.
const KEEPALIVE: MicroSocketMessage = Object.freeze(
  Object.create(null) as MicroSocketMessage,
);

const PING = new Uint8Array([...MAGIC, 0, 0, 0, 0]);

/**
 * A codec byte-compatible with the Go microSocket framework: each frame is
 * the 6 ASCII bytes `Header`, a 4-byte big-endian signed (int32) payload
 * length, then the payload, a UTF-8 text map `key:value|key:value`.
 *
 * **Decoding** yields a {@linkcode MicroSocketMessage} per frame:
 * - a frame that does not start with `Header` is a {@linkcode DecodeError},
 *   raised at the first wrong byte;
 * - a negative length (high bit set, e.g. `0xFFFFFFFF`) is a
 *   {@linkcode DecodeError}, a length over `maxFrameBytes` (e.g.
 *   `0x7FFFFFFF`) a {@linkcode FrameTooLargeError}, both before anything is
 *   buffered; the session closes with reason `"decode error"` or
 *   `"frame too large"`, where the seed panics or buffers without bound;
 * - input that ends inside a frame is a {@linkcode TruncatedFrameError}
 *   (close reason `"truncated frame"`), not a frame dropped in silence;
 * - an empty frame (length 0) is a keepalive: the decoder emits it as one
 *   shared, frozen, empty message that `heartbeat.isPing` and `isPong`
 *   recognise, so a session counts it as a sign of life and never passes
 *   it to handlers (the codec's ping and pong are both an empty frame);
 * - invalid UTF-8 in the payload, or a non-empty pair without a `:`, is a
 *   {@linkcode DecodeError}; empty pairs (as in `a:1||b:2` or a trailing `|`)
 *   are skipped; a repeated key keeps its last value;
 * - the first unescaped `:` of a pair separates key and value; any later
 *   unescaped `:` belongs to the value (`url:http://x` decodes to
 *   `{ url: "http://x" }`, which the seed truncates to `http`).
 *
 * **Escaping.** `|`, `:` and `\` in keys and values are escaped with a
 * backslash (`\|`, `\:`, `\\`) by `encode`, and unescaped by the decoder, so
 * every message survives a round trip. A backslash before any other character
 * (or at the end of the payload) is kept literally, so payloads from peers
 * that never escape — like the seed's — decode as they always did unless they
 * contain one of the three escape sequences. Messages whose keys and values
 * contain none of the three characters are encoded exactly as the seed does.
 *
 * **Encoding** throws a `TypeError` for a value that is not a string and for
 * an empty message (an empty frame would reach the peer as a keepalive).
 *
 * Its route key ({@linkcode Codec.routeKey}, used by `Router`) is
 * `"module.method"` when both fields are there, else `action`.
 *
 * This release also fixes the seed's parser dropping a payload that holds a
 * single pair (`action:ping` decodes to `{ action: "ping" }`).
 *
 * @param options Limits; see {@linkcode MicroSocketOptions}.
 * @returns A codec of {@linkcode MicroSocketMessage}, with a heartbeat whose
 * ping is an empty frame.
 * @throws {RangeError} When `maxFrameBytes` is not an integer from 0 to
 * 2147483647.
 *
 * @example Round trip with an escaped value
 * ```ts
 * import { microSocket } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const codec = microSocket();
 * const frame = codec.encode({ action: "say", text: "a|b" });
 * assert.equal(new TextDecoder().decode(frame.subarray(0, 6)), "Header");
 * assert.equal(new DataView(frame.buffer).getInt32(6), 20);
 *
 * const got: Record<string, string>[] = [];
 * codec.decoder().decode(frame, (message) => got.push(message));
 * assert.equal(got[0]?.text, "a|b");
 * ```
 *
 * @example A hostile header closes the session instead of crashing
 * ```ts
 * import { DecodeError, microSocket } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const magic = new TextEncoder().encode("Header");
 * const header = new Uint8Array([...magic, 0xff, 0xff, 0xff, 0xff]);
 * const decoder = microSocket().decoder();
 * assert.throws(() => decoder.decode(header, () => {}), DecodeError);
 * ```
 */
export function microSocket(
  options: MicroSocketOptions = {},
): Codec<MicroSocketMessage> {
  const maxFrameBytes = sizeLimit(
    "maxFrameBytes",
    options.maxFrameBytes,
    DEFAULT_MAX_FRAME_BYTES,
    0,
    0x7fffffff,
  );
  const encoder = new TextEncoder();
  const codec: Codec<MicroSocketMessage> = {
    name: "microSocket",
    encode(message: MicroSocketMessage): Uint8Array {
      return encodeFrame(encoder, message);
    },
    decoder(): Decoder<MicroSocketMessage> {
      return new MicroSocketDecoder(maxFrameBytes, "maxFrameBytes");
    },
    heartbeat: {
      ping: PING,
      pong: PING,
      isPing: isKeepalive,
      isPong: isKeepalive,
    },
    routeKey: moduleMethodOrAction,
  };
  return withKind(codec, {
    framing: "microSocket",
    option: "maxFrameBytes",
    limit: maxFrameBytes,
    bounded: (_link, limit, option) => new MicroSocketDecoder(limit, option),
  });
}

function isKeepalive(message: MicroSocketMessage): boolean {
  return message === KEEPALIVE;
}

function escape(text: string): string {
  return SPECIAL.test(text) ? text.replace(SPECIAL_ALL, "\\$&") : text;
}

function encodeFrame(
  encoder: TextEncoder,
  message: MicroSocketMessage,
): Uint8Array {
  if (typeof message !== "object" || message === null) {
    throw new TypeError(
      "Cannot encode a microSocket message that is not an object",
    );
  }
  let payload = "";
  for (const key of Object.keys(message)) {
    const value = message[key];
    if (typeof value !== "string") {
      throw new TypeError(
        `Cannot encode a microSocket value that is not a string (key "${key}")`,
      );
    }
    if (payload.length > 0) payload += "|";
    payload += escape(key) + ":" + escape(value);
  }
  if (payload.length === 0) {
    throw new TypeError(
      "Cannot encode an empty microSocket message: an empty frame is a keepalive",
    );
  }
  // One allocation when the payload is ASCII (its byte length is then its
  // string length); otherwise encode first to learn the length.
  let frame = new Uint8Array(HEADER_BYTES + payload.length);
  const { read, written } = encoder.encodeInto(
    payload,
    frame.subarray(HEADER_BYTES),
  );
  let length = written;
  if (read !== payload.length || written !== payload.length) {
    const bytes = encoder.encode(payload);
    length = bytes.length;
    if (length > 0x7fffffff) {
      throw new TypeError(`Payload of ${length} bytes does not fit a frame`);
    }
    frame = new Uint8Array(HEADER_BYTES + length);
    frame.set(bytes, HEADER_BYTES);
  }
  frame.set(MAGIC);
  frame[6] = length >>> 24;
  frame[7] = (length >>> 16) & 0xff;
  frame[8] = (length >>> 8) & 0xff;
  frame[9] = length & 0xff;
  return frame;
}

// Parses "k:v|k:v" (see microSocket() for the rules). Strings without a
// backslash take a fast path of indexOf and slice.
function parsePairs(text: string): MicroSocketMessage {
  const out = Object.create(null) as MicroSocketMessage;
  if (!text.includes("\\")) {
    let start = 0;
    const end = text.length;
    while (start <= end) {
      let pipe = text.indexOf("|", start);
      if (pipe < 0) pipe = end;
      if (pipe > start) {
        const colon = text.indexOf(":", start);
        if (colon < 0 || colon > pipe) throw noColon(start);
        out[text.slice(start, colon)] = text.slice(colon + 1, pipe);
      }
      start = pipe + 1;
    }
    return out;
  }
  let key: string | undefined;
  let piece = "";
  let from = 0;
  let pairStart = 0;
  const end = text.length;
  for (let i = 0; i <= end; i++) {
    const ch = i < end ? text.charCodeAt(i) : PIPE;
    if (ch === BACKSLASH) {
      const next = text.charCodeAt(i + 1);
      if (next === BACKSLASH || next === PIPE || next === COLON) {
        piece += text.slice(from, i);
        from = i + 1; // keep the escaped character, drop the backslash
        i++;
      }
    } else if (ch === COLON) {
      if (key === undefined) {
        key = piece + text.slice(from, i);
        piece = "";
        from = i + 1;
      }
    } else if (ch === PIPE) {
      if (key !== undefined) {
        out[key] = piece + text.slice(from, i);
      } else if (i > pairStart) {
        throw noColon(pairStart);
      }
      key = undefined;
      piece = "";
      from = pairStart = i + 1;
    }
  }
  return out;
}

function noColon(at: number): DecodeError {
  return new DecodeError(
    `Pair without a colon at character ${at} of the microSocket payload`,
  );
}

// A two-state machine: collecting the 10 header bytes (the magic is checked
// byte by byte, so garbage fails at its first byte), then the payload. The
// payload buffer grows with the bytes that actually arrive, not with what the
// header announces. A frame that lies whole inside one chunk is parsed in
// place, without a copy.
class MicroSocketDecoder implements Decoder<MicroSocketMessage> {
  #max: number;
  #option: string;
  #headerBytes = 0;
  #length = 0;
  #payload = new PartialPayload(INITIAL_PAYLOAD, KEEP_PAYLOAD);

  constructor(max: number, option: string) {
    this.#max = max;
    this.#option = option;
  }

  get buffered(): number {
    return this.#payload.active
      ? HEADER_BYTES + this.#payload.filled
      : this.#headerBytes;
  }

  // A frame cut off by the end of the input can't be told from a short
  // one: say so rather than drop it.
  end(): void {
    const buffered = this.buffered;
    if (buffered > 0) throw new TruncatedFrameError(buffered);
  }

  decode(chunk: Uint8Array, emit: (message: MicroSocketMessage) => void): void {
    let offset = 0;
    const end = chunk.length;
    const payload = this.#payload;
    while (offset < end) {
      if (!payload.active) {
        if (this.#headerBytes === 0 && end - offset >= HEADER_BYTES) {
          // Fast path: a whole header in this chunk.
          for (let i = 0; i < MAGIC_BYTES; i++) {
            if (chunk[offset + i] !== MAGIC[i]) {
              throw badMagic(chunk[offset + i]!, i);
            }
          }
          const length = this.#check(
            (chunk[offset + 6]! << 24) | (chunk[offset + 7]! << 16) |
              (chunk[offset + 8]! << 8) | chunk[offset + 9]!,
          );
          offset += HEADER_BYTES;
          if (length === 0) {
            emit(KEEPALIVE);
            continue;
          }
          if (end - offset >= length) {
            emit(this.#parse(chunk, offset, offset + length));
            offset += length;
            continue;
          }
          payload.start(length);
          this.#length = length;
        } else {
          const byte = chunk[offset++]!;
          const at = this.#headerBytes++;
          if (at < MAGIC_BYTES) {
            if (byte !== MAGIC[at]) throw badMagic(byte, at);
            continue;
          }
          this.#length = (this.#length << 8) | byte;
          if (at < HEADER_BYTES - 1) continue;
          const length = this.#check(this.#length);
          this.#headerBytes = 0;
          this.#length = length;
          if (length === 0) {
            emit(KEEPALIVE);
            continue;
          }
          payload.start(length);
        }
      }
      offset += payload.append(chunk, offset, end);
      if (payload.complete) {
        const length = this.#length;
        this.#length = 0;
        emit(this.#parse(payload.finish(), 0, length));
      }
    }
  }

  // `length` is the header read as a signed int32, as the seed reads it.
  #check(length: number): number {
    if (length < 0) {
      throw new DecodeError(`Negative microSocket frame length ${length}`);
    }
    if (length > this.#max) {
      throw new MessageTooBigError(length, this.#max, this.#option);
    }
    return length;
  }

  #parse(bytes: Uint8Array, start: number, end: number): MicroSocketMessage {
    let text: string;
    try {
      text = decodeUtf8(bytes.subarray(start, end));
    } catch (error) {
      throw new DecodeError("MicroSocket payload is not valid UTF-8", {
        cause: error,
      });
    }
    return parsePairs(text);
  }
}

function badMagic(byte: number, at: number): DecodeError {
  return new DecodeError(
    `Frame does not start with "Header": byte 0x${
      byte.toString(16).padStart(2, "0")
    } at offset ${at}`,
  );
}
