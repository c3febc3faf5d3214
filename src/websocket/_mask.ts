// Package-internal: RFC 6455 masking (section 5.3), shared by the frame
// parser (unmasking client frames on the server) and the frame writer
// (masking frames a client sends). XOR is its own inverse, so one function
// does both. It works on 32-bit words where it can: ~8 GB/s against
// ~1.5 GB/s for a byte loop (see DENO_FACTS.md).

// A 4-byte scratch and a uint32 view of it: the rotated key is laid out here
// byte by byte and read back as one word, so the word matches the payload's
// byte order whatever the platform's endianness.
const keyBytes = new Uint8Array(4);
const keyWord = new Uint32Array(keyBytes.buffer);

// Below this many bytes the word loop's setup costs more than it saves.
const WORD_LOOP_MIN = 32;

/**
 * XORs `bytes` in place with the 4-byte masking key `key[keyOffset ..
 * keyOffset + 4)`, starting at position `phase` of the key (the number of
 * payload bytes of the same frame already masked, so that a payload that
 * arrives in pieces can be unmasked piece by piece).
 *
 * @param bytes The bytes to mask or unmask, changed in place.
 * @param key Holds the masking key.
 * @param keyOffset Where the key starts in `key`.
 * @param phase How many bytes of this frame's payload came before `bytes`.
 *
 * @example Unmasking the masked "Hello" of RFC 6455 section 5.7
 * ```ts
 * import { applyMask } from "./_mask.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = new Uint8Array([
 *   0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
 * ]);
 * const payload = frame.subarray(6);
 * applyMask(payload.subarray(0, 2), frame, 2, 0); // in two pieces
 * applyMask(payload.subarray(2), frame, 2, 2);
 * assert.equal(new TextDecoder().decode(payload), "Hello");
 * ```
 */
export function applyMask(
  bytes: Uint8Array,
  key: Uint8Array,
  keyOffset: number,
  phase: number,
): void {
  const length = bytes.length;
  let i = 0;
  if (length >= WORD_LOOP_MIN) {
    // Bytewise up to a 4-byte boundary of the underlying buffer, then words.
    const misalign = (4 - (bytes.byteOffset & 3)) & 3;
    for (; i < misalign; i++) {
      bytes[i]! ^= key[keyOffset + ((phase + i) & 3)]!;
    }
    for (let k = 0; k < 4; k++) {
      keyBytes[k] = key[keyOffset + ((phase + i + k) & 3)]!;
    }
    const mask = keyWord[0]!;
    const words = (length - i) >>> 2;
    const view = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w]! ^= mask;
    i += words << 2;
  }
  for (; i < length; i++) {
    bytes[i]! ^= key[keyOffset + ((phase + i) & 3)]!;
  }
}
