// Strict UTF-8 decoding at lenient speed: the re-check only runs when a
// replacement character appears, and then decides.
import assert from "node:assert/strict";
import { decodeUtf8 } from "../../src/codec/_utf8.ts";

Deno.test("decodeUtf8 accepts valid text, a genuine U+FFFD included", () => {
  const encoder = new TextEncoder();
  assert.equal(decodeUtf8(encoder.encode("héllo ✓")), "héllo ✓");
  assert.equal(decodeUtf8(encoder.encode("a\uFFFDb")), "a\uFFFDb");
  assert.equal(decodeUtf8(new Uint8Array(0)), "");
});

Deno.test("decodeUtf8 rejects invalid bytes (lone continuation, truncated, overlong)", () => {
  for (const bad of [[0x80], [0x61, 0xc3], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
    assert.throws(() => decodeUtf8(new Uint8Array(bad)), TypeError);
  }
});
