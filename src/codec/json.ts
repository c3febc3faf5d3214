// JSON messages, one value per frame, over lines (NDJSON) or length-prefixed
// frames. Framing and its limits come from lines() / lengthPrefixed(); this
// file only adds JSON on top.
import type {
  Codec,
  Correlation,
  Decoder,
  Heartbeat,
  HeartbeatOptions,
} from "./codec.ts";
import { typeField } from "./_route_keys.ts";
import { sizeLimit } from "./_limit.ts";
import { kindOf, withKind } from "./_kind.ts";
import { decodeUtf8 } from "./_utf8.ts";
import { DecodeError } from "../errors.ts";
import { lines } from "./lines.ts";
import { lengthPrefixed } from "./length_prefixed.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../defaults.ts";

/**
 * Options for {@linkcode json}.
 *
 * @example Length-prefixed JSON with a small frame limit
 * ```ts
 * import { FrameTooLargeError, json, type JsonOptions } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Msg = { text: string };
 * const options: JsonOptions = { framing: "length", maxFrameBytes: 4096 };
 * const codec = json<Msg>(options);
 * const got: Msg[] = [];
 * codec.decoder().decode(codec.encode({ text: "hi" }), (message) => got.push(message));
 * assert.deepEqual(got, [{ text: "hi" }]);
 *
 * const big = codec.encode({ text: "x".repeat(5000) });
 * assert.throws(() => codec.decoder().decode(big, () => {}), FrameTooLargeError);
 * ```
 */
export interface JsonOptions {
  /**
   * How values are framed on the wire: `"lines"` puts one JSON text per
   * `\n`-terminated line (NDJSON, readable with `nc`); `"length"` prefixes
   * each UTF-8 JSON text with its 4-byte big-endian length
   * ({@linkcode lengthPrefixed}).
   *
   * @default {"lines"}
   */
  framing?: "lines" | "length";
  /**
   * The largest frame accepted, in bytes of UTF-8 JSON (line terminator or
   * length header not counted). Larger frames are a
   * {@linkcode FrameTooLargeError}, raised before they are buffered whole.
   *
   * @default {1048576}
   */
  maxFrameBytes?: number;
  /**
   * JSON values to send as a heartbeat's ping and pong (they may be
   * equal), e.g. `{ ping: { type: "ping" }, pong: { type: "pong" } }`, so
   * that `heartbeatInterval` has something to send. A frame is recognised
   * as a ping or pong by its exact text as this codec encodes the value
   * (no extra spaces, same key order); the session consumes it and
   * handlers never see it. Without it the codec has no heartbeat and
   * `listen({ heartbeatInterval })` refuses it.
   *
   * @default {undefined}
   */
  heartbeat?: HeartbeatOptions<unknown>;
}

/**
 * A codec of JSON values, one value per frame.
 *
 * **Invalid JSON closes the session.** A frame that is not valid UTF-8 or
 * not valid JSON is a {@linkcode DecodeError} (its `cause` is the
 * `SyntaxError`): the session reports it to `onError` and closes with reason
 * `"decode error"`. Messages decoded before the bad frame in the same read
 * are still delivered. The peer is out of step with the protocol, and
 * guessing where its next valid value starts would hide the fault; a peer
 * that wants to send free text should use {@linkcode lines}.
 *
 * Empty frames — blank (or whitespace-only) lines, zero-length frames —
 * carry no value and are skipped, so a peer may send them as keepalives.
 * At the end of the input (the peer half-closes), a last line without `\n`
 * is still a value; a length frame cut short is a
 * {@linkcode TruncatedFrameError}.
 *
 * **Requests and replies** ({@linkcode Codec.correlation}, for
 * `Session.request()` / `reply()` and `Client.request()`) travel as the
 * message plus one reserved field: `$id` (the request's id) on a request,
 * `$re` (the id it answers) on a reply, e.g.
 * `{"type":"getUser","id":17,"$id":1}` → `{"type":"user","name":"ada","$re":1}`.
 * The message's own fields are never changed; one that already holds the
 * reserved field is refused with a `TypeError` naming it. A peer in any
 * language takes part by echoing `$id` back as `$re`.
 *
 * Decoded values are trusted to match `In` as far as their shape goes:
 * `JSON.parse` does not validate types. Check untrusted fields in handlers
 * (or in router middleware) before relying on them.
 *
 * Encoding uses `JSON.stringify`; a value it cannot represent (`undefined`,
 * a function, a `BigInt`, a cycle) is a `TypeError`.
 *
 * Its route key ({@linkcode Codec.routeKey}, used by `Router`) is a
 * message's string `type` field.
 *
 * @typeParam In The type of decoded messages (not validated).
 * @typeParam Out The type of messages sent.
 * @param options Framing and limits; see {@linkcode JsonOptions}.
 * @returns A JSON codec.
 * @throws {RangeError} When `framing` or `maxFrameBytes` is invalid.
 * @throws {TypeError} When a heartbeat value cannot be encoded.
 *
 * @example Lines (the default) and length-prefixed frames
 * ```ts
 * import { json } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Msg = { type: "chat"; text: string };
 * const ndjson = json<Msg>();
 * const frame = ndjson.encode({ type: "chat", text: "hi" });
 * assert.equal(new TextDecoder().decode(frame), '{"type":"chat","text":"hi"}\n');
 *
 * const binary = json<Msg>({ framing: "length", maxFrameBytes: 4096 });
 * const got: Msg[] = [];
 * binary.decoder().decode(binary.encode({ type: "chat", text: "yo" }), (m) => got.push(m));
 * assert.deepEqual(got, [{ type: "chat", text: "yo" }]);
 * ```
 *
 * @example Invalid JSON is a decode error
 * ```ts
 * import { DecodeError, json } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const decoder = json().decoder();
 * const bytes = new TextEncoder().encode('{"ok":1}\n{oops}\n');
 * const got: unknown[] = [];
 * assert.throws(() => decoder.decode(bytes, (m) => got.push(m)), DecodeError);
 * assert.deepEqual(got, [{ ok: 1 }]);
 * ```
 */
