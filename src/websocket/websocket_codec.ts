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
import { CloseReason } from "../close_reason.ts";
import { FrameParser, isValidCloseCode } from "./_frame_parser.ts";
import {
  encodeFrame,
  encodeFrameInto,
  encodeTextFrameInto,
  Opcode,
} from "./_frame_writer.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_PINGS_PER_SECOND,
} from "../defaults.ts";
import { adapterRecipe, rememberAdapter } from "./_adapt.ts";
import { kindOf } from "../codec/_kind.ts";
import { deflateMessage, type DeflateParams } from "./_deflate.ts";
import { builtInPlan, type Plan, type WebSocketMapping } from "./_mappings.ts";
import { decoderOf, decoderSettings, WebSocketDecoder } from "./_decoder.ts";

export type { WebSocketMapping } from "./_mappings.ts";
export { WebSocketCloseError } from "./_errors.ts";

const textEncoder = new TextEncoder();

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

  // One settings object for every session of the adapter (issue 19 §4).
  const settings = decoderSettings({
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
      return new WebSocketDecoder(link, settings);
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
  const decoder = decoderOf(session);
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
 * close frame without a code), or 1006 when the peer's input ended or was
 * reset without one (the code RFC 6455 section 7.1.5 gives such a close;
 * it is never sent). `undefined` while open, when the session closed first
 * (the peer's answer is its echo), or when the session is
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
  return decoderOf(session)?.peerCloseCode;
}

/**
 * The close reason the peer sent in its close frame, once it has (`""` for
 * a close frame without one, or when {@linkcode peerCloseCode} is 1006);
 * `undefined` while open, when the session closed first, or when the session is
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
  return decoderOf(session)?.peerCloseReason;
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

// An options fragment for a limit that may be unset (a rebuilt adapter).
function limit(
  maxMessageBytes: number | undefined,
): { maxMessageBytes?: number } {
  return maxMessageBytes === undefined ? {} : { maxMessageBytes };
}
