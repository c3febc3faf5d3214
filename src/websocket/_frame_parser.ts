// Package-internal: the incremental RFC 6455 frame parser (section 5). It
// turns one connection's incoming bytes, cut anywhere, into whole messages
// (text or binary, fragments reassembled) and control events (ping, pong,
// close), and enforces every framing rule with a typed error that says which
// close code to answer with. It is a `Decoder`, so a session drives it like
// any codec's decoder and the same split/fuzz test helpers apply.
//
// Memory: nothing is allocated for a frame's announced length. Limits are
// checked on the header, before any payload byte is stored; payload storage
// grows with the bytes that actually arrive. A message that arrives whole in
// one chunk is decoded straight from the chunk (no copy for text).
import type { Decoder } from "../codec/codec.ts";
import { sizeLimit } from "../codec/_limit.ts";
import { TruncatedFrameError } from "../errors.ts";
import { MessageTooBigError, WebSocketProtocolError } from "./_errors.ts";
import { applyMask } from "./_mask.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../defaults.ts";

/** A WebSocket message: text frames decode to a string, binary to bytes. */
export type WebSocketMessage = string | Uint8Array;

/**
 * Options for {@linkcode FrameParser}.
 *
 * @example A server-side parser with a 64 KiB message limit
 * ```ts
 * import { FrameParser, type FrameParserOptions } from "./_frame_parser.ts";
 * import assert from "node:assert/strict";
 *
 * let pinged = 0;
 * const options: FrameParserOptions = {
 *   role: "server",
 *   maxMessageBytes: 65536,
 *   onPing: () => pinged++,
 * };
 * const parser = new FrameParser(options);
 * parser.decode(new Uint8Array([0x89, 0x80, 1, 2, 3, 4]), () => {}); // masked empty ping
 * assert.equal(pinged, 1);
 * ```
 */
export interface FrameParserOptions {
  /**
   * Which end of the connection this parser runs on. `"server"` parses the
   * frames a client sends, which MUST be masked; `"client"` parses the
   * frames a server sends, which MUST NOT be. A frame breaking this is a
   * protocol error (close code 1002).
   *
   * @default {"server"}
   */
  role?: "server" | "client";
  /**
   * The largest message accepted, in bytes: the sum of a message's fragment
   * payloads. A frame header that would take the message past it throws a
   * {@linkcode MessageTooBigError} (close code 1009) before any of its
   * payload is stored. Control frames have their own fixed limit of 125.
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * The option that set `maxMessageBytes`, named by the error (and so by
   * the close reason) when a message breaks the limit: the codec's own
   * (`"maxLineBytes"`) when its limit is the smaller one.
   *
   * @default {"maxMessageBytes"}
   */
  limitOption?: string;
  /**
   * Called with the payload of each ping (a copy the callee may keep, e.g.
   * to echo it in a pong). The parser does not answer pings itself.
   */
  onPing?: (payload: Uint8Array) => void;
  /** Called with the payload of each pong (a copy the callee may keep). */
  onPong?: (payload: Uint8Array) => void;
  /**
   * Called once, for the peer's close frame, with its status code (1005
   * when the frame has no payload) and its reason (`""` when absent). The
   * parser ignores every byte after a close frame (RFC 6455 section 5.5.1:
   * nothing may follow it).
   */
  onClose?: (code: number, reason: string) => void;
  /**
   * Set when permessage-deflate (RFC 7692) was negotiated: a data message
   * whose first frame has RSV1 set is compressed, and its whole payload is
   * given to this function, which returns it inflated or throws (1007 for
   * bad data, 1009 past the limit). Unset: RSV1 is a protocol error.
   */
  inflate?: (payload: Uint8Array) => Uint8Array;
}

