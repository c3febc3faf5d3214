import assert from "node:assert/strict";
import {
  DecodeError,
  FrameTooLargeError,
  microSocket,
  type MicroSocketMessage,
  TruncatedFrameError,
} from "../../mod.ts";
import {
  assertDecodesAcrossCuts,
  assertFailsAcrossCuts,
  concat,
  cuts,
  feed,
} from "../_split.ts";
import { dial, portOf, testServer } from "../_server.ts";
import {
  readBytes,
  readToEnd,
  seededRandom,
  utf8 as ascii,
  within,
} from "../_util.ts";

// A frame built by hand exactly as the seed's Enpack does: "Header", the
// payload length as a big-endian int32, then the payload bytes.
function seedFrame(payload: string | Uint8Array): Uint8Array {
  const body = typeof payload === "string" ? ascii(payload) : payload;
  const n = body.length;
  return concat(
    ascii("Header"),
    new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]),
    body,
  );
}

function header(b0: number, b1: number, b2: number, b3: number): Uint8Array {
  return concat(ascii("Header"), new Uint8Array([b0, b1, b2, b3]));
}

// Decoded messages have no prototype; compare against the same shape.
function msg(fields: Record<string, string>): MicroSocketMessage {
  return Object.assign(Object.create(null), fields);
}

const decoder = () => microSocket().decoder();

Deno.test("microSocket() decodes the seed's hand-built frames", () => {
  const bytes = concat(
    seedFrame("action:ping"),
    seedFrame("module:test|method:Hello|name:jd"),
    seedFrame("module:test|action:Hello"),
  );
  assert.deepEqual(
    [...bytes.subarray(0, 10)],
    [0x48, 0x65, 0x61, 0x64, 0x65, 0x72, 0, 0, 0, 11],
  );
  assertDecodesAcrossCuts(decoder, bytes, [
    msg({ action: "ping" }),
    msg({ module: "test", method: "Hello", name: "jd" }),
    msg({ module: "test", action: "Hello" }),
  ]);
});

Deno.test("microSocket() encodes plain messages exactly as the seed does", () => {
  const codec = microSocket();
  assert.deepEqual(
    codec.encode({ module: "test", method: "Hello", name: "jd" }),
    seedFrame("module:test|method:Hello|name:jd"),
  );
  assert.deepEqual(codec.encode({ action: "ping" }), seedFrame("action:ping"));
});

Deno.test("microSocket() counts the length in UTF-8 bytes", () => {
  const codec = microSocket();
  const frame = codec.encode({ text: "héllo ✓ 🙂" });
  assert.deepEqual(frame, seedFrame(ascii("text:héllo ✓ 🙂")));
  assertDecodesAcrossCuts(decoder, frame, [msg({ text: "héllo ✓ 🙂" })]);
});

Deno.test("microSocket() rejects a negative length (0xFFFFFFFF) at the header", () => {
  // The seed panics on this header and takes the whole process down.
  const error = assertFailsAcrossCuts(
    decoder,
    concat(seedFrame("action:ok"), header(0xff, 0xff, 0xff, 0xff), ascii("x")),
    DecodeError,
    [msg({ action: "ok" })],
  );
  assert.ok(!(error instanceof FrameTooLargeError));
  assert.match(error.message, /negative/i);
  assert.match(error.message, /-1/);
});

Deno.test("microSocket() rejects 0x80000000 as negative", () => {
  const error = assertFailsAcrossCuts(
    decoder,
    header(0x80, 0, 0, 0),
    DecodeError,
  );
  assert.match(error.message, /-2147483648/);
});

Deno.test("microSocket() rejects 0x7FFFFFFF before buffering any payload", () => {
  // The seed buffers everything that follows this header (RSS → 920 MB).
  const d = decoder();
  const { error } = feed(d, [header(0x7f, 0xff, 0xff, 0xff)]);
  assert.ok(error instanceof FrameTooLargeError);
  assert.equal(error.size, 0x7fffffff);
  assert.equal(error.limit, 1048576);
  assertFailsAcrossCuts(
    decoder,
    concat(header(0x7f, 0xff, 0xff, 0xff), new Uint8Array(100)),
    FrameTooLargeError,
  );
});

