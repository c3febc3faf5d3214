// Package-internal: recycles the chunks sessions gather small outbound frames
// in. With a thousand sessions each writing a chunk per turn, allocating
// them fresh is most of the garbage a fan-out makes; recycled through one
// process-wide pool, idle sessions hold no chunk at all and busy ones reuse
// what others just finished writing. The pool is bounded per size class.

const MIN_SHIFT = 10; // 1 KiB
const MAX_SHIFT = 16; // 64 KiB
const KEEP_BYTES_PER_CLASS = 1024 * 1024;

const free: ArrayBuffer[][] = [];
for (let shift = MIN_SHIFT; shift <= MAX_SHIFT; shift++) free.push([]);

/** The smallest pooled size that holds `size` bytes (beyond 64 KiB: exact). */
function classOf(size: number): number {
  let shift = MIN_SHIFT;
  while ((1 << shift) < size) shift++;
  return shift;
}

/** A zeroed or recycled chunk of at least `size` bytes. */
export function takeChunk(size: number): Uint8Array {
  const shift = classOf(size);
  if (shift > MAX_SHIFT) return new Uint8Array(size);
  const buffer = free[shift - MIN_SHIFT]!.pop() ?? new ArrayBuffer(1 << shift);
  return new Uint8Array(buffer);
}

/**
 * Returns a chunk that `takeChunk` issued, once nothing uses it any more
 * (its write has completed). The caller must own it: the pool hands it out
 * again as it is.
 */
export function giveChunk(buffer: ArrayBuffer): void {
  const shift = classOf(buffer.byteLength);
  if (shift > MAX_SHIFT || (1 << shift) !== buffer.byteLength) return;
  const list = free[shift - MIN_SHIFT]!;
  if ((list.length + 1) * buffer.byteLength <= KEEP_BYTES_PER_CLASS) {
    list.push(buffer);
  }
}
