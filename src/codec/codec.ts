// The contract between a byte stream and messages. A Session owns one Decoder
// per connection; encoded frames may be shared by many sessions (broadcast),
// so encoders return fresh bytes that nobody mutates afterwards.

/**
 * Turns one connection's incoming bytes into messages, incrementally.
 *
 * Rules every decoder follows (the built-in ones are tested for each):
 * - it survives any split of the byte stream, down to one byte per chunk;
 * - it checks its limits **before** allocating for a frame, and throws a
 *   {@linkcode DecodeError} (often a {@linkcode FrameTooLargeError}) instead of
 *   buffering without bound;
 * - it copies whatever it keeps of `chunk`: the caller reuses that memory.
 *
 * After `decode` throws, the decoder is not used again (the session closes).
 *
 * @typeParam In The type of the decoded messages.
 *
 * @example A decoder that emits every byte as a number
 * ```ts
 * import type { Decoder } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const bytes: Decoder<number> = {
 *   buffered: 0,
 *   decode(chunk, emit) {
 *     for (const byte of chunk) emit(byte);
 *   },
 * };
 * const seen: number[] = [];
 * bytes.decode(new Uint8Array([1, 2]), (n) => seen.push(n));
 * assert.deepEqual(seen, [1, 2]);
 * ```
 */
export interface Decoder<In> {
  /**
   * Consumes `chunk` and calls `emit` once per complete message, in order.
   *
   * @param chunk Bytes just read. Only valid during the call.
   * @param emit Receives each decoded message.
   * @throws {DecodeError} When the bytes break the framing rules.
   */
  decode(chunk: Uint8Array, emit: (message: In) => void): void;
  /** Bytes held for a frame that has not completed yet. */
  readonly buffered: number;
  /**
   * The end of the input: the peer half-closed. The session calls it once,
   * after the last `decode`, so that nothing buffered is lost in silence.
   * A framing whose end also ends a message emits it here (`lines()`
   * delivers a last line that has no `\n`); a framing that can't tell a
   * short frame from a cut one throws a
   * {@linkcode TruncatedFrameError} when bytes are buffered
   * (`lengthPrefixed()`, `microSocket()`, `json({ framing: "length" })`).
   * Without it, buffered bytes are dropped at the end of the input.
   *
   * @param emit Receives a last message, if the buffered bytes make one.
   * @throws {DecodeError} When the buffered bytes are not a message
   * (a {@linkcode TruncatedFrameError} for a frame cut off).
   */
  end?(emit: (message: In) => void): void;
  /**
   * The frame that tells the peer the connection is ending, for framings
   * that have one (a WebSocket close frame). The session queues it once,
   * when it starts closing, after what is already queued.
   *
   * @param reason The session's close reason.
   * @param error The error behind the close, if any.
   * @returns The frame, or `undefined` to send none.
   */
  closeFrame?(reason: string, error: unknown): Uint8Array | undefined;
}

/**
 * What a decoder may do to its connection besides emitting messages: answer
 * control frames (a WebSocket pong) and end it (a close frame from the
 * peer). The session passes itself.
 *
 * @example A decoder that answers "?" with "!" on its own
 * ```ts
 * import type { Decoder, DecoderLink } from "@x/microsocket";
 *
 * function answering(link?: DecoderLink): Decoder<string> {
 *   return {
 *     buffered: 0,
 *     decode(chunk, emit) {
 *       for (const byte of chunk) {
 *         if (byte === 0x3f) link?.sendFrame(new Uint8Array([0x21]));
 *         else emit(String.fromCharCode(byte));
 *       }
 *     },
 *   };
 * }
 * const decoder = answering();
 * decoder.decode(new Uint8Array([0x61]), () => {});
 * ```
 */
export interface DecoderLink {
  /**
   * The object this link speaks for (the session), when the link is not
   * that object itself: a codec that keeps state per session keys it by
   * this.
   */
  readonly owner?: object;
  /**
   * Queues an encoded frame for the peer, after what is already queued.
   *
   * @param frame The frame's bytes; not copied when large, so never modify
   * them afterwards.
   * @returns `false` when the connection no longer takes frames.
   */
  sendFrame(frame: Uint8Array): boolean;
  /**
   * Ends the connection once what is queued is written.
   *
   * @param reason Why.
   * @returns A promise that resolves once the connection is closed.
   */
  close(reason?: string): Promise<void>;
}