export function json<In = unknown, Out = In>(
  options: JsonOptions = {},
): Codec<In, Out> {
  const framing = options.framing ?? "lines";
  const maxFrameBytes = sizeLimit(
    "maxFrameBytes",
    options.maxFrameBytes,
    DEFAULT_MAX_FRAME_BYTES,
    1,
    0xffffffff,
  );
  const encoder = new TextEncoder();
  const beats = options.heartbeat === undefined
    ? undefined
    : jsonBeats(options.heartbeat);
  if (framing === "lines") {
    const inner = kindOf(lines({ maxLineBytes: maxFrameBytes }))!;
    // JSON.stringify without indentation never emits a raw line feed.
    const frame = (text: string) => encoder.encode(text + "\n");
    const heartbeat = beats && jsonHeartbeat<In>(beats, frame);
    const codec: Codec<In, Out> = {
      name: "json",
      encode(message: Out): Uint8Array {
        return frame(stringify(message));
      },
      decoder(): Decoder<In> {
        return new JsonLineDecoder<In>(
          inner.bounded(undefined, maxFrameBytes, "maxFrameBytes"),
          beats,
        );
      },
      ...(heartbeat === undefined ? {} : { heartbeat }),
      routeKey: typeField,
      correlation: jsonCorrelation as Correlation<In, Out>,
    };
    return withKind(codec, {
      framing: "json",
      option: "maxFrameBytes",
      limit: maxFrameBytes,
      bounded: (_link, limit, option) =>
        new JsonLineDecoder<In>(inner.bounded(undefined, limit, option), beats),
    });
  }
  if (framing === "length") {
    const inner = lengthPrefixed({ maxFrameBytes });
    const innerKind = kindOf(inner)!;
    const frame = (text: string) => inner.encode(encoder.encode(text));
    const heartbeat = beats && jsonHeartbeat<In>(beats, frame);
    const codec: Codec<In, Out> = {
      name: "json",
      encode(message: Out): Uint8Array {
        return frame(stringify(message));
      },
      decoder(): Decoder<In> {
        return new JsonFrameDecoder<In>(
          innerKind.bounded(undefined, maxFrameBytes, "maxFrameBytes"),
          beats,
        );
      },
      ...(heartbeat === undefined ? {} : { heartbeat }),
      routeKey: typeField,
      correlation: jsonCorrelation as Correlation<In, Out>,
    };
    return withKind(codec, {
      framing: "json",
      option: "maxFrameBytes",
      limit: maxFrameBytes,
      bounded: (_link, limit, option) =>
        new JsonFrameDecoder<In>(
          innerKind.bounded(undefined, limit, option),
          beats,
        ),
    });
  }
  throw new RangeError(
    `framing must be "lines" or "length", got ${JSON.stringify(framing)}`,
  );
}

function stringify(message: unknown): string {
  const text = JSON.stringify(message);
  if (typeof text !== "string") {
    throw new TypeError(`Cannot encode ${typeof message} as JSON`);
  }
  return text;
}

// The heartbeat's texts and the frozen values decoders emit for them: the
// decoder compares a frame's text (cheap) and emits the shared value, which
// the heartbeat then recognises by identity.
interface Beats {
  pingText: string;
  pongText: string;
  ping: unknown;
  pong: unknown;
}

function jsonBeats(options: HeartbeatOptions<unknown>): Beats {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("heartbeat must be an object { ping, pong }");
  }
  const pingText = stringify(options.ping);
  const pongText = stringify(options.pong);
  const ping = deepFreeze(JSON.parse(pingText));
  const pong = pongText === pingText ? ping : deepFreeze(JSON.parse(pongText));
  return { pingText, pongText, ping, pong };
}

