// The bridge between microsocket's codecs and WebSocket messages: a codec
// that wraps another one (lines(), json(), lengthPrefixed(), microSocket(),
// or any custom codec), so that a session over a WebSocket connection
// decodes and sends the inner codec's own message types. Handlers, the
// Router and broadcast work unchanged; only the framing on the wire is
// RFC 6455.
//
// Server frames are unmasked, so an encoded frame is the same for every
// receiver: one adapter object per server lets SessionManager.broadcast
// encode a message once for all of its WebSocket sessions.
import type { Codec, Decoder, DecoderLink, Heartbeat } from "../codec/codec.ts";
import { DecodeError, MessageTooBigError, Refusal } from "../errors.ts";
import { CloseReason } from "../close_reason.ts";
import {
  FrameParser,
  isValidCloseCode,
  type WebSocketMessage,
} from "./_frame_parser.ts";
import {
  encodeCloseFrame,
  encodeFrame,
  encodeFrameInto,
  encodeHeaderInto,
  encodeTextFrameInto,
  headerSize,
  Opcode,
} from "./_frame_writer.ts";
import { applyMask } from "./_mask.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_PINGS_PER_SECOND,
} from "../defaults.ts";
import { adapterRecipe, rememberAdapter } from "./_adapt.ts";
import { kindOf } from "../codec/_kind.ts";
import {
  deflateMessage,
  type DeflateParams,
  inflateMessage,
} from "./_deflate.ts";

const textEncoder = new TextEncoder();

/**
 * How one codec's messages travel as WebSocket messages: `encode` turns a
 * message into the payload of one WebSocket message (a string is sent as a
 * text message, bytes as a binary one), `decode` turns a received message
 * into zero or more of the codec's messages.
 *
 * The built-in codecs have one already (see {@linkcode webSocketCodec});
 * pass your own as `mapping` for a custom codec that should not use the
 * default (one binary message per encoded frame).
 *
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages to encode.
 *
 * @example Numbers as text messages
 * ```ts
 * import type { WebSocketMapping } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const numbers: WebSocketMapping<number, number> = {
 *   encode: (n) => String(n),
 *   decode(message, emit) {
 *     if (typeof message === "string") emit(Number(message));
 *   },
 * };
 * assert.equal(numbers.encode(42), "42");
 * ```
 */
export interface WebSocketMapping<In, Out> {
  /**
   * The payload of the one WebSocket message that carries `message`.
   *
   * @param message The message to send.
   * @returns A string for a text message, bytes for a binary one.
   * @throws {TypeError} When the message cannot be represented.
   */
  encode(message: Out): string | Uint8Array;
  /**
   * Turns a received WebSocket message into messages.
   *
   * @param message A string for a text message, bytes for a binary one.
   * @param emit Receives each decoded message.
   * @throws {DecodeError} When the message is not valid for the codec.
   */
  decode(message: string | Uint8Array, emit: (message: In) => void): void;
}

/**
 * Options of {@linkcode webSocketCodec}.
 *
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages to encode.
 *
 * @example A 64 KiB message limit
 * ```ts
 * import { lines, webSocketCodec, type WebSocketCodecOptions } from "@x/microsocket";
 *
 * const options: WebSocketCodecOptions<string, string> = { maxMessageBytes: 65536 };
 * const codec = webSocketCodec(lines(), options);
 * ```
 */
