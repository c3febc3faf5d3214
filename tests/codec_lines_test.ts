import assert from "node:assert/strict";
import { DecodeError, FrameTooLargeError, lines } from "../mod.ts";
import { randomChunks, seededRandom, utf8 } from "./_util.ts";

function decodeAll(chunks: Uint8Array[], maxLineBytes?: number): string[] {
  const decoder = lines(
    maxLineBytes === undefined ? {} : { maxLineBytes },
  ).decoder();
  const out: string[] = [];
  for (const chunk of chunks) decoder.decode(chunk, (line) => out.push(line));
  return out;
}

const SAMPLE = "hello\r\nwörld 🌍\n\nlast line\n";
const SAMPLE_LINES = ["hello", "wörld 🌍", "", "last line"];

Deno.test("lines() decodes a stream split at every byte position", () => {
  const bytes = utf8(SAMPLE);
  for (let i = 0; i <= bytes.length; i++) {
    for (let j = i; j <= bytes.length; j++) {
      const got = decodeAll([
        bytes.subarray(0, i),
        bytes.subarray(i, j),
        bytes.subarray(j),
      ]);
      assert.deepEqual(got, SAMPLE_LINES, `split at ${i} and ${j}`);
    }
  }
});

Deno.test("lines() decodes one byte at a time and random chunkings", () => {
  const bytes = utf8(SAMPLE.repeat(50));
  const expected = Array.from({ length: 50 }, () => SAMPLE_LINES).flat();
  const single = [...bytes].map((b) => new Uint8Array([b]));
  assert.deepEqual(decodeAll(single), expected);
  const random = seededRandom(7);
  for (let round = 0; round < 50; round++) {
    assert.deepEqual(decodeAll(randomChunks(bytes, 40, random)), expected);
  }
});

Deno.test("lines() copies what it keeps, so callers may reuse their buffer", () => {
  const decoder = lines().decoder();
  const buffer = new Uint8Array(8);
  const out: string[] = [];
  buffer.set(utf8("abc"));
  decoder.decode(buffer.subarray(0, 3), (l) => out.push(l));
  buffer.set(utf8("XYZ\n"));
  buffer.fill(0x21, 0, 3); // overwrite: "!!!\n"
  decoder.decode(buffer.subarray(0, 4), (l) => out.push(l));
  assert.deepEqual(out, ["abc!!!"]);
});

Deno.test("lines() accepts a line of exactly maxLineBytes, with or without CR", () => {
  const line = "x".repeat(16);
  assert.deepEqual(decodeAll([utf8(line + "\n")], 16), [line]);
  assert.deepEqual(decodeAll([utf8(line + "\r\n")], 16), [line]);
  const bytes = utf8(line + "\r\n");
  assert.deepEqual(
    decodeAll([...bytes].map((b) => new Uint8Array([b])), 16),
    [line],
  );
});

Deno.test("lines() throws FrameTooLargeError before buffering an over-long line", () => {
  const decoder = lines({ maxLineBytes: 16 }).decoder();
  decoder.decode(utf8("x".repeat(10)), () => {});
  assert.throws(
    () => decoder.decode(utf8("x".repeat(10)), () => {}),
    FrameTooLargeError,
  );
  // Complete in one chunk, too.
  assert.throws(
    () => decodeAll([utf8("y".repeat(17) + "\n")], 16),
    FrameTooLargeError,
  );
  // An endless line without a newline is refused once past the limit; the
  // decoder never holds more than limit + 1 bytes.
  const endless = lines({ maxLineBytes: 1024 }).decoder();
  let thrown: unknown;
  try {
    for (let i = 0; i < 10_000; i++) {
      endless.decode(new Uint8Array(100).fill(0x61), () => {});
      assert.ok(endless.buffered <= 1025);
    }
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof FrameTooLargeError);
});

Deno.test("lines() turns invalid UTF-8 into a DecodeError", () => {
  const bad = new Uint8Array([0x61, 0xff, 0xfe, 0x0a]);
  assert.throws(() => decodeAll([bad]), DecodeError);
  // Lines before the bad one are still delivered.
  const out: string[] = [];
  const decoder = lines().decoder();
  assert.throws(
    () =>
      decoder.decode(
        new Uint8Array([...utf8("ok\n"), 0xc3, 0x28, 0x0a]),
        (l) => out.push(l),
      ),
    DecodeError,
  );
  assert.deepEqual(out, ["ok"]);
});

Deno.test("lines() encode appends LF and refuses embedded line feeds", () => {
  const codec = lines();
  assert.deepEqual(codec.encode("hé"), utf8("hé\n"));
  assert.throws(() => codec.encode("a\nb"), TypeError);
  assert.throws(() => lines({ maxLineBytes: 0 }), RangeError);
});

Deno.test("lines() encodeInto writes what encode writes, or -1 when it doesn't fit", () => {
  const codec = lines();
  const target = new Uint8Array(32).fill(0xee);
  for (const line of ["", "abc", "héllo 🌍"]) {
    const end = codec.encodeInto!(line, target, 3);
    assert.deepEqual(target.subarray(3, end), codec.encode(line));
  }
  assert.equal(codec.encodeInto!("x".repeat(40), target, 0), -1);
  assert.equal(codec.encodeInto!("🌍🌍🌍🌍🌍🌍🌍", target, 4), -1);
  assert.throws(() => codec.encodeInto!("a\nb", target, 0), TypeError);
});

Deno.test("lines() encode refuses a line ending in CR, which would decode without it", () => {
  const codec = lines();
  const target = new Uint8Array(32);
  for (const line of ["a\r", "\r"]) {
    assert.throws(() => codec.encode(line), TypeError);
    assert.throws(() => codec.encodeInto!(line, target, 0), TypeError);
  }
  // A CR anywhere else survives the round trip.
  const got: string[] = [];
  codec.decoder().decode(codec.encode("a\rb"), (line) => got.push(line));
  assert.deepEqual(got, ["a\rb"]);
});

Deno.test("lines() encode of a non-string says what it expected", () => {
  const codec = lines();
  for (const bad of [42, undefined, null, { text: "x" }]) {
    assert.throws(
      () => codec.encode(bad as unknown as string),
      (error: unknown) =>
        error instanceof TypeError &&
        /^lines\(\) encodes strings, got (number|undefined|null|object)$/.test(
          error.message,
        ),
    );
    assert.throws(
      () => codec.encodeInto!(bad as unknown as string, new Uint8Array(8), 0),
      /lines\(\) encodes strings/,
    );
  }
});
