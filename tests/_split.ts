// Test helpers: feed a decoder the same bytes cut in every way that matters —
// whole, at every single split point, one byte at a time, and in seeded
// random chunks — and check each cut yields the same messages (or error).
//
// Chunks are handed over in a scratch buffer that is overwritten after every
// decode() call, as a session reuses its read buffer, so a decoder that keeps
// a view of `chunk` instead of copying it fails here.
import assert from "node:assert/strict";
import type { Decoder } from "../src/codec/codec.ts";
import { randomChunks, seededRandom } from "./_util.ts";

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Every way to cut `bytes` that the helpers below try, with a label. */
export function* cuts(
  bytes: Uint8Array,
  seed = 1,
  randomRuns = 20,
): Generator<[label: string, chunks: Uint8Array[]]> {
  yield ["whole", [bytes]];
  for (let i = 1; i < bytes.length; i++) {
    yield [`split at ${i}`, [bytes.subarray(0, i), bytes.subarray(i)]];
  }
  const single: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
  yield ["one byte per chunk", single];
  const random = seededRandom(seed);
  for (let run = 0; run < randomRuns; run++) {
    const max = 1 + Math.floor(random() * 32);
    yield [
      `random run ${run} (seed ${seed}, max ${max})`,
      randomChunks(bytes, max, random),
    ];
  }
}

/**
 * Feeds `chunks` to `decoder` through a scratch buffer that is scribbled over
 * after each call.
 *
 * @returns The messages emitted, and the error thrown if any.
 */
export function feed<T>(
  decoder: Decoder<T>,
  chunks: Iterable<Uint8Array>,
): { messages: T[]; error: unknown } {
  const messages: T[] = [];
  const emit = (message: T) => void messages.push(message);
  let scratch = new Uint8Array(64);
  for (const chunk of chunks) {
    if (scratch.length < chunk.length) scratch = new Uint8Array(chunk.length);
    scratch.set(chunk);
    try {
      decoder.decode(scratch.subarray(0, chunk.length), emit);
    } catch (error) {
      return { messages, error };
    } finally {
      scratch.fill(0xaa);
    }
  }
  return { messages, error: undefined };
}

/**
 * Asserts that every cut of `bytes` decodes to `expected`, with a fresh
 * decoder per cut, and that nothing is left buffered afterwards.
 */
export function assertDecodesAcrossCuts<T>(
  newDecoder: () => Decoder<T>,
  bytes: Uint8Array,
  expected: T[],
  seed = 1,
): void {
  for (const [label, chunks] of cuts(bytes, seed)) {
    const decoder = newDecoder();
    const { messages, error } = feed(decoder, chunks);
    assert.equal(error, undefined, `${label}: unexpected ${error}`);
    assert.deepEqual(messages, expected, label);
    assert.equal(decoder.buffered, 0, `${label}: bytes left buffered`);
  }
}

/**
 * Asserts that every cut of `bytes` makes the decoder throw an instance of
 * `errorClass`, after emitting exactly `before`.
 *
 * @returns The error thrown for the whole input, to inspect further.
 */
export function assertFailsAcrossCuts<T>(
  newDecoder: () => Decoder<T>,
  bytes: Uint8Array,
  errorClass: new (...args: never[]) => Error,
  before: T[] = [],
  seed = 1,
): Error {
  let first: Error | undefined;
  for (const [label, chunks] of cuts(bytes, seed)) {
    const { messages, error } = feed(newDecoder(), chunks);
    assert.ok(
      error instanceof errorClass,
      `${label}: expected ${errorClass.name}, got ${error}`,
    );
    assert.deepEqual(messages, before, label);
    first ??= error;
  }
  return first!;
}