/**
 * Where a parser made with one reports: each whole message and each control
 * frame, as {@linkcode FrameParserOptions}'s callbacks would be told. A
 * WebSocket session's decoder is its own parser's sink, so a parser costs a
 * session no closures (issue 19 §4: a million quiet sessions).
 *
 * @example A sink that counts
 * ```ts
 * import { FrameParser, type FrameSink } from "./_frame_parser.ts";
 * import assert from "node:assert/strict";
 *
 * const seen: string[] = [];
 * const sink: FrameSink = {
 *   onMessage: (message) => void seen.push(String(message)),
 *   onPing: () => void seen.push("ping"),
 *   onPong: () => void seen.push("pong"),
 *   onClose: (code) => void seen.push(`close ${code}`),
 * };
 * const parser = new FrameParser({ role: "client" }, sink);
 * parser.feed(new Uint8Array([0x81, 0x02, 0x68, 0x69, 0x89, 0x00]));
 * assert.deepEqual(seen, ["hi", "ping"]);
 * ```
 */
export interface FrameSink {
  /** Receives each whole data message, as `decode()`'s `emit` would. */
  onMessage(message: WebSocketMessage): void;
  /** As {@linkcode FrameParserOptions.onPing}. */
  onPing(payload: Uint8Array): void;
  /** As {@linkcode FrameParserOptions.onPong}. */
  onPong(payload: Uint8Array): void;
  /** As {@linkcode FrameParserOptions.onClose}. */
  onClose(code: number, reason: string): void;
}

// What a parser reads from its options, once per options object: every
// session of a server shares one (issue 19 §4).
interface ParserConfig {
  readonly expectMask: boolean;
  readonly max: number;
  readonly limitOption: string;
  readonly inflate: ((payload: Uint8Array) => Uint8Array) | undefined;
}

// Checked by value, so options changed between two parsers still count.
const configs = new WeakMap<FrameParserOptions, ParserConfig>();

function configOf(options: FrameParserOptions): ParserConfig {
  const expectMask = (options.role ?? "server") === "server";
  const max = sizeLimit(
    "maxMessageBytes",
    options.maxMessageBytes,
    DEFAULT_MAX_MESSAGE_BYTES,
    0,
    Number.MAX_SAFE_INTEGER,
  );
  const limitOption = options.limitOption ?? "maxMessageBytes";
  const inflate = options.inflate;
  const cached = configs.get(options);
  if (
    cached !== undefined && cached.expectMask === expectMask &&
    cached.max === max && cached.limitOption === limitOption &&
    cached.inflate === inflate
  ) {
    return cached;
  }
  const config = Object.freeze({ expectMask, max, limitOption, inflate });
  configs.set(options, config);
  return config;
}

// The sink of a parser made with callbacks: `decode()` gives it `emit`.
class CallbackSink implements FrameSink {
  emit: (message: WebSocketMessage) => void = ignore;
  readonly #onPing: ((payload: Uint8Array) => void) | undefined;
  readonly #onPong: ((payload: Uint8Array) => void) | undefined;
  readonly #onClose: ((code: number, reason: string) => void) | undefined;

  constructor(options: FrameParserOptions) {
    this.#onPing = options.onPing;
    this.#onPong = options.onPong;
    this.#onClose = options.onClose;
  }

  onMessage(message: WebSocketMessage): void {
    this.emit(message);
  }

  onPing(payload: Uint8Array): void {
    this.#onPing?.(payload);
  }

  onPong(payload: Uint8Array): void {
    this.#onPong?.(payload);
  }

  onClose(code: number, reason: string): void {
    this.#onClose?.(code, reason);
  }
}

function ignore(): void {}

// Where the parser is within the byte stream.
const HEADER = 0; // collecting a frame header (2 to 14 bytes)
const DATA = 1; // collecting a text, binary or continuation payload
const CONTROL = 2; // collecting a ping, pong or close payload (<= 125 bytes)
const CLOSED = 3; // after a close frame: every later byte is ignored

const OP_CONTINUATION = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;