/**
 * Liveness probing for a codec that has a ping/pong exchange, described
 * declaratively: the bytes to send and how to recognise each in decoded
 * messages. A session sends `ping` every `heartbeatInterval` of silence,
 * answers a peer's ping with `pong`, and consumes both: they never reach
 * message handlers. `ping` and `pong` may be the same bytes (microSocket's
 * empty frame); then a message that is both a ping and a pong is an answer
 * when the session has pinged, and otherwise a ping to answer.
 *
 * Codecs without one leave {@linkcode Codec.heartbeat} undefined, and
 * `listen({ heartbeatInterval })` refuses them. The built-in codecs take a
 * `heartbeat` option ({@linkcode lines}, {@linkcode json},
 * {@linkcode lengthPrefixed}) or always have one (`microSocket()`).
 *
 * `isPing` and `isPong` run for every decoded message: keep them cheap
 * (an identity or length test, a string comparison).
 *
 * @typeParam In The type of the decoded messages.
 *
 * @example A heartbeat for a line protocol
 * ```ts
 * import type { Heartbeat } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const heartbeat: Heartbeat<string> = {
 *   ping: new TextEncoder().encode("PING\n"),
 *   pong: new TextEncoder().encode("PONG\n"),
 *   isPing: (line) => line === "PING",
 *   isPong: (line) => line === "PONG",
 * };
 * assert.ok(heartbeat.isPong("PONG"));
 * assert.ok(!heartbeat.isPing("PONG"));
 * ```
 */
export interface Heartbeat<In> {
  /** The encoded frame sent as a ping; shared by every session. */
  readonly ping: Uint8Array;
  /** The encoded frame sent to answer a ping; shared by every session. */
  readonly pong: Uint8Array;
  /**
   * Tells whether a decoded message is the peer's ping, to answer with
   * `pong`.
   *
   * @param message A decoded message.
   * @returns `true` when the message is a ping.
   */
  isPing(message: In): boolean;
  /**
   * Tells whether a decoded message is the peer's answer to a ping.
   *
   * @param message A decoded message.
   * @returns `true` when the message is a pong.
   */
  isPong(message: In): boolean;
}

/**
 * The `heartbeat` option of {@linkcode lines} and {@linkcode json}: the
 * message sent as a ping and the one sent as its answer (they may be equal).
 *
 * @typeParam T The message type: a line for `lines()`, a JSON value for
 * `json()`.
 *
 * @example PING / PONG lines
 * ```ts
 * import { type HeartbeatOptions, lines } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const heartbeat: HeartbeatOptions<string> = { ping: "PING", pong: "PONG" };
 * const codec = lines({ heartbeat });
 * assert.deepEqual(codec.heartbeat?.ping, new TextEncoder().encode("PING\n"));
 * assert.ok(codec.heartbeat?.isPong("PONG"));
 * ```
 */
export interface HeartbeatOptions<T> {
  /** The message sent as a ping. */
  ping: T;
  /** The message sent to answer a ping. */
  pong: T;
}

/**
 * A framing: how messages become bytes on the wire and back.
 *
 * The core is `encode` (with an optional `encodeInto` fast path) and a
 * `decoder` factory; what a codec knows about its messages beyond framing
 * — their route key, request correlation, heartbeat — are optional
 * {@linkcode CodecTraits}, which a codec may leave out.
 *
 * Built-in codecs: {@linkcode lines}, {@linkcode lengthPrefixed}, and the
 * ones exported next to them. Writing your own takes an `encode` function and
 * a `decoder` factory; see the example.
 *
 * @typeParam In The type of decoded (incoming) messages.
 * @typeParam Out The type of messages accepted for encoding (outgoing).
 *
 * @example A codec of fixed two-byte big-endian numbers
 * ```ts
 * import type { Codec, Decoder } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * function uint16(): Codec<number> {
 *   return {
 *     name: "uint16",
 *     encode: (n) => new Uint8Array([n >> 8, n & 0xff]),
 *     decoder(): Decoder<number> {
 *       let high = -1; // a first byte waiting for its partner
 *       return {
 *         get buffered() {
 *           return high < 0 ? 0 : 1;
 *         },
 *         decode(chunk, emit) {
 *           for (const byte of chunk) {
 *             if (high < 0) high = byte;
 *             else {
 *               emit((high << 8) | byte);
 *               high = -1;
 *             }
 *           }
 *         },
 *       };
 *     },
 *   };
 * }
 *
 * const codec = uint16();
 * const decoder = codec.decoder();
 * const out: number[] = [];
 * const frame = codec.encode(513);
 * decoder.decode(frame.subarray(0, 1), (n) => out.push(n));
 * decoder.decode(frame.subarray(1), (n) => out.push(n));
 * assert.deepEqual(out, [513]);
 * ```
 */
