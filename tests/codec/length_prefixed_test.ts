import assert from "node:assert/strict";
import {
  CloseReason,
  FrameTooLargeError,
  lengthPrefixed,
  TruncatedFrameError,
} from "../../mod.ts";
import { dial, testServer } from "../_server.ts";
import {
  randomChunks,
  readToEnd,
  seededRandom,
  within,
  writeAll,
} from "../_util.ts";
import { cuts, feed } from "../_split.ts";

function frames(...payloads: number[][]): Uint8Array {
  const codec = lengthPrefixed();
  const parts = payloads.map((p) => codec.encode(new Uint8Array(p)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function decodeAll(chunks: Uint8Array[], maxFrameBytes = 1 << 20): number[][] {
  const decoder = lengthPrefixed({ maxFrameBytes }).decoder();
  const out: number[][] = [];
  for (const chunk of chunks) {
    decoder.decode(chunk, (payload) => out.push([...payload]));
  }
  return out;
}

const PAYLOADS = [[1, 2, 3], [], [0xff], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]];

Deno.test("lengthPrefixed() decodes a stream split at every byte position", () => {
  const bytes = frames(...PAYLOADS);
  for (let i = 0; i <= bytes.length; i++) {
    for (let j = i; j <= bytes.length; j++) {
      const got = decodeAll([
        bytes.subarray(0, i),
        bytes.subarray(i, j),
        bytes.subarray(j),
      ]);
      assert.deepEqual(got, PAYLOADS, `split at ${i} and ${j}`);
    }
  }
});

Deno.test("lengthPrefixed() decodes random chunkings of large frames", () => {
  const random = seededRandom(11);
  const big = Array.from({ length: 100_000 }, (_, i) => i & 0xff);
  const bytes = frames([1], big, [], big.slice(0, 40_000), [2]);
  for (let round = 0; round < 10; round++) {
    const got = decodeAll(randomChunks(bytes, 30_000, random));
    assert.deepEqual(got, [[1], big, [], big.slice(0, 40_000), [2]]);
  }
});

Deno.test("lengthPrefixed() hands out payloads that don't alias the input", () => {
  const bytes = frames([1, 2, 3]);
  const decoder = lengthPrefixed().decoder();
  let payload: Uint8Array | undefined;
  decoder.decode(bytes, (p) => payload = p);
  bytes.fill(0);
  assert.deepEqual([...payload!], [1, 2, 3]);
});

Deno.test("lengthPrefixed() refuses 0x7FFFFFFF and 0xFFFFFFFF headers before allocating", () => {
  for (const header of [[0x7f, 0xff, 0xff, 0xff], [0xff, 0xff, 0xff, 0xff]]) {
    const announced = new DataView(new Uint8Array(header).buffer).getUint32(0);
    const isTooLarge = (e: unknown) =>
      e instanceof FrameTooLargeError && e.size === announced &&
      e.limit === 1024;
    const decoder = lengthPrefixed({ maxFrameBytes: 1024 }).decoder();
    assert.throws(
      () => decoder.decode(new Uint8Array(header), () => {}),
      isTooLarge,
    );
    // Split header: same verdict on the fourth byte.
    const split = lengthPrefixed({ maxFrameBytes: 1024 }).decoder();
    split.decode(new Uint8Array(header.slice(0, 3)), () => {});
    assert.throws(
      () => split.decode(new Uint8Array(header.slice(3)), () => {}),
      isTooLarge,
    );
  }
});

Deno.test("lengthPrefixed() buffers only what arrived, not what the header announced", () => {
  const decoder = lengthPrefixed({ maxFrameBytes: 1 << 20 }).decoder();
  // Announce 1 MiB, send 10 bytes: the decoder holds 14 bytes of state.
  decoder.decode(
    new Uint8Array([0, 0x10, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    () => {},
  );
  assert.equal(decoder.buffered, 14);
});

Deno.test("lengthPrefixed() validates its options", () => {
  assert.throws(() => lengthPrefixed({ maxFrameBytes: -1 }), RangeError);
  assert.throws(() => lengthPrefixed({ maxFrameBytes: 2 ** 32 }), RangeError);
});

Deno.test("lengthPrefixed() encodeInto writes what encode writes, or -1 when it doesn't fit", () => {
  const codec = lengthPrefixed();
  const target = new Uint8Array(16);
  const payload = new Uint8Array([1, 2, 3]);
  const end = codec.encodeInto!(payload, target, 5);
  assert.equal(end, 12);
  assert.deepEqual(target.subarray(5, end), codec.encode(payload));
  assert.equal(codec.encodeInto!(new Uint8Array(13), target, 0), -1);
});

Deno.test("lengthPrefixed() frames decoded from one read are views of one copy", () => {
  const bytes = frames([1], [2, 2], [3, 3, 3]);
  const got: Uint8Array[] = [];
  lengthPrefixed().decoder().decode(bytes, (p) => got.push(p));
  assert.deepEqual(got.map((p) => [...p]), [[1], [2, 2], [3, 3, 3]]);
  assert.equal(got[0]!.buffer, got[2]!.buffer);
  assert.notEqual(got[0]!.buffer, bytes.buffer);
});

Deno.test("lengthPrefixed() encode of a non-Uint8Array says what it expected", () => {
  const codec = lengthPrefixed();
  for (const bad of [42, "ab", null, [1, 2]]) {
    assert.throws(
      () => codec.encode(bad as unknown as Uint8Array),
      /^TypeError: lengthPrefixed\(\) encodes Uint8Array payloads, got /,
    );
    assert.throws(
      () =>
        codec.encodeInto!(bad as unknown as Uint8Array, new Uint8Array(16), 0),
      TypeError,
    );
  }
});

Deno.test("lengthPrefixed() end() reports a frame cut off by the end of input as a TruncatedFrameError", () => {
  const bytes = frames([1, 2, 3], [4, 5, 6, 7]);
  // Every prefix that stops inside the second frame (header or payload).
  for (let stop = 8; stop < bytes.length; stop++) {
    for (const [label, chunks] of cuts(bytes.subarray(0, stop), 1, 2)) {
      const decoder = lengthPrefixed().decoder();
      const { messages, error } = feed(decoder, chunks);
      assert.equal(error, undefined, label);
      assert.deepEqual(messages.map((m) => [...m]), [[1, 2, 3]], label);
      assert.throws(
        () => decoder.end!(() => assert.fail("emitted at end")),
        (e: unknown) =>
          e instanceof TruncatedFrameError &&
          e.buffered === stop - 7 &&
          /truncated frame/i.test(e.message),
        `stop ${stop}, ${label}`,
      );
    }
  }
  // Whole frames: the end is clean.
  const decoder = lengthPrefixed().decoder();
  decoder.decode(bytes, () => {});
  decoder.end!(() => assert.fail("emitted at end"));
});

Deno.test("lengthPrefixed() over a socket: a peer that half-closes inside a frame is closed as 'truncated frame'", async () => {
  const got: number[][] = [];
  const errors: unknown[] = [];
  const closed = Promise.withResolvers<string>();
  await using server = testServer({
    codec: lengthPrefixed(),
    onMessage: (_session, payload) => void got.push([...payload]),
    onError: (error) => void errors.push(error),
    onClose: (_session, reason) => closed.resolve(reason),
  });
  using conn = await dial(server);
  await writeAll(conn, frames([9], [1, 2, 3]).subarray(0, 9));
  await conn.closeWrite();
  assert.equal(
    await within(closed.promise, 5000, "the close"),
    CloseReason.TruncatedFrame,
  );
  assert.deepEqual(got, [[9]]);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof TruncatedFrameError);
  assert.equal(server.stats().closedByReason["truncated frame"], 1);
  await within(readToEnd(conn), 5000, "the server's end");
});
