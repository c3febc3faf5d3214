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