const MAX_HEADER = 14;
const MAX_CONTROL = 125;
// The scratch that holds a header or a control payload split across chunks
// (made on the first split: most frames arrive whole).
const SCRATCH = MAX_HEADER + MAX_CONTROL;
// Holds a frame's masking key for applyMask: the parser keeps the key in
// two small integers, and decoding is synchronous, so one serves them all.
const maskKey = new Uint8Array(4);
// First allocation for a payload that arrives in pieces; storage up to this
// size is kept for the next message (text only needs it transiently).
const INITIAL_STORAGE = 16384;
const KEEP_STORAGE = 16384;

// Non-streaming decodes keep no state between calls, so these decoders serve
// every parser. `ignoreBOM` keeps a leading U+FEFF: it is part of the text.
// In Deno 2.9 a fatal decoder is 3-7x slower than a replacing one (280 vs
// 104 ns for 64 bytes, 3.1 vs 0.46 us for 4 KiB), so text is decoded with
// the replacing one, and only a result holding U+FFFD (an error was
// replaced, or the peer sent U+FFFD itself) is checked again, fatally.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Tells whether `code` may appear in a close frame on the wire (RFC 6455
 * section 7.4 and the IANA registry): 1000–1003, 1007–1014 and 3000–4999.
 * 1004 is reserved; 1005, 1006 and 1015 only ever describe a close locally.
 *
 * @param code A close status code.
 * @returns `true` when a peer may send it.
 *
 * @example
 * ```ts
 * import { isValidCloseCode } from "./_frame_parser.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isValidCloseCode(1000));
 * assert.ok(isValidCloseCode(4000));
 * assert.ok(!isValidCloseCode(1005));
 * assert.ok(!isValidCloseCode(999));
 * ```
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 &&
    code !== 1006) || (code >= 3000 && code <= 4999);
}

/**
 * The incremental RFC 6455 frame parser. Feed it a connection's bytes with
 * {@linkcode FrameParser.decode} in chunks of any size; it emits each whole
 * message (fragments reassembled; text validated as UTF-8 as it arrives,
 * across fragment boundaries) and calls the control callbacks of its
 * {@linkcode FrameParserOptions}.
 *
 * Every violation throws a {@linkcode WebSocketProtocolError} (close code
 * 1002 or 1007) or a {@linkcode MessageTooBigError} (1009); `closeCode` on
 * either is the code to send. After a throw, every later call throws the
 * same error again.
 *
 * **`decode` unmasks the payload in place**: the bytes of `chunk` are changed
 * (a session's read buffer is overwritten by the next read anyway, and this
 * saves a copy). Emitted messages never alias `chunk`.
 *
 * Not checked here, by design: that a connection ever closes, how many pings
 * arrive per second (the session bounds both), and that lengths use the
 * minimal encoding (RFC 6455 asks it of senders; common receivers accept
 * either).
 *
 * @example Parsing the two "Hello" frames of RFC 6455 section 5.7
 * ```ts
 * import { FrameParser } from "./_frame_parser.ts";
 * import assert from "node:assert/strict";
 *
 * const client = new FrameParser({ role: "client" }); // frames from a server
 * const got: (string | Uint8Array)[] = [];
 * client.decode(
 *   new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
 *   (message) => got.push(message),
 * );
 * const server = new FrameParser({ role: "server" }); // frames from a client
 * const masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51];
 * server.decode(new Uint8Array(masked), (message) => got.push(message));
 * assert.equal(server.buffered, 10); // all but the last byte: incomplete
 * server.decode(new Uint8Array([0x58]), (message) => got.push(message));
 * assert.deepEqual(got, ["Hello", "Hello"]);
 * assert.equal(server.buffered, 0);
 * ```
 */
export class FrameParser implements Decoder<WebSocketMessage> {
  // Shared by every parser made with the same options.
  readonly #config: ParserConfig;
  readonly #sink: FrameSink;