Deno.test("microSocket() accepts a frame of exactly maxFrameBytes and rejects one more", () => {
  const small = () => microSocket({ maxFrameBytes: 16 }).decoder();
  const sixteen = "k:" + "v".repeat(14);
  assertDecodesAcrossCuts(small, seedFrame(sixteen), [
    msg({ k: "v".repeat(14) }),
  ]);
  const error = assertFailsAcrossCuts(
    small,
    seedFrame(sixteen + "v"),
    FrameTooLargeError,
  );
  assert.equal((error as FrameTooLargeError).size, 17);
});

Deno.test("microSocket() rejects a wrong magic at its first wrong byte", () => {
  for (
    const garbage of ["GET / HTTP/1.1\r\n\r\n", "header\0\0\0\x01x", "HeadeR"]
  ) {
    assertFailsAcrossCuts(decoder, ascii(garbage), DecodeError);
  }
  // "Heade" then "X": the error comes with the sixth byte, without waiting
  // for a whole header.
  const d = decoder();
  assert.equal(feed(d, [ascii("Heade")]).error, undefined);
  assert.equal(d.buffered, 5);
  const { error } = feed(d, [ascii("X")]);
  assert.ok(error instanceof DecodeError);
  assert.match(error.message, /offset 5/);
});

Deno.test("microSocket() rejects garbage after a valid frame", () => {
  assertFailsAcrossCuts(
    decoder,
    concat(seedFrame("a:1"), ascii("garbage!!!!")),
    DecodeError,
    [msg({ a: "1" })],
  );
});

Deno.test("microSocket() treats an empty frame as a keepalive pong", () => {
  const codec = microSocket();
  assert.deepEqual(codec.heartbeat?.ping, header(0, 0, 0, 0));
  const { messages, error } = feed(codec.decoder(), [
    concat(header(0, 0, 0, 0), seedFrame("a:1"), header(0, 0, 0, 0)),
  ]);
  assert.equal(error, undefined);
  assert.equal(messages.length, 3);
  assert.equal(codec.heartbeat?.isPong(messages[0]!), true);
  assert.equal(codec.heartbeat?.isPong(messages[1]!), false);
  assert.equal(codec.heartbeat?.isPong(messages[2]!), true);
  // A payload that decodes to no pairs is not a pong.
  const [empty] = feed(codec.decoder(), [seedFrame("|")]).messages;
  assert.deepEqual(empty, msg({}));
  assert.equal(codec.heartbeat?.isPong(empty!), false);
  // The ping our heartbeat sends is itself a pong to the peer's decoder.
  const [ping] = feed(codec.decoder(), [codec.heartbeat!.ping]).messages;
  assert.equal(codec.heartbeat?.isPong(ping!), true);
});

Deno.test("microSocket() escapes |, : and \\ when encoding", () => {
  const codec = microSocket();
  const frame = codec.encode({ "k|1": "a:b\\c", url: "http://x|y" });
  assert.deepEqual(
    frame,
    seedFrame(String.raw`k\|1:a\:b\\c|url:http\://x\|y`),
  );
  assertDecodesAcrossCuts(decoder, frame, [
    msg({ "k|1": "a:b\\c", url: "http://x|y" }),
  ]);
});

Deno.test("microSocket() unescapes hand-built escaped payloads", () => {
  assertDecodesAcrossCuts(
    decoder,
    seedFrame(String.raw`a\:b:c\|d|e\\:f\\\|`),
    [msg({ "a:b": "c|d", "e\\": "f\\|" })],
  );
});

Deno.test("microSocket() keeps a backslash before other characters, and later colons", () => {
  assertDecodesAcrossCuts(
    decoder,
    seedFrame(String.raw`path:C\dir\n|url:http://x:80|end:back\ `.trimEnd()),
    [msg({ path: "C\\dir\\n", url: "http://x:80", end: "back\\" })],
  );
});

