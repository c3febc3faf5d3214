// Binary frames: a 4-byte big-endian length, then that many bytes.
import type { Codec, Decoder, Heartbeat } from "./codec.ts";
import { MessageTooBigError, TruncatedFrameError } from "../errors.ts";
import { sizeLimit } from "./_limit.ts";
import { withKind } from "./_kind.ts";
import { PartialPayload } from "./_partial_payload.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../defaults.ts";

const HEADER_BYTES = 4;
const INITIAL_PAYLOAD = 16384;

/**
 * Options for {@linkcode lengthPrefixed}.
 *
 * @example Refusing frames over 1 KiB before reading them
 * ```ts
 * import {
 *   FrameTooLargeError,
 *   lengthPrefixed,
 *   type LengthPrefixedOptions,
 * } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const options: LengthPrefixedOptions = { maxFrameBytes: 1024 };
 * const decoder = lengthPrefixed(options).decoder();
 * const header = new Uint8Array([0, 0, 0x04, 0x01]); // announces 1025 bytes
 * assert.throws(() => decoder.decode(header, () => {}), FrameTooLargeError);
 * ```
 */
export interface LengthPrefixedOptions {
  /**
   * The largest payload accepted, in bytes. A header announcing more is a
   * {@linkcode FrameTooLargeError} before any byte of the payload is
   * buffered. Lengths are read as unsigned 32-bit numbers, so a header of
   * `0xFFFFFFFF` is simply too large, never negative.
   *
   * @default {1048576}
   */
  maxFrameBytes?: number;
  /**
   * Use empty frames (a zero length header, 4 bytes) as heartbeat pings
   * and pongs, so that `heartbeatInterval` has something to send. The
   * session then consumes every empty frame: handlers never see one. Off,
   * empty frames are ordinary messages and `listen({ heartbeatInterval })`
   * refuses the codec.
   *
   * @default {false}
   */
  heartbeat?: boolean;
}

/**
 * A codec for binary frames: a 4-byte big-endian unsigned payload length,
 * then the payload.
 *
 * Each decoded message is a `Uint8Array` the handler may keep; frames that
 * arrived together may be views into one shared copy of them (mind
 * `byteOffset` before using `.buffer`). Zero-length frames are valid and
 * decode to an empty array, except with the `heartbeat` option, which makes
 * them pings and pongs. Input that ends inside a frame (the peer half-closes
 * after part of one) is a {@linkcode TruncatedFrameError}: the session
 * closes with reason `"truncated frame"` rather than drop it in silence.
 *
 * @param options Limits and heartbeat; see {@linkcode LengthPrefixedOptions}.
 * @returns A codec of byte arrays.
 *
 * @example Round trip
 * ```ts
 * import { lengthPrefixed } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const codec = lengthPrefixed({ maxFrameBytes: 16 });
 * const frame = codec.encode(new Uint8Array([7, 8, 9]));
 * assert.deepEqual([...frame], [0, 0, 0, 3, 7, 8, 9]);
 *
 * const got: Uint8Array[] = [];
 * codec.decoder().decode(frame, (payload) => got.push(payload));
 * assert.deepEqual(got, [new Uint8Array([7, 8, 9])]);
 * ```
 */
export function lengthPrefixed(
  options: LengthPrefixedOptions = {},
): Codec<Uint8Array> {
  const maxFrameBytes = sizeLimit(
    "maxFrameBytes",
    options.maxFrameBytes,
    DEFAULT_MAX_FRAME_BYTES,
    0,
    0xffffffff,
  );
  const heartbeat = options.heartbeat;
  if (heartbeat !== undefined && typeof heartbeat !== "boolean") {
    throw new TypeError(
      `heartbeat must be a boolean, got ${typeof heartbeat}`,
    );
  }
  const codec: Codec<Uint8Array> = {
    name: "lengthPrefixed",
    ...(heartbeat === true ? { heartbeat: EMPTY_FRAME_HEARTBEAT } : {}),
    encode(payload: Uint8Array): Uint8Array {
      checkPayload(payload);
      const length = payload.byteLength;
      if (length > 0xffffffff) {
        throw new TypeError(`Payload of ${length} bytes does not fit a frame`);
      }
      const frame = new Uint8Array(HEADER_BYTES + length);
      frame[0] = length >>> 24;
      frame[1] = (length >>> 16) & 0xff;
      frame[2] = (length >>> 8) & 0xff;
      frame[3] = length & 0xff;
      frame.set(payload, HEADER_BYTES);
      return frame;
    },
    encodeInto(
      payload: Uint8Array,
      target: Uint8Array,
      offset: number,
    ): number {
      checkPayload(payload);
      const length = payload.byteLength;
      const end = offset + HEADER_BYTES + length;
      if (end > target.length) return -1;
      target[offset] = length >>> 24;
      target[offset + 1] = (length >>> 16) & 0xff;
      target[offset + 2] = (length >>> 8) & 0xff;
      target[offset + 3] = length & 0xff;
      target.set(payload, offset + HEADER_BYTES);
      return end;
    },
    decoder(): Decoder<Uint8Array> {
      return new LengthPrefixedDecoder(maxFrameBytes, "maxFrameBytes");
    },
  };
  return withKind(codec, {
    framing: "lengthPrefixed",
    option: "maxFrameBytes",
    limit: maxFrameBytes,
    bounded: (_link, limit, option) => new LengthPrefixedDecoder(limit, option),
  });
}

