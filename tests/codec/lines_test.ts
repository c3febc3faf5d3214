import assert from "node:assert/strict";
import { DecodeError, FrameTooLargeError, lines } from "../../mod.ts";
import { dial, testServer } from "../_server.ts";
import {
  randomChunks,
  readToEnd,
  seededRandom,
  utf8,
  within,
  writeAll,
} from "../_util.ts";
import { cuts, feed } from "../_split.ts";

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

Deno.test("lines() encodes a line ending in CR so that it decodes with it", () => {
  const codec = lines();
  const target = new Uint8Array(32).fill(0xee);
  // One CR before the LF belongs to the terminator, so a line's own last CR
  // travels as CR CR LF.
  assert.deepEqual(codec.encode("a\r"), utf8("a\r\r\n"));
  assert.deepEqual(codec.encode("\r"), utf8("\r\r\n"));
  for (const line of ["a\r", "\r", "a\r\r", "a\rb", "\r\r\r"]) {
    const end = codec.encodeInto!(line, target, 2);
    assert.deepEqual(target.subarray(2, end), codec.encode(line), line);
    const got: string[] = [];
    codec.decoder().decode(codec.encode(line), (l) => got.push(l));
    assert.deepEqual(got, [line], JSON.stringify(line));
  }
  // The extra CR counts when it has to fit.
  assert.equal(codec.encodeInto!("abc\r", new Uint8Array(5), 0), -1);
  assert.equal(codec.encodeInto!("abc\r", new Uint8Array(6), 0), 6);
});

// Decode, re-encode what came out, decode again: the same lines, whatever
// the cut. What decode produces, encode takes back (an echo never throws).
Deno.test("lines() round trip: encode takes back every line decode produces, at every split", () => {
  const codec = lines();
  const inputs: [string, string[]][] = [
    ["a\r\r\n", ["a\r"]],
    ["a\r\r\r\n\r\n\r\r\n", ["a\r\r", "", "\r"]],
    ["x\ry\r\n\n", ["x\ry", ""]],
    // Only a CR before a LF is a terminator's: the end of input ends a
    // line as it is.
    ["last\r\r", ["last\r\r"]],
    ["end\r", ["end\r"]],
    ["\r", ["\r"]],
    ["\r\n\r", ["", "\r"]],
  ];
  for (const [text, expected] of inputs) {
    for (const [label, chunks] of cuts(utf8(text))) {
      const decoder = codec.decoder();
      const { messages, error } = feed(decoder, chunks);
      assert.equal(error, undefined, `${label}: ${error}`);
      decoder.end!((line) => messages.push(line));
      assert.deepEqual(messages, expected, `${JSON.stringify(text)} ${label}`);
      const again: string[] = [];
      const second = codec.decoder();
      for (const line of messages) {
        second.decode(codec.encode(line), (l) => again.push(l));
      }
      second.end!((l) => again.push(l));
      assert.deepEqual(again, expected, `${JSON.stringify(text)} re-encoded`);
    }
  }
});

Deno.test("lines() end() delivers a last line without a line feed, at every split", () => {
  const text = "one\r\ntwo\nthrée 🌍";
  for (const [label, chunks] of cuts(utf8(text))) {
    const decoder = lines().decoder();
    const { messages, error } = feed(decoder, chunks);
    assert.equal(error, undefined, label);
    assert.deepEqual(messages, ["one", "two"], label);
    decoder.end!((line) => messages.push(line));
    assert.deepEqual(messages, ["one", "two", "thrée 🌍"], label);
    assert.equal(decoder.buffered, 0, label);
  }
  // Nothing pending: nothing delivered. A terminated stream ends clean.
  const decoder = lines().decoder();
  const got: string[] = [];
  decoder.decode(utf8("a\n"), (line) => got.push(line));
  decoder.end!((line) => got.push(line));
  assert.deepEqual(got, ["a"]);
});

Deno.test("lines() end() checks the last line like any other", () => {
  const bad = lines().decoder();
  bad.decode(new Uint8Array([0x61, 0xff]), () => {});
  assert.throws(() => bad.end!(() => {}), DecodeError);
  // maxLineBytes counts the last line's bytes, a CR there included: it is
  // the line's, not a terminator's.
  const decoder = lines({ maxLineBytes: 3 }).decoder();
  const got: string[] = [];
  decoder.decode(utf8("abc"), (line) => got.push(line));
  decoder.end!((line) => got.push(line));
  assert.deepEqual(got, ["abc"]);
  const over = lines({ maxLineBytes: 3 }).decoder();
  over.decode(utf8("abc\r"), () => {});
  assert.throws(() => over.end!(() => {}), FrameTooLargeError);
});

Deno.test("lines() over a socket: the peer's last line before it half-closes reaches onMessage, and an echo of 'a\\r\\r\\n' works", async () => {
  const got: string[] = [];
  const errors: unknown[] = [];
  await using server = testServer({
    codec: lines(),
    onMessage: (session, line) => {
      got.push(line);
      session.send(line);
    },
    onError: (error) => void errors.push(error),
  });
  using conn = await dial(server);
  await writeAll(conn, utf8("first\na\r\r\nno newline"));
  await conn.closeWrite();
  const echoed = await within(readToEnd(conn), 5000, "the echo");
  assert.deepEqual(got, ["first", "a\r", "no newline"]);
  assert.equal(new TextDecoder().decode(echoed), "first\na\r\r\nno newline\n");
  assert.deepEqual(errors, []);
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