Deno.test("microSocket() round-trips random keys and values full of specials", () => {
  const codec = microSocket();
  const random = seededRandom(7);
  const alphabet = ["a", "b", "|", ":", "\\", "é", "🙂", " ", "\n"];
  const word = (): string => {
    let s = "";
    const n = Math.floor(random() * 8);
    for (let i = 0; i < n; i++) {
      s += alphabet[Math.floor(random() * alphabet.length)];
    }
    return s;
  };
  for (let run = 0; run < 200; run++) {
    const fields: Record<string, string> = {};
    const pairs = 1 + Math.floor(random() * 4);
    for (let i = 0; i < pairs; i++) fields[word()] = word();
    const { messages, error } = feed(codec.decoder(), [codec.encode(fields)]);
    assert.equal(error, undefined, JSON.stringify(fields));
    assert.deepEqual(messages, [msg(fields)], JSON.stringify(fields));
  }
});

Deno.test("microSocket() decodes a single pair, which the seed drops", () => {
  assertDecodesAcrossCuts(decoder, seedFrame("action:ping"), [
    msg({ action: "ping" }),
  ]);
});

Deno.test("microSocket() skips empty pairs and keeps the last of repeated keys", () => {
  assertDecodesAcrossCuts(decoder, seedFrame("|a:1||b:2|a:3|"), [
    msg({ a: "3", b: "2" }),
  ]);
  assertDecodesAcrossCuts(decoder, seedFrame(":|k:"), [msg({ "": "", k: "" })]);
});

Deno.test("microSocket() rejects a pair without a colon", () => {
  for (const payload of ["hello", "a:1|oops", String.raw`a\:1`]) {
    const error = assertFailsAcrossCuts(
      decoder,
      seedFrame(payload),
      DecodeError,
    );
    assert.match(error.message, /without a colon/);
  }
});

Deno.test("microSocket() rejects a payload that is not UTF-8", () => {
  assertFailsAcrossCuts(
    decoder,
    seedFrame(new Uint8Array([0x61, 0x3a, 0xff, 0xfe])),
    DecodeError,
  );
});

Deno.test("microSocket() decodes hostile keys without touching prototypes", () => {
  const [message] = feed(decoder(), [
    seedFrame("__proto__:x|constructor:y|toString:z"),
  ]).messages;
  assert.ok(message);
  assert.equal(Object.getPrototypeOf(message), null);
  assert.equal(message["__proto__"], "x");
  assert.equal(message.constructor, "y");
  assert.deepEqual(Object.keys(message), [
    "__proto__",
    "constructor",
    "toString",
  ]);
  assert.equal(({} as Record<string, unknown>).x, undefined);
  const [plain] = feed(decoder(), [seedFrame("a:1")]).messages;
  assert.equal(plain!.constructor, undefined);
});

Deno.test("microSocket() refuses to encode empty messages and non-string values", () => {
  const codec = microSocket();
  assert.throws(() => codec.encode({}), TypeError);
  assert.throws(
    () => codec.encode({ n: 1 } as unknown as MicroSocketMessage),
    TypeError,
  );
  assert.throws(
    () => codec.encode(null as unknown as MicroSocketMessage),
    TypeError,
  );
});

Deno.test("microSocket() validates maxFrameBytes", () => {
  for (const bad of [-1, 1.5, 2 ** 31, NaN]) {
    assert.throws(() => microSocket({ maxFrameBytes: bad }), RangeError);
  }
  microSocket({ maxFrameBytes: 0 });
  microSocket({ maxFrameBytes: 2 ** 31 - 1 });
});

