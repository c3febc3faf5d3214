// UTF-8 text lines: the chat room's framing, and what `nc` speaks.
import type { Codec, Decoder, Heartbeat, HeartbeatOptions } from "./codec.ts";
import { DecodeError, MessageTooBigError } from "../errors.ts";
import { sizeLimit } from "./_limit.ts";
import { withKind } from "./_kind.ts";
import { decodeUtf8 } from "./_utf8.ts";
import { firstWord } from "./_route_keys.ts";
import { DEFAULT_MAX_LINE_BYTES } from "../defaults.ts";

const LF = 0x0a;
const CR = 0x0d;

/**
 * Options for {@linkcode lines}.
 *
 * @example A chat-sized line limit
 * ```ts
 * import { FrameTooLargeError, lines, type LinesOptions } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const options: LinesOptions = { maxLineBytes: 8 };
 * const decoder = lines(options).decoder();
 * assert.throws(
 *   () => decoder.decode(new TextEncoder().encode("far too long\n"), () => {}),
 *   FrameTooLargeError,
 * );
 * ```
 */
export interface LinesOptions {
  /**
   * The longest line accepted, in bytes of UTF-8, not counting the `\n` or
   * `\r\n` terminator. A longer line is a {@linkcode FrameTooLargeError},
   * raised as soon as the excess arrives (the line is never buffered whole).
   *
   * @default {65536}
   */
  maxLineBytes?: number;
  /**
   * Lines to send as a heartbeat's ping and pong (they may be equal), so
   * that `heartbeatInterval` has something to send. The session consumes
   * them: handlers never see a line equal to `ping` or `pong`. Without
   * it the codec has no heartbeat and `listen({ heartbeatInterval })`
   * refuses it.
   *
   * @default {undefined}
   */
  heartbeat?: HeartbeatOptions<string>;
}

/**
 * A codec for UTF-8 text lines terminated by `\n` or `\r\n`.
 *
 * **What a line is.** A line ends at a `\n` terminator, at a `\r\n`
 * terminator (**one** `\r` just before the `\n`, and no other, belongs to
 * it: `"a\r\r\n"` is the line `"a\r"`), or at the end of the input, so that
 * a last line without `\n` is delivered when the peer half-closes (`printf
 * 'a\nb' | nc` sends the lines `"a"` and `"b"`; a final `"b\r"` stays
 * `"b\r"`). Invalid UTF-8 is a
 * {@linkcode DecodeError}; a line longer than `maxLineBytes` is a
 * {@linkcode FrameTooLargeError}.
 *
 * **Encoding takes back every line decoding produces**: any string without
 * `\n`. It appends `\n`, or `\r\n` when the line itself ends in `\r` (so
 * that the dropped `\r` is the added one and the line arrives whole). A
 * string that contains `\n` is refused with a `TypeError`, because it would
 * reach the peer as two messages, and so is a value that is not a string.
 *
 * Its route key ({@linkcode Codec.routeKey}, used by `Router`) is a line's
 * first word: everything before the first space.
 *
 * @param options Limits and heartbeat; see {@linkcode LinesOptions}.
 * @returns A codec of strings.
 * @throws {RangeError} When `maxLineBytes` is invalid.
 * @throws {TypeError} When a heartbeat line cannot be encoded.
 *
 * @example Encoding and decoding a line split across two reads
 * ```ts
 * import { lines } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const codec = lines({ maxLineBytes: 1024 });
 * const frame = codec.encode("héllo");
 * const decoder = codec.decoder();
 * const got: string[] = [];
 * decoder.decode(frame.subarray(0, 2), (line) => got.push(line));
 * decoder.decode(frame.subarray(2), (line) => got.push(line));
 * assert.deepEqual(got, ["héllo"]);
 * ```
 *
 * @example A last line without a line feed, and lines ending in CR
 * ```ts
 * import { lines } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const codec = lines();
 * const decoder = codec.decoder();
 * const got: string[] = [];
 * decoder.decode(new TextEncoder().encode("a\r\r\nlast"), (l) => got.push(l));
 * decoder.end?.((line) => got.push(line)); // the peer half-closed
 * assert.deepEqual(got, ["a\r", "last"]);
 * // What decoding produced, encoding takes back, and it decodes the same.
 * assert.deepEqual(codec.encode("a\r"), new TextEncoder().encode("a\r\r\n"));
 * ```
 */
export function lines(options: LinesOptions = {}): Codec<string> {
  const maxLineBytes = sizeLimit(
    "maxLineBytes",
    options.maxLineBytes,
    DEFAULT_MAX_LINE_BYTES,
    1,
    Number.MAX_SAFE_INTEGER,
  );
  const encoder = new TextEncoder();
  // Shared by every connection's decoder: non-streaming decode keeps no state.
  const heartbeat = options.heartbeat === undefined
    ? undefined
    : lineHeartbeat(options.heartbeat, maxLineBytes, encoder);
  const codec: Codec<string> = {
    name: "lines",
    ...(heartbeat === undefined ? {} : { heartbeat }),
    routeKey: firstWord,
    encode(line: string): Uint8Array {
      checkLine(line);
      return encoder.encode(line + terminator(line));
    },
    encodeInto(line: string, target: Uint8Array, offset: number): number {
      checkLine(line);
      const endsInCr = line.charCodeAt(line.length - 1) === CR;
      // Every UTF-16 unit takes at least one byte: a cheap early refusal.
      const limit = target.length - (endsInCr ? 2 : 1);
      if (limit - offset < line.length) return -1;
      const { read, written } = encoder.encodeInto(
        line,
        target.subarray(offset, limit),
      );
      if (read < line.length) return -1;
      let at = offset + written;
      if (endsInCr) target[at++] = CR;
      target[at++] = LF;
      return at;
    },
    decoder(): Decoder<string> {
      return new LineDecoder(maxLineBytes, "maxLineBytes");
    },
  };
  return withKind(codec, {
    framing: "lines",
    option: "maxLineBytes",
    limit: maxLineBytes,
    bounded: (_link, limit, option) => new LineDecoder(limit, option),
  });
}

