/**
 * Codecs alone: how messages become frames on the wire and back, for use
 * without the server (a custom transport, a file, a test) or to write your
 * own. Every decoder checks its limits before allocating and survives any
 * split of the byte stream.
 *
 * - {@linkcode lines}: UTF-8 text lines (`nc`-friendly);
 * - {@linkcode lengthPrefixed}: binary frames behind a 4-byte length;
 * - {@linkcode json}: one JSON value per line or per length-prefixed frame;
 * - {@linkcode microSocket}: the Go microSocket framework's wire format;
 * - {@linkcode Codec}, {@linkcode Decoder}: the interfaces to implement
 *   for your own framing; {@linkcode CodecTraits} (route key,
 *   {@linkcode Correlation}, {@linkcode Heartbeat}): what it may know
 *   about its messages besides.
 *
 * Everything here is also exported by the package root.
 *
 * @example Decoding a stream that arrives in pieces
 * ```ts
 * import { json } from "@x/microsocket/codec";
 * import assert from "node:assert/strict";
 *
 * type Msg = { type: "chat"; text: string };
 * const codec = json<Msg>({ maxFrameBytes: 4096 });
 * const bytes = codec.encode({ type: "chat", text: "hi" });
 * const decoder = codec.decoder();
 * const got: Msg[] = [];
 * decoder.decode(bytes.subarray(0, 5), (m) => got.push(m));
 * decoder.decode(bytes.subarray(5), (m) => got.push(m));
 * assert.deepEqual(got, [{ type: "chat", text: "hi" }]);
 * assert.equal(codec.routeKey?.(got[0]!), "chat");
 * ```
 *
 * @module
 */
export * from "./src/codec/codec.ts";
export * from "./src/codec/lines.ts";
export * from "./src/codec/length_prefixed.ts";
export * from "./src/codec/json.ts";
export * from "./src/codec/microsocket.ts";
export {
  DecodeError,
  FrameTooLargeError,
  MessageTooBigError,
  TruncatedFrameError,
} from "./src/errors.ts";