Deno.test("microSocket() reports buffered bytes of a partial frame", () => {
  const d = decoder();
  const frame = seedFrame("abc:def");
  feed(d, [frame.subarray(0, 4)]);
  assert.equal(d.buffered, 4);
  feed(d, [frame.subarray(4, 12)]);
  assert.equal(d.buffered, 12);
  const { messages } = feed(d, [frame.subarray(12)]);
  assert.deepEqual(messages, [msg({ abc: "def" })]);
  assert.equal(d.buffered, 0);
});

Deno.test("microSocket() decodes a large frame arriving in small reads", () => {
  const value = "x".repeat(300_000);
  const frame = seedFrame("big:" + value);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < frame.length; i += 1000) {
    chunks.push(frame.subarray(i, i + 1000));
  }
  const d = decoder();
  const { messages, error } = feed(d, [...chunks, seedFrame("a:1")]);
  assert.equal(error, undefined);
  assert.deepEqual(messages, [msg({ big: value }), msg({ a: "1" })]);
  assert.equal(d.buffered, 0);
});

// Network: bytes written by a hand-rolled seed-style client.

Deno.test("microSocket() over listen(): hostile headers close only their session", async () => {
  const closes: PromiseWithResolvers<string>[] = [];
  let closeCount = 0;
  const nextClose = (i: number) => (closes[i] ??= Promise.withResolvers());
  const errors: unknown[] = [];
  await using server = testServer({
    codec: microSocket(),
    onMessage: (session, message) =>
      void session.send({ echo: message.action ?? "" }),
    onError: (error) => void errors.push(error),
    onClose: (_session, reason) => nextClose(closeCount++).resolve(reason),
  });
  const port = portOf(server.addr);
  using good = await dial(port);
  let i = 0;
  for (
    const [bytes, reason] of [
      [header(0xff, 0xff, 0xff, 0xff), "decode error"],
      [header(0x7f, 0xff, 0xff, 0xff), "frame too large"],
      [ascii("GET / HTTP/1.1\r\n"), "decode error"],
    ] as const
  ) {
    using bad = await dial(port);
    await bad.write(bytes);
    assert.equal((await readToEnd(bad)).length, 0, `${reason}: closed`);
    assert.equal(await nextClose(i++).promise, reason);
  }
  assert.equal(errors.length, 3);
  assert.ok(errors.every((e) => e instanceof DecodeError));

  // The server still answers a well-behaved seed client.
  await good.write(seedFrame("action:hi"));
  const echo = seedFrame("echo:hi");
  assert.deepEqual(await readBytes(good, echo.length), echo);
});

Deno.test("microSocket() over listen(): keepalive frames never reach onMessage", async () => {
  const got: MicroSocketMessage[] = [];
  const done = Promise.withResolvers<void>();
  await using server = testServer({
    codec: microSocket(),
    onMessage: (_session, message) => {
      got.push(message);
      if (message.last === "1") done.resolve();
    },
  });
  using conn = await dial(server);
  await conn.write(
    concat(header(0, 0, 0, 0), seedFrame("a:1"), header(0, 0, 0, 0)),
  );
  await conn.write(seedFrame("last:1"));
  await within(done.promise, 5000, "the last message");
  assert.deepEqual(got, [msg({ a: "1" }), msg({ last: "1" })]);
});

Deno.test("microSocket() end() reports a frame cut off by the end of input, and ends clean after whole frames", () => {
  const codec = microSocket();
  const frame = codec.encode({ action: "hello", name: "ada" });
  const bytes = concat(frame, frame);
  for (let stop = frame.length + 1; stop < bytes.length; stop++) {
    for (const [label, chunks] of cuts(bytes.subarray(0, stop), 1, 2)) {
      const decoder = codec.decoder();
      const { messages, error } = feed(decoder, chunks);
      assert.equal(error, undefined, label);
      assert.equal(messages.length, 1, label);
      assert.throws(
        () => decoder.end!(() => assert.fail("emitted at end")),
        TruncatedFrameError,
        `stop ${stop}, ${label}`,
      );
    }
  }
  const decoder = codec.decoder();
  decoder.decode(bytes, () => {});
  decoder.end!(() => assert.fail("emitted at end"));
});
