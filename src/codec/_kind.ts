// Package-internal: how the package recognises its own codecs. A codec's
// `name` is for messages and logs (a user codec may well be called
// "lines"); what the package decides on — the WebSocket mapping of a codec,
// the limit one message is held to — comes from a `CodecKind` that the
// built-in codecs carry under a symbol. It is an own enumerable property,
// so `{ ...lines(), routeKey }` keeps it; and it counts only while the
// codec still frames with the built-in's own `encode` and `decoder` (a
// codec that replaced them is a custom codec, whatever it spreads).
// Symbol.for, so that two copies of the package in one program recognise
// each other's codecs; no codec gets it by accident.
import type { Codec, Decoder, DecoderLink } from "./codec.ts";

/** The key under which a built-in codec carries its {@linkcode CodecKind}. */
export const CODEC_KIND: unique symbol = Symbol.for(
  "microsocket.codec.kind",
) as never;

/** What a built-in codec is, for the package. */
export interface CodecKind {
  /** Its framing: decides how its messages travel over WebSocket. */
  readonly framing: "lines" | "json" | "lengthPrefixed" | "microSocket";
  /** The option that bounds one message, e.g. `"maxLineBytes"`. */
  readonly option: string;
  /** The bound, in bytes. */
  readonly limit: number;
  /** The codec's own `encode`, to tell it from a replaced one. */
  // deno-lint-ignore no-explicit-any
  readonly encode: (message: any) => Uint8Array;
  /** The codec's own `decoder`, to tell it from a replaced one. */
  // deno-lint-ignore no-explicit-any
  readonly decoder: (link?: DecoderLink) => Decoder<any>;
  /**
   * A decoder of the same framing held to `limit` (at most the codec's
   * own), whose errors name `option`.
   */
  bounded(
    link: DecoderLink | undefined,
    limit: number,
    option: string,
    // deno-lint-ignore no-explicit-any
  ): Decoder<any>;
}

type Kinded = { [CODEC_KIND]?: CodecKind };

/** Marks `codec` as a built-in codec of `kind` and returns it. */
export function withKind<C extends object>(
  codec: C,
  kind: Omit<CodecKind, "encode" | "decoder">,
): C {
  const { encode, decoder } = codec as unknown as CodecKind;
  (codec as Kinded)[CODEC_KIND] = { ...kind, encode, decoder };
  return codec;
}

/**
 * The kind of a built-in codec, or `undefined` for any other codec (one
 * merely named like ours, or one that replaced the framing it spread).
 */
// deno-lint-ignore no-explicit-any
export function kindOf(codec: Codec<any, any>): CodecKind | undefined {
  const kind = (codec as Kinded)[CODEC_KIND];
  return kind !== undefined && codec.encode === kind.encode &&
      codec.decoder === kind.decoder
    ? kind
    : undefined;
}

/**
 * `codec` held to at most `max` bytes a message: the codec itself when its
 * own limit is not larger, else the same codec whose decoders stop at `max`
 * and name `option`. Made once per server or client, never per connection.
 */
export function boundCodec<In, Out>(
  codec: Codec<In, Out>,
  max: number,
  option: string,
): Codec<In, Out> {
  const kind = kindOf(codec);
  if (kind === undefined || kind.limit <= max) return codec;
  const decoder = (link?: DecoderLink): Decoder<In> =>
    kind.bounded(link, max, option);
  return withKind({ ...codec, decoder }, {
    framing: kind.framing,
    option,
    limit: max,
    bounded: (link, limit, name) =>
      kind.bounded(link, Math.min(limit, max), limit < max ? name : option),
  });
}