function checkPayload(payload: Uint8Array): void {
  if (!(payload instanceof Uint8Array)) {
    throw new TypeError(
      `lengthPrefixed() encodes Uint8Array payloads, got ${
        payload === null ? "null" : typeof payload
      }`,
    );
  }
}

const EMPTY_FRAME = new Uint8Array(HEADER_BYTES);
const isEmpty = (payload: Uint8Array): boolean => payload.byteLength === 0;
// The empty frame is both ping and pong, as microSocket's keepalive.
const EMPTY_FRAME_HEARTBEAT: Heartbeat<Uint8Array> = {
  ping: EMPTY_FRAME,
  pong: EMPTY_FRAME,
  isPing: isEmpty,
  isPong: isEmpty,
};

// A two-state machine: collecting the header, then the payload (see
// PartialPayload), which is handed to the handler.
class LengthPrefixedDecoder implements Decoder<Uint8Array> {
  #max: number;
  #option: string;
  #header = 0;
  #headerBytes = 0;
  #payload = new PartialPayload(INITIAL_PAYLOAD, 0);

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

  decode(chunk: Uint8Array, emit: (payload: Uint8Array) => void): void {
    let offset = 0;
    const end = chunk.length;
    const payload = this.#payload;
    while (offset < end) {
      if (!payload.active) {
        // Fast path: whole frames inside this chunk. They are copied out in
        // one piece and handed out as views of that copy: one allocation
        // per read instead of one per frame.
        if (this.#headerBytes === 0 && end - offset >= HEADER_BYTES) {
          const runEnd = this.#completeFrames(chunk, offset);
          if (runEnd > offset) {
            const run = chunk.slice(offset, runEnd);
            for (let at = 0; at < run.length;) {
              const length = readLength(run, at);
              at += HEADER_BYTES;
              emit(run.subarray(at, at + length));
              at += length;
            }
            offset = runEnd;
            continue;
          }
          const length = readLength(chunk, offset);
          if (length > this.#max) {
            throw new MessageTooBigError(length, this.#max, this.#option);
          }
          offset += HEADER_BYTES;
          payload.start(length);
        } else {
          this.#header = ((this.#header << 8) | chunk[offset++]!) >>> 0;
          if (++this.#headerBytes < HEADER_BYTES) continue;
          const length = this.#header;
          this.#header = 0;
          this.#headerBytes = 0;
          if (length > this.#max) {
            throw new MessageTooBigError(length, this.#max, this.#option);
          }
          if (length === 0) {
            emit(new Uint8Array(0));
            continue;
          }
          payload.start(length);
        }
      }
      offset += payload.append(chunk, offset, end);
      if (payload.complete) emit(payload.finish());
    }
  }

  // The end of the run of complete, within-limit frames starting at
  // `offset` (`offset` itself when there is none).
  #completeFrames(chunk: Uint8Array, offset: number): number {
    const end = chunk.length;
    while (end - offset >= HEADER_BYTES) {
      const length = readLength(chunk, offset);
      if (length > this.#max || end - offset - HEADER_BYTES < length) break;
      offset += HEADER_BYTES + length;
    }
    return offset;
  }
}

function readLength(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
    bytes[at + 3]!) >>> 0;
}
