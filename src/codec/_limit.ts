// Package-internal: one check for the size limits every codec takes.

/**
 * Returns `value`, or `fallback` when it is undefined, after checking that
 * it is an integer from `min` to `max`.
 *
 * @throws {RangeError} Naming the option, when it is out of range.
 */
export function sizeLimit(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const limit = value ?? fallback;
  if (!Number.isInteger(limit) || limit < min || limit > max) {
    throw new RangeError(
      `${name} must be an integer from ${min} to ${max}, got ${limit}`,
    );
  }
  return limit;
}

/** The limit a codec puts on one message, and the option that set it. */
export interface MessageLimit {
  /** The option's name, e.g. `"maxLineBytes"`. */
  readonly option: string;
  /** The limit, in bytes. */
  readonly limit: number;
}

// Read by transports that frame messages themselves (WebSocket), so that
// the codec's own limit applies to each message there too.
const messageLimits = new WeakMap<object, MessageLimit>();

/**
 * Records the limit `codec` puts on one message (a line, a frame's
 * payload) and returns `codec`.
 */
export function withMessageLimit<C extends object>(
  codec: C,
  option: string,
  limit: number,
): C {
  messageLimits.set(codec, { option, limit });
  return codec;
}

/** The limit recorded for `codec` by {@linkcode withMessageLimit}, if any. */
export function messageLimitOf(codec: object): MessageLimit | undefined {
  return messageLimits.get(codec);
}