export interface WebSocketCodecOptions<In, Out> {
  /**
   * Which end of the connection the codec runs on. A server reads masked
   * frames and sends unmasked ones (shareable by a broadcast); a client
   * masks every frame it sends.
   *
   * @default {"server"}
   */
  role?: "server" | "client";
  /**
   * The largest message accepted, in bytes (fragments together). A frame
   * that would take a message past it closes the connection with 1009
   * before its payload is stored. The inner codec's own limit
   * (`lines({ maxLineBytes })`, `json({ maxFrameBytes })`,
   * `lengthPrefixed({ maxFrameBytes })`) applies to each message too: the
   * smaller one is in force, and the close reason names it.
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * How many pings (and unsolicited pongs) a peer may send per second. Each
   * ping is answered with a pong; past this rate the connection is closed
   * with 1008 (policy violation).
   *
   * @default {32}
   */
  maxPingsPerSecond?: number;
  /** How messages map onto WebSocket messages; see {@linkcode WebSocketMapping}. */
  mapping?: WebSocketMapping<In, Out>;
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

// How a message is written into a frame at an offset: -1 when it does not
// fit.
type EncodeInto<Out> = (
  message: Out,
  target: Uint8Array,
  offset: number,
  mask: boolean,
) => number;

interface Plan<In, Out> {
  mapping: WebSocketMapping<In, Out>;
  encodeInto: EncodeInto<Out> | undefined;
}

/**
 * Wraps a codec so that its messages travel as WebSocket messages (RFC 6455
 * framing on the same connection a TCP session would use). `listen({
 * transport: "websocket" })` and `connect({ transport: "websocket" })` do
 * it for you; use it directly for a custom mapping or to share one adapter
 * between servers.
 *
 * The mapping of the built-in codecs:
 *
 * | codec | a message is sent as |
 * |---|---|
 * | `lines()` | one text message per line, without the line feed (a text message holding line feeds is split into lines) |
 * | `json()` | one text message per JSON value |
 * | `lengthPrefixed()` | one binary message per payload, without the prefix |
 * | `microSocket()` and any other codec | one binary message per encoded frame (a message must hold whole frames) |
 *
 * A text message for a binary mapping (or the reverse) closes the
 * connection with 1003, an invalid JSON text with 1007. A message over the
 * smaller of `maxMessageBytes` and the inner codec's own limit closes it
 * with 1009 and a reason naming that option, e.g. `"message of 100000
 * bytes exceeds maxLineBytes (4096)"`, before its payload is stored. The inner codec's
 * own heartbeat messages (e.g. `lines({ heartbeat })`) are answered and
 * consumed as over TCP; the adapter's `heartbeat` is WebSocket ping/pong.
 * Pings are answered with pongs inside the decoder, at most
 * `maxPingsPerSecond`.
 *
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages to encode.
 * @param inner The codec whose messages travel.
 * @param options Role, limits and mapping.
 * @returns A codec whose frames are WebSocket frames.
 * @throws {RangeError} When a limit is out of range.
 * @throws {TypeError} When `inner` is a WebSocket codec already.
 *
 * @example Encoding a line as a text frame
 * ```ts
 * import { lines, webSocketCodec } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const codec = webSocketCodec(lines());
 * assert.deepEqual(codec.encode("hi"), new Uint8Array([0x81, 2, 0x68, 0x69]));
 * ```
 */
export function webSocketCodec<In, Out>(
  inner: Codec<In, Out>,
  options: WebSocketCodecOptions<In, Out> = {},
): Codec<In, Out> {
  return buildAdapter(inner, options, undefined);
}

// An adapter; with `deflate`, the variant for connections that negotiated
// permessage-deflate with those parameters: its encode compresses (once per
// broadcast, as fan-out encodes once per codec object) and its decoders
// inflate.
function buildAdapter<In, Out>(
  inner: Codec<In, Out>,
  options: WebSocketCodecOptions<In, Out>,
  deflate: DeflateParams | undefined,
): Codec<In, Out> {
  if (adapterRecipe(inner) !== undefined) {
    throw new TypeError(
      `${inner.name} is a WebSocket codec already: pass it as it is`,
    );
  }
  const role = options.role ?? "server";
  if (role !== "server" && role !== "client") {
    throw new TypeError(`role must be "server" or "client", got ${role}`);
  }
  const mask = role === "client";
  // The inner codec's own limit, when it has one per message: a WebSocket
  // message holds one message of a built-in codec, but may hold several
  // microSocket (or custom) frames, so only the former's limit applies.
  // The same rule as on a byte stream: the smaller of maxMessageBytes and
  // the codec's limit; unset, the codec's own limit stands, and only a codec
  // without one gets the default.
  const kind = kindOf(inner);
  const own = kind?.framing === "microSocket" ? undefined : kind;
  let maxMessageBytes = options.maxMessageBytes ??
    (own === undefined ? DEFAULT_MAX_MESSAGE_BYTES : own.limit);
  let limitOption = "maxMessageBytes";
  if (own !== undefined && own.limit <= maxMessageBytes) {
    maxMessageBytes = own.limit;
    limitOption = own.option;
  }
  const maxPings = options.maxPingsPerSecond ?? DEFAULT_MAX_PINGS_PER_SECOND;
  if (!(maxPings >= 1)) {
    throw new RangeError(
      `maxPingsPerSecond must be at least 1, got ${maxPings}`,
    );
  }
  // Fail early on a bad limit, as the parser would on the first connection.
  new FrameParser({ maxMessageBytes });
  const plan: Plan<In, Out> = options.mapping !== undefined
    ? { mapping: options.mapping, encodeInto: undefined }
    : builtInPlan(inner);
  const { mapping } = plan;
  const encodeInto = plan.encodeInto;

  const plainEncode = (message: Out): Uint8Array => {
    const payload = mapping.encode(message);
    return encodeFrame(
      typeof payload === "string" ? Opcode.text : Opcode.binary,
      payload,
      true,
      mask,
    );
  };
  const encode = deflate === undefined ? plainEncode : (message: Out) => {
    const payload = mapping.encode(message);
    const opcode = typeof payload === "string" ? Opcode.text : Opcode.binary;
    const threshold = deflate.threshold;
    // A string of n UTF-16 units is at most 3n bytes: short ones skip the
    // encoding to bytes.
    if (typeof payload === "string" && payload.length * 3 < threshold) {
      return encodeFrame(opcode, payload, true, mask);
    }
    const bytes = typeof payload === "string"
      ? textEncoder.encode(payload)
      : payload;
    if (bytes.byteLength < threshold) {
      return encodeFrame(opcode, bytes, true, mask);
    }
    const frame = encodeFrame(
      opcode,
      deflateMessage(bytes, deflate),
      true,
      mask,
    );
    frame[0]! |= 0x40; // RSV1: compressed (RFC 7692 section 6)
    return frame;
  };

  // The inner codec's heartbeat, answered in the mapped form.
  const innerBeat = inner.heartbeat;
  let innerPong: Uint8Array | undefined;
  if (innerBeat !== undefined && options.mapping === undefined) {
    if ("frames" in mapping) {
      // The pong frame itself, in a binary message (microSocket's empty
      // frame, which no message encodes to).
      innerPong = encodeFrame(Opcode.binary, innerBeat.pong, true, mask);
    } else {
      let pong: In | undefined;
      let seen = false;
      inner.decoder().decode(innerBeat.pong.slice(), (m) => {
        pong = m;
        seen = true;
      });
      if (seen) innerPong = encode(pong as unknown as Out);
    }
  }

  const heartbeat: Heartbeat<In> = {
    ping: encodeFrame(Opcode.ping, new Uint8Array(0), true, mask),
    pong: encodeFrame(Opcode.pong, new Uint8Array(0), true, mask),
    // Control frames never become messages: the decoder answers pings, and
    // a pong completes a read, which the session counts as life.
    isPing: () => false,
    isPong: () => false,
  };

  const codec: Codec<In, Out> = {
    name: `webSocket(${inner.name})`,
    heartbeat,
    // Correlation works on messages, not bytes: requests and replies keep
    // theirs across the adapter.
    ...(inner.correlation === undefined
      ? {}
      : { correlation: inner.correlation }),
    encode,
    decoder(link?: DecoderLink): Decoder<In> {
      return new WebSocketDecoder(link, {
        role,
        mask,
        maxMessageBytes,
        limitOption,
        maxPings,
        mapping,
        innerBeat,
        innerPong,
        deflate,
      });
    },
  };
  if (encodeInto !== undefined && deflate === undefined) {
    codec.encodeInto = (message, target, offset) =>
      encodeInto(message, target, offset, mask);
  } else if (encodeInto !== undefined && deflate !== undefined) {
    // A message under the threshold is written in place, as by the plain
    // adapter (no allocation); a longer one is given up (-1), and the
    // caller falls back to `encode`, which compresses it into fresh bytes
    // (once per broadcast).
    const threshold = deflate.threshold;
    codec.encodeInto = (message, target, offset) => {
      const end = encodeInto(message, target, offset, mask);
      if (end < 0) return -1;
      const length7 = target[offset + 1]! & 0x7f;
      const header = (length7 === 126 ? 4 : length7 === 127 ? 10 : 2) +
        (mask ? 4 : 0);
      return end - offset - header < threshold ? end : -1;
    };
  }
  if (inner.routeKey !== undefined) {
    codec.routeKey = inner.routeKey.bind(inner);
  }
  return rememberAdapter(codec, {
    role,
    roleGiven: options.role !== undefined,
    maxMessageBytes: options.maxMessageBytes,
    rebuild: (role, maxMessageBytes) =>
      webSocketCodec(inner, { ...options, role, ...limit(maxMessageBytes) }),
    compressed: (params) => buildAdapter(inner, options, params),
  });
}

/**
 * A codec of raw WebSocket messages, for servers and clients that want them
 * as they are: a text message is a `string`, a binary one a `Uint8Array`,
 * and sending either sends a message of that kind. It is already an adapter:
 * pass it as `codec` to `listen({ transport: "websocket" })` or to
 * `connect({ url: "ws://…" })`, which use it as it is. Without `role`, it
 * takes the role of where it is used; `role: "server"` given to
 * `connect()` (or `"client"` to `listen()`) is a TypeError. The
 * `maxMessageBytes` of `listen()`/`connect()` applies (the smaller one, when
 * both set it).
 *
 * @param options Role and limits (`mapping` is fixed).
 * @returns The codec.
 * @throws {RangeError} When a limit is out of range.
 *
 * @example Echoing text and binary messages alike
 * ```ts
 * import { listen, webSocketMessages } from "@x/microsocket";
 *
 * await using server = listen({
 *   transport: "websocket",
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: webSocketMessages(),
 *   onMessage: (session, message) => void session.send(message),
 * });
 * ```
 *
 * @example A client that sends and reads raw messages
 * ```ts
 * import { connect, listen, webSocketMessages } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({
 *   transport: "websocket",
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: webSocketMessages(),
 *   onMessage: (session, message) => void session.send(message),
 * });
 * const reply = Promise.withResolvers<string | Uint8Array>();
 * await using client = await connect({
 *   url: `ws://127.0.0.1:${server.addr.port}/`,
 *   codec: webSocketMessages({ role: "client" }),
 *   onMessage: (_session, message) => reply.resolve(message),
 * });
 * client.send("hello");
 * assert.equal(await reply.promise, "hello");
 * ```
 */
export function webSocketMessages(
  options: Omit<
    WebSocketCodecOptions<string | Uint8Array, string | Uint8Array>,
    "mapping"
  > = {},
): Codec<string | Uint8Array> {
  const identity: Codec<string | Uint8Array> = {
    name: "webSocketMessages",
    encode() {
      throw new TypeError("webSocketMessages() only frames WebSocket messages");
    },
    decoder(): Decoder<string | Uint8Array> {
      throw new TypeError("webSocketMessages() only frames WebSocket messages");
    },
  };
  const adapterOptions: WebSocketCodecOptions<
    string | Uint8Array,
    string | Uint8Array
  > = {
    ...options,
    mapping: {
      encode(message) {
        if (typeof message !== "string" && !(message instanceof Uint8Array)) {
          throw new TypeError(
            "A WebSocket message is a string or a Uint8Array",
          );
        }
        return message;
      },
      decode: (message, emit) => emit(message),
    },
  };
  const codec = webSocketCodec(identity, adapterOptions);
  const mask = options.role === "client";
  codec.encodeInto = (message, target, offset) =>
    typeof message === "string"
      ? encodeTextFrameInto(target, offset, message, true, mask)
      : encodeFrameInto(target, offset, Opcode.binary, message, true, mask);
  return rememberAdapter(codec, {
    role: options.role ?? "server",
    roleGiven: options.role !== undefined,
    maxMessageBytes: options.maxMessageBytes,
    rebuild: (role, maxMessageBytes) =>
      webSocketMessages({ ...options, role, ...limit(maxMessageBytes) }),
    compressed: (params) => buildAdapter(identity, adapterOptions, params),
  });
}

/**
 * Closes a WebSocket session with a close code of your choice (1000, or
 * 3000–4999 for applications), instead of the one its close reason maps
 * to.
 *
 * @param session A session whose codec is a WebSocket adapter.
 * @param code The close code sent to the peer.
 * @param reason The close reason, sent to the peer (cut to 123 bytes) and
 * given to `onClose`.
 * @returns A promise that resolves once the session is closed.
 * @throws {TypeError} When the session is not a WebSocket session.
 * @throws {RangeError} When the code may not be sent.
 *
 * @example
 * ```ts
 * import { closeWebSocket, listen } from "@x/microsocket";
 *
 * await using server = listen({
 *   transport: "websocket",
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onOpen: (session) => closeWebSocket(session, 4000, "go away"),
 * });
 * ```
 */
export function closeWebSocket(
  session: DecoderLink,
  code: number,
  reason: string = "",
): Promise<void> {
  const decoder = decoders.get(session);
  if (decoder === undefined) {
    throw new TypeError("Not a WebSocket session");
  }
  if (!isValidCloseCode(code)) {
    throw new RangeError(`Close code ${code} may not be sent`);
  }
  decoder.closeWith(code, reason);
  return session.close(reason === "" ? CloseReason.Closed : reason);
}

/**
 * The close code the peer sent in its close frame, once it has (1005 for a
 * close frame without a code); `undefined` before, or when the session is
 * not a WebSocket session.
 *
 * @param session A session.
 * @returns The peer's close code.
 *
 * @example
 * ```ts
 * import { listen, peerCloseCode } from "@x/microsocket";
 *
 * await using server = listen({
 *   transport: "websocket",
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onClose: (session) => console.log(peerCloseCode(session)),
 * });
 * ```
 */
export function peerCloseCode(session: DecoderLink): number | undefined {
  return decoders.get(session)?.peerCloseCode;
}

/**
 * The close reason the peer sent in its close frame, once it has (`""` for
 * a close frame without one); `undefined` before, or when the session is
 * not a WebSocket session.
 *
 * @param session A session.
 * @returns The peer's close reason.
 *
 * @example
 * ```ts
 * import { listen, peerCloseReason } from "@x/microsocket";
 *
 * await using server = listen({
 *   transport: "websocket",
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onClose: (session) => console.log(peerCloseReason(session)),
 * });
 * ```
 */
export function peerCloseReason(session: DecoderLink): string | undefined {
  return decoders.get(session)?.peerCloseReason;
}

/**
 * Tells whether a codec is a WebSocket adapter made by
 * {@linkcode webSocketCodec} or {@linkcode webSocketMessages} (known by
 * identity, not by name).
 *
 * @param codec Any codec.
 * @returns `true` for an adapter.
 *
 * @example
 * ```ts
 * import { isWebSocketCodec, lines, webSocketCodec } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isWebSocketCodec(webSocketCodec(lines())));
 * assert.ok(!isWebSocketCodec(lines()));
 * ```
 */
// deno-lint-ignore no-explicit-any
export function isWebSocketCodec(codec: Codec<any, any>): boolean {
  return adapterRecipe(codec) !== undefined;
}

// By the codec's kind, not its name: a custom codec named "lines" is framed
// as any other custom codec.
function builtInPlan<In, Out>(inner: Codec<In, Out>): Plan<In, Out> {
  switch (kindOf(inner)?.framing) {
    case "lines":
      return linesPlan() as unknown as Plan<In, Out>;
    case "json":
      return jsonPlan() as unknown as Plan<In, Out>;
    case "lengthPrefixed":
      return bytesPlan() as unknown as Plan<In, Out>;
    default:
      return framesPlan(inner);
  }
}

function linesPlan(): Plan<string, string> {
  const check = (line: string) => {
    if (typeof line !== "string") {
      throw new TypeError(
        `lines() encodes strings, got ${line === null ? "null" : typeof line}`,
      );
    }
    if (line.includes("\n")) {
      throw new TypeError("Cannot encode a line that contains a line feed");
    }
  };
  return {
    mapping: {
      encode(line) {
        check(line);
        return line;
      },
      decode(message, emit) {
        if (typeof message !== "string") throw unsupported("binary", "lines()");
        if (!message.includes("\n")) {
          emit(message);
          return;
        }
        const parts = message.split("\n");
        // "a\n" is one line, as it would be over TCP.
        if (parts[parts.length - 1] === "") parts.pop();
        for (const part of parts) {
          emit(part.endsWith("\r") ? part.slice(0, -1) : part);
        }
      },
    },
    encodeInto(line, target, offset, mask) {
      check(line);
      return encodeTextFrameInto(target, offset, line, true, mask);
    },
  };
}

function jsonPlan(): Plan<unknown, unknown> {
  const stringify = (value: unknown): string => {
    const text = JSON.stringify(value);
    if (typeof text !== "string") {
      throw new TypeError(`Cannot encode ${typeof value} as JSON`);
    }
    return text;
  };
  return {
    mapping: {
      encode: stringify,
      decode(message, emit) {
        if (typeof message !== "string") throw unsupported("binary", "json()");
        let value: unknown;
        try {
          value = JSON.parse(message);
        } catch (cause) {
          throw new WebSocketCloseError("Invalid JSON", 1007, {
            cause,
            closeReason: "invalid json",
          });
        }
        emit(value);
      },
    },
    encodeInto(value, target, offset, mask) {
      return encodeTextFrameInto(target, offset, stringify(value), true, mask);
    },
  };
}

function bytesPlan(): Plan<Uint8Array, Uint8Array> {
  const check = (payload: Uint8Array) => {
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError("lengthPrefixed() encodes Uint8Array payloads");
    }
  };
  return {
    mapping: {
      encode(payload) {
        check(payload);
        return payload;
      },
      decode(message, emit) {
        if (typeof message === "string") {
          throw unsupported("text", "lengthPrefixed()");
        }
        emit(message);
      },
    },
    encodeInto(payload, target, offset, mask) {
      check(payload);
      return encodeFrameInto(
        target,
        offset,
        Opcode.binary,
        payload,
        true,
        mask,
      );
    },
  };
}