  #state = HEADER;
  #error: unknown = undefined;

  // A header split across chunks at [0, MAX_HEADER), a control payload
  // split across chunks after it; made on the first split (an idle session
  // holds none).
  #scratch: Uint8Array | undefined;
  #headFilled = 0;
  #controlFilled = 0;
  // The frame's masking key, as two 16-bit halves (small integers: no
  // buffer of its own per connection).
  #keyHigh = 0;
  #keyLow = 0;

  // The frame being read.
  #opcode = 0;
  #fin = false;
  #masked = false;
  #remaining = 0; // payload bytes still to come
  #phase = 0; // payload bytes already read (the masking key's phase)
  #controlLength = 0;
  #frameHeader = 0; // the header's size while its payload is being read

  // The message being read (possibly over several frames).
  #messageOpcode = 0; // 0: none open, else OP_TEXT or OP_BINARY
  #announced = 0; // payload bytes announced so far, for the limit
  #storage: Uint8Array | undefined;
  #filled = 0;
  #stream: TextDecoder | undefined; // validates text arriving in pieces
  #compressed = false; // RSV1 on the message's first frame

  /**
   * Creates a parser with empty state, for one connection.
   *
   * @param options Role, limit and control callbacks. Parsers made with
   * the same options object (unchanged) share what they read from it.
   * @param sink Where messages and control frames go instead: the
   * callbacks of `options` are not used, and the parser is fed with
   * {@linkcode FrameParser.feed}.
   * @throws {RangeError} When `maxMessageBytes` is not an integer from 0 to
   * 2^53 - 1.
   */
  constructor(options: FrameParserOptions = {}, sink?: FrameSink) {
    this.#config = configOf(options);
    this.#sink = sink ?? new CallbackSink(options);
  }

  /**
   * Bytes held for a frame or message that has not completed yet: a partial
   * header, a partial control payload, and the payload bytes of the open
   * message so far. A session compares it (and how long it has been
   * non-zero) against its limits.
   */
  get buffered(): number {
    return this.#headFilled + this.#frameHeader + this.#controlFilled +
      this.#filled;
  }

  /** Whether the peer's close frame has been read (later bytes are ignored). */
  get closed(): boolean {
    return this.#state === CLOSED;
  }

  /**
   * Consumes `chunk`, unmasking it in place, and calls `emit` once per
   * complete data message, in order; control frames go to the callbacks of
   * the options, in order with the messages.
   *
   * @param chunk Bytes just read. Only valid during the call; modified.
   * @param emit Receives each complete message: a string for text, a fresh
   * `Uint8Array` (the callee may keep it) for binary.
   * @throws {WebSocketProtocolError} On a protocol violation (1002) or
   * invalid UTF-8 in text or a close reason (1007).
   * @throws {MessageTooBigError} When a message would exceed
   * `maxMessageBytes` (1009).
   */
  decode(chunk: Uint8Array, emit: (message: WebSocketMessage) => void): void {
    const sink = this.#sink;
    if (!(sink instanceof CallbackSink)) {
      throw new TypeError("A parser made with a sink is fed with feed()");
    }
    sink.emit = emit;
    this.feed(chunk);
  }