function jsonHeartbeat<In>(
  beats: Beats,
  frame: (text: string) => Uint8Array,
): Heartbeat<In> {
  return {
    ping: frame(beats.pingText),
    pong: frame(beats.pongText),
    isPing: (message) => message === beats.ping,
    isPong: (message) => message === beats.pong,
  };
}

function deepFreeze(value: unknown): unknown {
  if (typeof value === "object" && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

// A frame's value: the heartbeat's shared one when the text is its ping or
// pong, else parsed.
function valueOf(text: string, beats: Beats | undefined): unknown {
  if (beats !== undefined) {
    if (text === beats.pingText) return beats.ping;
    if (text === beats.pongText) return beats.pong;
  }
  return parse(text);
}

const BLANK = /^\s*$/;
const SKIP: unique symbol = Symbol("skip");

// Parses a frame's text; SKIP for blank text. The blank test only runs after
// JSON.parse has failed, so valid values pay nothing for it.
function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (BLANK.test(text)) return SKIP;
    throw new DecodeError(
      `Invalid JSON in frame: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

// Both decoders keep one bound callback for the inner decoder and swap the
// outer `emit` in per call, so decoding allocates nothing per chunk.
class JsonLineDecoder<In> implements Decoder<In> {
  #inner: Decoder<string>;
  #beats: Beats | undefined;
  #emit: (message: In) => void = () => {};
  #onLine = (line: string): void => {
    if (line.length === 0) return;
    const value = valueOf(line, this.#beats);
    if (value !== SKIP) this.#emit(value as In);
  };

  constructor(inner: Decoder<string>, beats: Beats | undefined) {
    this.#inner = inner;
    this.#beats = beats;
  }

  get buffered(): number {
    return this.#inner.buffered;
  }

  decode(chunk: Uint8Array, emit: (message: In) => void): void {
    this.#emit = emit;
    this.#inner.decode(chunk, this.#onLine);
  }

  end(emit: (message: In) => void): void {
    this.#emit = emit;
    this.#inner.end?.(this.#onLine);
  }
}

class JsonFrameDecoder<In> implements Decoder<In> {
  #inner: Decoder<Uint8Array>;
  #beats: Beats | undefined;
  #emit: (message: In) => void = () => {};
  #onFrame = (frame: Uint8Array): void => {
    if (frame.length === 0) return;
    let text: string;
    try {
      text = decodeUtf8(frame);
    } catch (error) {
      throw new DecodeError("JSON frame is not valid UTF-8", { cause: error });
    }
    const value = valueOf(text, this.#beats);
    if (value !== SKIP) this.#emit(value as In);
  };

  constructor(inner: Decoder<Uint8Array>, beats: Beats | undefined) {
    this.#inner = inner;
    this.#beats = beats;
  }

  get buffered(): number {
    return this.#inner.buffered;
  }

  decode(chunk: Uint8Array, emit: (message: In) => void): void {
    this.#emit = emit;
    this.#inner.decode(chunk, this.#onFrame);
  }

  end(emit: (message: In) => void): void {
    this.#emit = emit;
    this.#inner.end?.(this.#onFrame);
  }
}

// Requests carry `$id`, replies `$re`: fields of the JSON objects
// themselves, so a peer in any language can take part, but reserved ones, so
// that a message's own `id` (`{ type: "getUser", id: 17 }`) or `re` is never
// overwritten, and a user message with a numeric `re` is never mistaken for a
// reply. A message that already holds the reserved field is refused rather
// than silently changed.
const REQUEST_FIELD = "$id";
const REPLY_FIELD = "$re";

const jsonCorrelation: Correlation<unknown, unknown> = {
  request(message: unknown, id: number): unknown {
    if (!isRecord(message)) {
      throw new TypeError(
        `json() requests must be objects, to carry "${REQUEST_FIELD}"`,
      );
    }
    refuseReserved(message, REQUEST_FIELD);
    return { ...message, [REQUEST_FIELD]: id };
  },
  replyTo(message: unknown): number | undefined {
    if (!isRecord(message)) return undefined;
    const re = message[REPLY_FIELD];
    return typeof re === "number" ? re : undefined;
  },
  reply(request: unknown, response: unknown): unknown {
    const id = isRecord(request) ? request[REQUEST_FIELD] : undefined;
    if (typeof id !== "number") {
      throw new TypeError(
        `Cannot reply to a message without a numeric "${REQUEST_FIELD}"`,
      );
    }
    if (!isRecord(response)) {
      throw new TypeError(
        `json() replies must be objects, to carry "${REPLY_FIELD}"`,
      );
    }
    refuseReserved(response, REPLY_FIELD);
    return { ...response, [REPLY_FIELD]: id };
  },
};

function refuseReserved(message: Record<string, unknown>, field: string): void {
  if (Object.hasOwn(message, field)) {
    throw new TypeError(
      `Message already has "${field}", the field json() reserves for correlation`,
    );
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
