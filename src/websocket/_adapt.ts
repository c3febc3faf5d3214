// Package-internal: how listen(), connect() and upgradeWebSocket() turn the
// codec they are given into the WebSocket adapter their sessions use. A
// plain codec is wrapped; a codec that already is an adapter
// (webSocketCodec(), webSocketMessages()) is used as it is when its role
// and limit fit, rebuilt when the caller's maxMessageBytes or (unspecified)
// role differ, and refused when its role was chosen for the other end.
// Adapters are built once per server or client, never per message.
import type { Codec } from "../codec/codec.ts";
import type { DeflateParams } from "./_deflate.ts";

/** How an adapter was made, so that it can be made again for a transport. */
export interface AdapterRecipe {
  /** The role the adapter runs as. */
  readonly role: "server" | "client";
  /** Whether the caller chose the role (else it was the default). */
  readonly roleGiven: boolean;
  /** The `maxMessageBytes` the caller gave the adapter, if any. */
  readonly maxMessageBytes: number | undefined;
  /** Makes the same adapter with another role and limit. */
  rebuild(
    role: "server" | "client",
    maxMessageBytes: number | undefined,
    // deno-lint-ignore no-explicit-any
  ): Codec<any, any>;
  /**
   * Makes the variant of this adapter for connections that negotiated
   * permessage-deflate with `params`.
   */
  // deno-lint-ignore no-explicit-any
  compressed(params: DeflateParams): Codec<any, any>;
}

// deno-lint-ignore no-explicit-any
const recipes = new WeakMap<Codec<any, any>, AdapterRecipe>();

/** Marks `codec` as a WebSocket adapter made by `recipe`. */
export function rememberAdapter<C extends object>(
  codec: C,
  recipe: AdapterRecipe,
): C {
  // deno-lint-ignore no-explicit-any
  recipes.set(codec as Codec<any, any>, recipe);
  return codec;
}

/** The recipe of a WebSocket adapter; `undefined` for any other codec. */
export function adapterRecipe(
  // deno-lint-ignore no-explicit-any
  codec: Codec<any, any>,
): AdapterRecipe | undefined {
  return recipes.get(codec);
}

/**
 * The adapter a WebSocket session of `role` uses for `codec`: `wrap(codec)`
 * for a plain codec; the adapter itself when it fits; else one rebuilt with
 * the role and the smaller of the two `maxMessageBytes`.
 *
 * @param codec The codec the caller gave (or the default).
 * @param role The end the sessions run on.
 * @param maxMessageBytes The caller's `maxMessageBytes` option, if given.
 * @param who The caller, for the error message: `"listen()"`, `"connect()"`.
 * @param wrap Wraps a plain codec.
 * @throws {TypeError} When `codec` is an adapter made for the other role.
 */
export function adaptCodec<In, Out>(
  codec: Codec<In, Out>,
  role: "server" | "client",
  maxMessageBytes: number | undefined,
  who: string,
  wrap: (codec: Codec<In, Out>) => Codec<In, Out>,
): Codec<In, Out> {
  const recipe = recipes.get(codec);
  if (recipe === undefined) return wrap(codec);
  if (recipe.role !== role && recipe.roleGiven) {
    throw new TypeError(
      `codec is a WebSocket codec with role "${recipe.role}", but ${who} ` +
        `runs the ${role} end: give it role "${role}", or pass a plain ` +
        `codec (${who} wraps it)`,
    );
  }
  const max = maxMessageBytes === undefined
    ? recipe.maxMessageBytes
    : Math.min(maxMessageBytes, recipe.maxMessageBytes ?? Infinity);
  if (recipe.role === role && max === recipe.maxMessageBytes) return codec;
  return recipe.rebuild(role, max);
}

// Each adapter's compressed variants, by parameters: one object per set, so
// that a broadcast compresses once for all the sessions that share it.
// deno-lint-ignore no-explicit-any
type AnyCodec = Codec<any, any>;
const variants = new WeakMap<AnyCodec, Map<string, AnyCodec>>();

/**
 * The variant of `codec` (a WebSocket adapter) for a connection that
 * negotiated permessage-deflate with `params`: the same object for the
 * same adapter and parameters.
 */
export function compressedAdapter<In, Out>(
  codec: Codec<In, Out>,
  params: DeflateParams,
): Codec<In, Out> {
  const recipe = recipes.get(codec);
  if (recipe === undefined) return codec;
  let byKey = variants.get(codec);
  if (byKey === undefined) {
    byKey = new Map();
    variants.set(codec, byKey);
  }
  const key = `${params.windowBits}/${params.threshold}/${params.level}`;
  let variant = byKey.get(key);
  if (variant === undefined) {
    variant = recipe.compressed(params);
    byKey.set(key, variant);
  }
  return variant;
}

// Each adapter's twin of the other role, made on first use.
const twins = new WeakMap<AnyCodec, AnyCodec>();

/**
 * A codec whose decoder reads the frames `codec` encodes: for a WebSocket
 * adapter, its twin of the other role (a server's frames are unmasked, and
 * only a client-role parser accepts them); any other codec reads its own.
 * Used to re-encode frames that arrived already encoded (from another
 * cluster node) for a session with another codec.
 */
export function readerOf<In, Out>(codec: Codec<In, Out>): Codec<In, Out> {
  const recipe = recipes.get(codec);
  if (recipe === undefined) return codec;
  let twin = twins.get(codec);
  if (twin === undefined) {
    twin = recipe.rebuild(
      recipe.role === "server" ? "client" : "server",
      recipe.maxMessageBytes,
    );
    twins.set(codec, twin);
  }
  return twin;
}