export interface Codec<In, Out = In> extends CodecTraits<In, Out> {
  /**
   * A short name for messages and logs, e.g. `"lines"`. Only that: the
   * package never recognises a codec by its name (a codec of your own may
   * be called `"lines"` too); the built-in codecs are known by identity.
   */
  readonly name: string;
  /**
   * Encodes one message as one complete frame. The returned bytes may be
   * shared between many sessions and are never mutated afterwards.
   *
   * @param message The message to encode.
   * @returns The frame's bytes.
   * @throws {TypeError} When the message cannot be represented.
   */
  encode(message: Out): Uint8Array;
  /**
   * Optional fast path of {@linkcode Codec.encode}: writes the same bytes
   * into `target` from `offset`, so that `Session.send` can encode straight
   * into its outbound buffer without allocating. When the frame does not
   * fit, it returns `-1` (whatever it wrote past `offset` is ignored).
   *
   * @param message The message to encode.
   * @param target Where to write the frame.
   * @param offset Where in `target` the frame starts.
   * @returns The offset just past the frame, or `-1` if it does not fit.
   * @throws {TypeError} When the message cannot be represented.
   */
  encodeInto?(message: Out, target: Uint8Array, offset: number): number;
  /**
   * Creates a fresh decoder for one connection.
   *
   * @param link The connection, for decoders that answer control frames;
   * absent when decoding outside a session.
   * @returns A decoder with empty state.
   */
  decoder(link?: DecoderLink): Decoder<In>;
}

/**
 * How a codec's messages carry request ids, for
 * {@linkcode Session.request} and {@linkcode Session.reply}. `json()` stamps
 * a request with a reserved `$id` field and its reply with `$re` (the
 * request's id); it never changes a field of the message itself, and refuses
 * (a `TypeError` naming the field) a message that already has the reserved
 * one.
 *
 * @typeParam In The type of decoded (incoming) messages.
 * @typeParam Out The type of messages accepted for encoding (outgoing).
 *
 * @example Requests and replies as JSON objects
 * ```ts
 * import { json } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const correlation = json().correlation!;
 * const request = correlation.request({ type: "getUser", id: 17 }, 7);
 * assert.deepEqual(request, { type: "getUser", id: 17, $id: 7 });
 * const reply = correlation.reply(request, { type: "user", name: "ada" });
 * assert.deepEqual(reply, { type: "user", name: "ada", $re: 7 });
 * assert.equal(correlation.replyTo(reply), 7);
 * assert.throws(() => correlation.request({ $id: 1 }, 8), TypeError);
 * ```
 */
export interface Correlation<In, Out> {
  /**
   * Stamps an outgoing request with its id.
   *
   * @param message The request.
   * @param id Its id, unique among the session's pending requests.
   * @returns The message to send: a new one; `message` is left as it was.
   * @throws {TypeError} When the message can't carry an id (or already
   * holds the field the id goes in).
   */
  request(message: Out, id: number): Out;
  /**
   * Tells whether a decoded message is a reply, and to which request.
   *
   * @param message A decoded message.
   * @returns The id of the request it answers, or `undefined`.
   */
  replyTo(message: In): number | undefined;
  /**
   * Builds the reply to a request.
   *
   * @param request The request as received.
   * @param response What to answer.
   * @returns The message to send: a new one; `response` is left as it was.
   * @throws {TypeError} When the request carries no id, or the response
   * can't carry one (or already holds the field it goes in).
   */
  reply(request: In, response: Out): Out;
}

/**
 * What a codec may know about its messages besides their framing, each
 * optional and independent: the route key {@linkcode Router} dispatches
 * on, the correlation of requests and replies, the heartbeat. A
 * {@linkcode Codec} carries them as its own fields; add them to a codec by
 * spreading it (the framing and the built-in codecs' identity survive a
 * spread).
 *
 * @typeParam In The type of decoded (incoming) messages.
 * @typeParam Out The type of messages accepted for encoding (outgoing).
 *
 * @example Routing lines by their last word instead of their first
 * ```ts
 * import { type Codec, type CodecTraits, lines } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const byLastWord: CodecTraits<string> = {
 *   routeKey: (line) => line.slice(line.lastIndexOf(" ") + 1),
 * };
 * const codec: Codec<string> = { ...lines(), ...byLastWord };
 * assert.equal(codec.routeKey?.("please stop"), "stop");
 * ```
 */
export interface CodecTraits<In, Out = In> {
  /** Ping/pong for heartbeats, when the framing has one. */
  readonly heartbeat?: Heartbeat<In>;
  /**
   * The route key of a message, for {@linkcode Router}: the codec knows
   * its messages' shape (the first word of a line, the `type` of a JSON
   * object, a microSocket `module.method` or `action`). `undefined` means
   * "no key" (the router's fallback handles it).
   *
   * @param message A decoded message.
   * @returns The route key, or `undefined`.
   */
  routeKey?(message: In): string | undefined;
  /**
   * How requests and their replies are matched, for
   * `Session.request()` / `Session.reply()`; `json()` has one.
   */
  readonly correlation?: Correlation<In, Out>;
}