function lineHeartbeat(
  options: HeartbeatOptions<string>,
  maxLineBytes: number,
  encoder: TextEncoder,
): Heartbeat<string> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("heartbeat must be an object { ping, pong }");
  }
  const { ping, pong } = options;
  const frames = [ping, pong].map((line, i) => {
    const name = i === 0 ? "heartbeat.ping" : "heartbeat.pong";
    if (typeof line !== "string") {
      throw new TypeError(`${name} must be a string, got ${typeof line}`);
    }
    checkLine(line);
    const end = terminator(line);
    const frame = encoder.encode(line + end);
    if (frame.length - end.length > maxLineBytes) {
      throw new RangeError(`${name} is longer than maxLineBytes`);
    }
    return frame;
  });
  return {
    ping: frames[0]!,
    pong: frames[1]!,
    isPing: (line) => line === ping,
    isPong: (line) => line === pong,
  };
}

// The decoder drops one CR before the LF, so a line that ends in CR needs
// a CR of its own in the terminator to arrive whole.
function terminator(line: string): string {
  return line.charCodeAt(line.length - 1) === CR ? "\r\n" : "\n";
}

// Refuses what would not come back as the same one line: a non-string, or a
// line feed (two lines). Anything else decodes back to itself.
function checkLine(line: string): void {
  if (typeof line !== "string") {
    throw new TypeError(
      `lines() encodes strings, got ${line === null ? "null" : typeof line}`,
    );
  }
  if (line.includes("\n")) {
    throw new TypeError("Cannot encode a line that contains a line feed");
  }
}

// Bytes kept between reads are copied into `#partial`, which grows only while
// a long line arrives and is dropped again once it completes, so an idle
// connection holds no buffer at all.
class LineDecoder implements Decoder<string> {
  #max: number;
  #option: string;
  #partial: Uint8Array | undefined;
  #partialLength = 0;

  constructor(max: number, option: string) {
    this.#max = max;
    this.#option = option;
  }

  get buffered(): number {
    return this.#partialLength;
  }

  decode(chunk: Uint8Array, emit: (line: string) => void): void {
    let start = 0;
    const end = chunk.length;
    if (this.#partialLength > 0) {
      const newline = chunk.indexOf(LF);
      if (newline < 0) {
        this.#keep(chunk, 0, end);
        return;
      }
      this.#keep(chunk, 0, newline);
      const partial = this.#partial!;
      const length = this.#partialLength;
      this.#partialLength = 0;
      if (partial.length > 4096) this.#partial = undefined;
      emit(this.#text(partial, 0, beforeCr(partial, 0, length)));
      start = newline + 1;
    }
    while (start < end) {
      const newline = chunk.indexOf(LF, start);
      if (newline < 0) {
        this.#keep(chunk, start, end);
        return;
      }
      emit(this.#text(chunk, start, beforeCr(chunk, start, newline)));
      start = newline + 1;
    }
  }

  // The end of the input ends the last line too, so a final line without
  // "\n" (`printf 'a\nb' | nc`) is delivered instead of dropped. No CR is
  // dropped: only one before a LF belongs to a terminator (as over
  // WebSocket, where a text message "a\r" is the line "a\r").
  end(emit: (line: string) => void): void {
    const length = this.#partialLength;
    if (length === 0) return;
    const partial = this.#partial!;
    this.#partialLength = 0;
    this.#partial = undefined;
    emit(this.#text(partial, 0, length));
  }

  // Decodes bytes [start, end), enforcing the limit.
  #text(bytes: Uint8Array, start: number, end: number): string {
    if (end - start > this.#max) {
      throw new MessageTooBigError(end - start, this.#max, this.#option);
    }
    try {
      return decodeUtf8(bytes.subarray(start, end));
    } catch (error) {
      throw new DecodeError("Line is not valid UTF-8", { cause: error });
    }
  }

  // Appends bytes [start, end) to the partial line. The limit allows one
  // extra byte for a CR that may precede the LF still to come.
  #keep(bytes: Uint8Array, start: number, end: number): void {
    const needed = this.#partialLength + (end - start);
    if (needed > this.#max + 1) {
      throw new MessageTooBigError(needed, this.#max, this.#option);
    }
    let partial = this.#partial;
    if (partial === undefined || partial.length < needed) {
      const grown = new Uint8Array(
        Math.min(this.#max + 1, Math.max(256, needed * 2)),
      );
      if (partial !== undefined) {
        grown.set(partial.subarray(0, this.#partialLength));
      }
      this.#partial = partial = grown;
    }
    partial.set(bytes.subarray(start, end), this.#partialLength);
    this.#partialLength = needed;
  }
}

// Where a line ended by the LF at `end` stops: before one CR, the CR of a
// CRLF terminator.
function beforeCr(bytes: Uint8Array, start: number, end: number): number {
  return end > start && bytes[end - 1] === CR ? end - 1 : end;
}