// Any other codec: each binary message carries whole frames of the codec.
// Decoding needs a decoder per connection, so the mapping's decode is a
// stand-in that WebSocketDecoder replaces (see `frames`).
function framesPlan<In, Out>(inner: Codec<In, Out>): Plan<In, Out> {
  const innerEncodeInto = inner.encodeInto?.bind(inner);
  const mapping: FramesMapping<In, Out> = {
    frames: inner,
    encode: (message) => inner.encode(message),
    decode() {
      throw new Error("unreachable: frames are decoded per connection");
    },
  };
  return {
    mapping,
    encodeInto: innerEncodeInto === undefined
      ? undefined
      : (message, target, offset, mask) => {
        // Room for the longest header, moved back once the size is known.
        const reserved = 10 + (mask ? 4 : 0);
        const start = offset + reserved;
        if (start > target.length) return -1;
        const end = innerEncodeInto(message, target, start);
        if (end < 0) return -1;
        const length = end - start;
        const actual = headerSize(length, mask);
        if (actual < reserved) {
          target.copyWithin(offset + actual, start, end);
        }
        const payload = encodeHeaderInto(
          target,
          offset,
          Opcode.binary,
          length,
          true,
          mask,
        );
        if (mask) {
          applyMask(
            target.subarray(payload, payload + length),
            target,
            payload - 4,
            0,
          );
        }
        return payload + length;
      },
  };
}