  /**
   * Consumes `chunk` as {@linkcode FrameParser.decode} does, for a parser
   * made with a {@linkcode FrameSink}: each whole message goes to the
   * sink's `onMessage`.
   *
   * @param chunk Bytes just read. Only valid during the call; modified.
   * @throws {WebSocketProtocolError} As `decode()`.
   * @throws {MessageTooBigError} As `decode()`.
   */
  feed(chunk: Uint8Array): void {
    if (this.#error !== undefined) throw this.#error;
    try {
      this.#decode(chunk);
    } catch (error) {
      this.#error = error;
      this.#release();
      throw error;
    }
  }

  /**
   * The end of the input. Input that ends inside a frame (header, payload)
   * or inside a fragmented message can't be told from a lost one, so it is
   * an error, as for the framed TCP codecs; after the peer's close frame,
   * or between messages, the end is normal.
   *
   * @throws {TruncatedFrameError} When the input ended inside a frame or
   * a fragmented message.
   */
  end(): void {
    if (this.#error !== undefined || this.#state === CLOSED) return;
    if (
      this.#state !== HEADER || this.#headFilled !== 0 ||
      this.#messageOpcode !== 0
    ) {
      const error = new TruncatedFrameError(this.buffered);
      this.#error = error;
      this.#release();
      throw error;
    }
  }

  #decode(chunk: Uint8Array): void {
    const end = chunk.length;
    let pos = 0;
    for (;;) {
      const state = this.#state;
      if (state === HEADER) {
        if (pos >= end) return;
        pos = this.#readHeader(chunk, pos, end);
        if (this.#state === HEADER) return; // the header is still incomplete
      } else if (state === DATA) {
        pos = this.#readData(chunk, pos, end);
        if (this.#state === DATA) return;
      } else if (state === CONTROL) {
        pos = this.#readControl(chunk, pos, end);
        if (this.#state === CONTROL) return;
      } else {
        return; // CLOSED
      }
    }
  }

  // Validates what the first two header bytes allow (before reading any
  // further) and returns the header's full size.
  #check(b0: number, b1: number): number {
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) {
      // RSV1 marks a compressed message (RFC 7692 section 6): only with
      // the extension, and only on a data message's first frame.
      if (
        (b0 & 0x70) !== 0x40 || this.#config.inflate === undefined ||
        opcode === OP_CONTINUATION || opcode >= OP_CLOSE
      ) {
        throw protocolError(
          this.#config.inflate === undefined || (b0 & 0x30) !== 0
            ? "Reserved bits set without a negotiated extension"
            : "Compressed bit set on a control or continuation frame",
          "reserved bits set",
        );
      }
    }
    const length7 = b1 & 0x7f;
    if (opcode >= OP_CLOSE) {
      if (opcode > OP_PONG) throw reservedOpcode(opcode);
      if ((b0 & 0x80) === 0) {
        throw protocolError(
          "Fragmented control frame",
          "fragmented control frame",
        );
      }
      if (length7 > MAX_CONTROL) {
        throw protocolError(
          "Control frame payload over 125 bytes",
          "control frame too long",
        );
      }
    } else if (opcode === OP_CONTINUATION) {
      if (this.#messageOpcode === 0) {
        throw protocolError(
          "Continuation frame without a message to continue",
          "continuation without start",
        );
      }
    } else if (opcode <= OP_BINARY) {
      if (this.#messageOpcode !== 0) {
        throw protocolError(
          "New data frame while a fragmented message is open",
          "new message inside a fragmented one",
        );
      }
    } else {
      throw reservedOpcode(opcode);
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.#config.expectMask) {
      throw masked
        ? protocolError("Masked frame from a server", "masked server frame")
        : protocolError(
          "Unmasked frame from a client",
          "unmasked client frame",
        );
    }
    return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) +
      (masked ? 4 : 0);
  }

  #readHeader(chunk: Uint8Array, pos: number, end: number): number {
    if (this.#headFilled === 0 && end - pos >= 2) {
      // Fast path: the whole header is in this chunk.
      const size = this.#check(chunk[pos]!, chunk[pos + 1]!);
      if (end - pos >= size) {
        this.#startFrame(chunk, pos);
        this.#frameHeader = size;
        return pos + size;
      }
    }
    const head = this.#scratch ??= new Uint8Array(SCRATCH);
    while (this.#headFilled < 2 && pos < end) {
      head[this.#headFilled++] = chunk[pos++]!;
    }
    if (this.#headFilled < 2) return pos;
    const size = this.#check(head[0]!, head[1]!);
    const take = Math.min(size - this.#headFilled, end - pos);
    for (let i = 0; i < take; i++) head[this.#headFilled + i] = chunk[pos + i]!;
    this.#headFilled += take;
    pos += take;
    if (this.#headFilled < size) return pos;
    this.#startFrame(head, 0);
    this.#headFilled = 0;
    this.#frameHeader = size;
    return pos;
  }

  // Reads a complete, already checked header at `bytes[at]`.
  #startFrame(bytes: Uint8Array, at: number): void {
    const b0 = bytes[at]!;
    const b1 = bytes[at + 1]!;
    const opcode = b0 & 0x0f;
    const length7 = b1 & 0x7f;
    let p = at + 2;
    let length = length7;
    if (length7 === 126) {
      length = (bytes[p]! << 8) | bytes[p + 1]!;
      p += 2;
    } else if (length7 === 127) {
      const high = ((bytes[p]! << 24) | (bytes[p + 1]! << 16) |
        (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0;
      const low = ((bytes[p + 4]! << 24) | (bytes[p + 5]! << 16) |
        (bytes[p + 6]! << 8) | bytes[p + 7]!) >>> 0;
      if (high >= 0x80000000) {
        throw protocolError(
          "Frame length with the most significant bit set",
          "bad frame length",
        );
      }
      // high * 2^32 + low is exact below 2^53; anything above is too big
      // for any limit, and is reported exactly (below) as a bigint.
      length = high * 0x100000000 + low;
      if (high >= 0x200000) {
        throw new MessageTooBigError(
          BigInt(this.#announced) + (BigInt(high) << 32n) + BigInt(low),
          this.#config.max,
          this.#config.limitOption,
        );
      }
      p += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked) {
      this.#keyHigh = (bytes[p]! << 8) | bytes[p + 1]!;
      this.#keyLow = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    }
    if (opcode >= OP_CLOSE) {
      this.#opcode = opcode;
      this.#masked = masked;
      this.#controlLength = length;
      this.#controlFilled = 0;
      this.#state = CONTROL;
      return;
    }
    const announced = this.#announced + length;
    const config = this.#config;
    if (announced > config.max) {
      throw new MessageTooBigError(announced, config.max, config.limitOption);
    }
    this.#announced = announced;
    if (opcode !== OP_CONTINUATION) {
      this.#messageOpcode = opcode;
      this.#compressed = (b0 & 0x40) !== 0;
    }
    this.#opcode = opcode;
    this.#fin = (b0 & 0x80) !== 0;
    this.#masked = masked;
    this.#remaining = length;
    this.#phase = 0;
    this.#state = DATA;
  }

  #readData(chunk: Uint8Array, pos: number, end: number): number {
    const remaining = this.#remaining;
    const take = Math.min(remaining, end - pos);
    if (
      take === remaining && this.#fin && this.#opcode !== OP_CONTINUATION &&
      this.#phase === 0
    ) {
      // Fast path: a one-frame message, whole in this chunk.
      const payload = chunk.subarray(pos, pos + take);
      if (this.#masked) this.#unmask(payload, 0);
      const text = this.#opcode === OP_TEXT;
      if (this.#compressed) {
        const inflated = this.#config.inflate!(payload);
        this.#endMessage();
        this.#sink.onMessage(text ? decodeText(inflated) : inflated);
        return pos + take;
      }
      this.#endMessage();
      this.#sink.onMessage(text ? decodeText(payload) : payload.slice());
      return pos + take;
    }
    if (take > 0) {
      const piece = chunk.subarray(pos, pos + take);
      if (this.#masked) this.#unmask(piece, this.#phase);
      if (this.#messageOpcode === OP_TEXT && !this.#compressed) {
        // Validate as the bytes arrive, so bad text fails at once.
        this.#stream ??= new TextDecoder("utf-8", { fatal: true });
        try {
          this.#stream.decode(piece, { stream: true });
        } catch (cause) {
          throw invalidUtf8(cause);
        }
      }
      this.#store(piece);
      this.#phase += take;
      this.#remaining = remaining - take;
      pos += take;
    }
    if (take < remaining) return pos; // more of this payload is to come
    if (!this.#fin) {
      this.#state = HEADER; // the message goes on in a continuation frame
      this.#frameHeader = 0;
      return pos;
    }
    const storage = this.#storage;
    const size = this.#filled;
    let message: WebSocketMessage;
    if (this.#compressed) {
      // Inflated into fresh bytes: the storage is kept for the next one.
      const inflated = this.#config.inflate!(
        storage === undefined ? new Uint8Array(0) : storage.subarray(0, size),
      );
      message = this.#messageOpcode === OP_TEXT
        ? decodeText(inflated)
        : inflated;
      if (storage !== undefined && storage.length > KEEP_STORAGE) {
        this.#storage = undefined;
      }
    } else if (this.#messageOpcode === OP_TEXT) {
      if (this.#stream !== undefined) {
        try {
          this.#stream.decode(); // flush: throws on a truncated sequence
        } catch (cause) {
          throw invalidUtf8(cause);
        }
      }
      // Validated piece by piece already: the fast decoder is exact here.
      message = size === 0 ? "" : utf8.decode(storage!.subarray(0, size));
      if (storage !== undefined && storage.length > KEEP_STORAGE) {
        this.#storage = undefined;
      }
    } else if (storage === undefined || size === 0) {
      message = new Uint8Array(0);
    } else if (storage.length === size) {
      message = storage; // exactly the message: hand it over, no copy
      this.#storage = undefined;
    } else {
      message = storage.slice(0, size);
      if (storage.length > KEEP_STORAGE) this.#storage = undefined;
    }
    this.#endMessage();
    this.#sink.onMessage(message);
    return pos;
  }

  // Unmasks `bytes`, which start `phase` bytes into the frame's payload.
  #unmask(bytes: Uint8Array, phase: number): void {
    const key = maskKey;
    key[0] = this.#keyHigh >> 8;
    key[1] = this.#keyHigh;
    key[2] = this.#keyLow >> 8;
    key[3] = this.#keyLow;
    applyMask(bytes, key, 0, phase);
  }

  // Appends an (unmasked) piece of the open message's payload. Storage grows
  // with what arrived, at most to the message's size when that is known
  // (final frame) and to the limit otherwise.
  #store(piece: Uint8Array): void {
    const needed = this.#filled + piece.length;
    let storage = this.#storage;
    if (storage === undefined || needed > storage.length) {
      const cap = this.#fin ? this.#announced : this.#config.max;
      const grown = new Uint8Array(
        Math.min(
          cap,
          Math.max(storage ? storage.length * 2 : INITIAL_STORAGE, needed),
        ),
      );
      if (storage !== undefined) grown.set(storage.subarray(0, this.#filled));
      this.#storage = storage = grown;
    }
    storage.set(piece, this.#filled);
    this.#filled = needed;
  }

  #endMessage(): void {
    this.#state = HEADER;
    this.#frameHeader = 0;
    this.#messageOpcode = 0;
    this.#compressed = false;
    this.#announced = 0;
    this.#filled = 0;
  }

  #readControl(chunk: Uint8Array, pos: number, end: number): number {
    const length = this.#controlLength;
    let payload: Uint8Array;
    if (this.#controlFilled === 0 && end - pos >= length) {
      // Fast path: the whole payload is in this chunk (unmasked in place).
      payload = chunk.subarray(pos, pos + length);
      pos += length;
    } else {
      const scratch = this.#scratch ??= new Uint8Array(SCRATCH);
      const take = Math.min(length - this.#controlFilled, end - pos);
      const at = MAX_HEADER + this.#controlFilled;
      for (let i = 0; i < take; i++) scratch[at + i] = chunk[pos + i]!;
      this.#controlFilled += take;
      pos += take;
      if (this.#controlFilled < length) return pos;
      payload = scratch.subarray(MAX_HEADER, MAX_HEADER + length);
    }
    this.#controlFilled = 0;
    this.#frameHeader = 0;
    if (this.#masked) this.#unmask(payload, 0);
    if (this.#opcode === OP_CLOSE) {
      const [code, reason] = parseClosePayload(payload);
      this.#state = CLOSED;
      this.#release();
      this.#sink.onClose(code, reason);
    } else {
      this.#state = HEADER;
      if (
        this.#messageOpcode === 0 &&
        (this.#storage ?? this.#scratch ?? this.#stream) !== undefined
      ) {
        this.#quiet();
      }
      if (this.#opcode === OP_PING) this.#sink.onPing(payload.slice());
      else this.#sink.onPong(payload.slice());
    }
    return pos;
  }

  // A ping or pong between messages (a heartbeat's pong, most often) says
  // the peer may now be quiet for long: what was kept for the next message
  // in pieces is given back (a gateway holds a million quiet sessions;
  // issue 19 §4). At most once per control frame, never per message.
  #quiet(): void {
    this.#storage = undefined;
    this.#stream = undefined;
    // Even when it holds this frame's payload: the caller's view keeps it.
    this.#scratch = undefined;
  }

  // Drops whatever a message in progress held: the parser is done.
  #release(): void {
    this.#storage = undefined;
    this.#scratch = undefined;
    this.#stream = undefined;
    this.#filled = 0;
    this.#headFilled = 0;
    this.#controlFilled = 0;
    this.#frameHeader = 0;
  }
}

/**
 * Reads a close frame's payload (already unmasked) into its status code and
 * reason: `[1005, ""]` when the payload is empty.
 *
 * @param payload The close frame's payload, at most 125 bytes.
 * @returns The code and the reason.
 * @throws {WebSocketProtocolError} On a 1-byte payload or an invalid code
 * (1002), or a reason that is not UTF-8 (1007).
 *
 * @example
 * ```ts
 * import { parseClosePayload } from "./_frame_parser.ts";
 * import assert from "node:assert/strict";
 *
 * const payload = new Uint8Array([0x03, 0xe8, 0x62, 0x79, 0x65]); // 1000 "bye"
 * assert.deepEqual(parseClosePayload(payload), [1000, "bye"]);
 * assert.deepEqual(parseClosePayload(new Uint8Array(0)), [1005, ""]);
 * ```
 */
export function parseClosePayload(payload: Uint8Array): [number, string] {
  if (payload.length === 0) return [1005, ""];
  if (payload.length === 1) {
    throw protocolError("Close frame payload of 1 byte", "bad close frame");
  }
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidCloseCode(code)) {
    throw protocolError(`Invalid close code ${code}`, "bad close code");
  }
  return [code, payload.length === 2 ? "" : decodeText(payload.subarray(2))];
}

// Decodes UTF-8 that has not been validated yet.
function decodeText(bytes: Uint8Array): string {
  const text = utf8.decode(bytes);
  if (text.includes("\ufffd")) {
    try {
      utf8Fatal.decode(bytes);
    } catch (cause) {
      throw invalidUtf8(cause);
    }
  }
  return text;
}

function protocolError(
  message: string,
  closeReason: string,
): WebSocketProtocolError {
  return new WebSocketProtocolError(message, 1002, closeReason);
}

function reservedOpcode(opcode: number): WebSocketProtocolError {
  return protocolError(`Unknown opcode ${opcode}`, `reserved opcode ${opcode}`);
}

function invalidUtf8(cause: unknown): WebSocketProtocolError {
  return new WebSocketProtocolError(
    "Invalid UTF-8 in text",
    1007,
    "invalid utf-8",
    { cause },
  );
}