interface FramesMapping<In, Out> extends WebSocketMapping<In, Out> {
  frames: Codec<In, Out>;
}

function unsupported(kind: string, codec: string): WebSocketCloseError {
  return new WebSocketCloseError(
    `A ${kind} message is not a message of ${codec}`,
    1003,
    { closeReason: `${kind} message for ${codec}` },
  );
}

// Each session's decoder, for closeWebSocket() and peerCloseCode().
// deno-lint-ignore no-explicit-any
const decoders = new WeakMap<object, WebSocketDecoder<any, any>>();

interface DecoderSettings<In, Out> {
  role: "server" | "client";
  mask: boolean;
  maxMessageBytes: number;
  limitOption: string;
  maxPings: number;
  mapping: WebSocketMapping<In, Out>;
  innerBeat: Heartbeat<In> | undefined;
  innerPong: Uint8Array | undefined;
  deflate: DeflateParams | undefined;
}

// One connection's decoder: the frame parser, the mapping, pongs, and the
// close handshake.
class WebSocketDecoder<In, Out> implements Decoder<In> {
  readonly #parser: FrameParser;
  readonly #link: DecoderLink | undefined;
  readonly #settings: DecoderSettings<In, Out>;
  readonly #frames: Decoder<In> | undefined;
  #emit: (message: In) => void = ignore;
  readonly #onMessage = (message: WebSocketMessage): void => {
    const frames = this.#frames;
    if (frames === undefined) {
      this.#settings.mapping.decode(message, this.#onInner);
      return;
    }
    if (typeof message === "string") throw unsupported("text", "this codec");
    frames.decode(message, this.#onInner);
    if (frames.buffered !== 0) {
      throw new WebSocketCloseError(
        "A binary message must hold whole frames",
        1007,
        { closeReason: "partial frame in binary message" },
      );
    }
  };
  readonly #onInner = (message: In): void => {
    const beat = this.#settings.innerBeat;
    if (beat !== undefined) {
      if (beat.isPing(message)) {
        const pong = this.#settings.innerPong;
        if (pong !== undefined) this.#link?.sendFrame(pong);
        return;
      }
      if (beat.isPong(message)) return;
    }
    this.#emit(message);
  };
  #window = 0;
  #controls = 0;
  #peerCode: number | undefined;
  #peerReason = "";
  #closeSent = false;
  #chosen: [number, string] | undefined;

  constructor(
    link: DecoderLink | undefined,
    settings: DecoderSettings<In, Out>,
  ) {
    this.#link = link;
    this.#settings = settings;
    // Looked up by the session (peerCloseCode(), closeWebSocket()), which
    // the link speaks for; a resumed session's new decoder replaces the old.
    if (link !== undefined) decoders.set(link.owner ?? link, this);
    const framesOf = (settings.mapping as Partial<FramesMapping<In, Out>>)
      .frames;
    this.#frames = framesOf?.decoder();
    this.#parser = new FrameParser({
      role: settings.role,
      maxMessageBytes: settings.maxMessageBytes,
      limitOption: settings.limitOption,
      onPing: (payload) => {
        this.#control();
        this.#link?.sendFrame(
          encodeFrame(Opcode.pong, payload, true, settings.mask),
        );
      },
      onPong: () => this.#control(),
      ...(settings.deflate === undefined ? {} : {
        inflate: (payload: Uint8Array) =>
          inflateMessage(
            payload,
            settings.maxMessageBytes,
            settings.limitOption,
          ),
      }),
      onClose: (code, reason) => {
        this.#peerCode = code;
        this.#peerReason = reason;
        void this.#link?.close(CloseReason.Eof);
      },
    });
  }

  get buffered(): number {
    return this.#parser.buffered + (this.#frames?.buffered ?? 0);
  }

  /** The close code the peer sent, once it has. */
  get peerCloseCode(): number | undefined {
    return this.#peerCode;
  }

  /** The close reason the peer sent, once it has. */
  get peerCloseReason(): string | undefined {
    return this.#peerCode === undefined ? undefined : this.#peerReason;
  }

  decode(chunk: Uint8Array, emit: (message: In) => void): void {
    this.#emit = emit;
    this.#parser.decode(chunk, this.#onMessage);
  }

  /**
   * Takes one whole message that arrived without framing (Deno's native
   * WebSocket, src/transport/native.ts), `size` bytes long: the same limit
   * and mapping as a parsed one, no frame built or parsed.
   */
  decodeMessage(
    message: WebSocketMessage,
    size: number,
    emit: (message: In) => void,
  ): void {
    const { maxMessageBytes, limitOption } = this.#settings;
    if (size > maxMessageBytes) {
      throw new MessageTooBigError(size, maxMessageBytes, limitOption);
    }
    this.#emit = emit;
    this.#onMessage(message);
  }

  closeWith(code: number, reason: string): void {
    this.#chosen = [code, reason];
  }

  closeFrame(reason: string, error: unknown): Uint8Array | undefined {
    if (this.#closeSent) return undefined;
    this.#closeSent = true;
    const mask = this.#settings.mask;
    const peer = this.#peerCode;
    if (peer !== undefined) {
      // Echo the peer's close (RFC 6455 section 5.5.1).
      return peer === 1005
        ? encodeCloseFrame(undefined, "", mask)
        : encodeCloseFrame(peer, this.#peerReason, mask);
    }
    if (this.#chosen !== undefined) {
      return encodeCloseFrame(this.#chosen[0], this.#chosen[1], mask);
    }
    if (reason === CloseReason.Reset) return undefined;
    const [code, text] = closeFor(reason, error);
    return encodeCloseFrame(code, text, mask);
  }

  // Bounds control frames per second: a ping flood would otherwise make us
  // write as fast as the peer can send.
  #control(): void {
    const now = Math.floor(performance.now() / 1000);
    if (now !== this.#window) {
      this.#window = now;
      this.#controls = 0;
    }
    if (++this.#controls > this.#settings.maxPings) {
      throw new WebSocketCloseError("Too many pings", 1008);
    }
  }
}

// What a session's close tells a WebSocket peer: a code (RFC 6455 section
// 7.4) and, always, the reason. A Refusal carries its own code and reason.
function closeFor(reason: string, error: unknown): [number, string] {
  if (error instanceof Refusal) return [error.code, error.reason];
  // A WebSocket error says which rule the peer broke; the session's own
  // reason ("decode error") only says which kind.
  const detail = (error as { closeReason?: unknown } | undefined)
    ?.closeReason;
  return [
    closeCodeFor(reason, error),
    typeof detail === "string" ? detail : reason,
  ];
}

function closeCodeFor(reason: string, error: unknown): number {
  const fromError = (error as { closeCode?: unknown } | undefined)?.closeCode;
  if (typeof fromError === "number") return fromError;
  switch (reason) {
    case CloseReason.ServerShutdown:
    case CloseReason.IdleTimeout:
    case CloseReason.HeartbeatTimeout:
    case CloseReason.FrameTimeout:
      return 1001;
    case CloseReason.FrameTooLarge:
      return 1009;
    case CloseReason.DecodeError:
      return 1007;
    case CloseReason.SlowConsumer:
    case CloseReason.Flood:
      return 1008;
    case CloseReason.Error:
      return 1011;
    // HTTP 401 and 408 in the private range, as graphql-ws does: 1008 would
    // not tell a refusal from a slow consumer.
    case CloseReason.Unauthorized:
      return 4401;
    case CloseReason.AuthTimeout:
      return 4408;
    default:
      return 1000;
  }
}

function ignore(): void {}

// An options fragment for a limit that may be unset (a rebuilt adapter).
function limit(
  maxMessageBytes: number | undefined,
): { maxMessageBytes?: number } {
  return maxMessageBytes === undefined ? {} : { maxMessageBytes };
}
