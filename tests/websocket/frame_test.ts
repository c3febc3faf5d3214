// The RFC 6455 frame parser and writer, in memory: the RFC's example frames,
// every framing rule with its close code, every split of representative
// streams, seeded random round trips and garbage fuzz, and a 4 MiB message.
import assert from "node:assert/strict";
import {
  FrameParser,
  type FrameParserOptions,
  isValidCloseCode,
  parseClosePayload,
  type WebSocketMessage,
} from "../../src/websocket/_frame_parser.ts";
import {
  closePayload,
  encodeCloseFrame,
  encodeFrame,
  encodeFrameInto,
  encodeHeaderInto,
  encodeTextFrameInto,
  headerSize,
  Opcode,
} from "../../src/websocket/_frame_writer.ts";
import {
  MessageTooBigError,
  WebSocketProtocolError,
} from "../../src/websocket/_errors.ts";
import { applyMask } from "../../src/websocket/_mask.ts";
import { DecodeError, FrameTooLargeError } from "../../src/errors.ts";
import { concat, cuts } from "../_split.ts";
import { randomChunks, seededRandom } from "../_util.ts";

const text = new TextEncoder();
const KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

type Event =
  | WebSocketMessage
  | ["ping" | "pong", number[]]
  | ["close", number, string];

interface Run {
  events: Event[];
  error: unknown;
  parser: FrameParser;
  maxBuffered: number;
}

/**
 * Feeds `chunks` to a fresh parser through a scratch buffer scribbled over
 * after each call (as a session reuses its read buffer), recording messages
 * and control events in order.
 */
function run(
  chunks: Iterable<Uint8Array>,
  options: FrameParserOptions = {},
): Run {
  const events: Event[] = [];
  const parser = new FrameParser({
    ...options,
    onPing: (p) => void events.push(["ping", [...p]]),
    onPong: (p) => void events.push(["pong", [...p]]),
    onClose: (code, reason) => void events.push(["close", code, reason]),
  });
  let scratch = new Uint8Array(64);
  let maxBuffered = 0;
  for (const chunk of chunks) {
    if (scratch.length < chunk.length) scratch = new Uint8Array(chunk.length);
    scratch.set(chunk);
    try {
      parser.decode(
        scratch.subarray(0, chunk.length),
        (m) => void events.push(m),
      );
    } catch (error) {
      return { events, error, parser, maxBuffered };
    } finally {
      scratch.fill(0xaa);
    }
    maxBuffered = Math.max(maxBuffered, parser.buffered);
  }
  return { events, error: undefined, parser, maxBuffered };
}

/** Asserts every cut of `bytes` yields `expected` and leaves nothing buffered. */
function assertParses(
  bytes: Uint8Array,
  expected: Event[],
  options: FrameParserOptions = {},
): void {
  for (const [label, chunks] of cuts(bytes)) {
    const { events, error, parser } = run(chunks, options);
    assert.equal(error, undefined, `${label}: unexpected ${error}`);
    assert.deepEqual(events, expected, label);
    assert.equal(parser.buffered, 0, `${label}: bytes left buffered`);
  }
}

/** Asserts every cut of `bytes` fails with `errorClass` and `closeCode`. */
function assertRejects(
  bytes: Uint8Array,
  closeCode: number,
  options: FrameParserOptions = {},
  before: Event[] = [],
): Error {
  let first: Error | undefined;
  for (const [label, chunks] of cuts(bytes)) {
    const { events, error } = run(chunks, options);
    const expected = closeCode === 1009
      ? MessageTooBigError
      : WebSocketProtocolError;
    assert.ok(
      error instanceof expected,
      `${label}: expected ${expected.name}, got ${error}`,
    );
    assert.equal(error.closeCode, closeCode, `${label}: ${error.message}`);
    assert.deepEqual(events, before, label);
    first ??= error;
  }
  return first!;
}

const bytes = (...values: number[]) => new Uint8Array(values);
/** A client frame (masked with KEY) from its parts. */
function masked(
  opcode: number,
  payload: Uint8Array | string,
  fin = true,
): Uint8Array {
  return encodeFrame(opcode as Opcode, payload, fin, KEY);
}
function plain(
  opcode: number,
  payload: Uint8Array | string,
  fin = true,
): Uint8Array {
  return encodeFrame(opcode as Opcode, payload, fin, false);
}
const server = { role: "server" } as const;
const client = { role: "client" } as const;

// --- RFC 6455 section 5.7 examples ---------------------------------------

Deno.test("FrameParser reads the examples of RFC 6455 section 5.7 at every split", () => {
  const hello = [0x48, 0x65, 0x6c, 0x6c, 0x6f];
  // A single-frame unmasked text message.
  assertParses(bytes(0x81, 0x05, ...hello), ["Hello"], client);
  // A single-frame masked text message.
  assertParses(
    bytes(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
    ["Hello"],
    server,
  );
  // A fragmented unmasked text message.
  assertParses(
    bytes(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f),
    ["Hello"],
    client,
  );
  // Unmasked ping, masked pong.
  assertParses(bytes(0x89, 0x05, ...hello), [["ping", hello]], client);
  assertParses(
    bytes(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
    [["pong", hello]],
    server,
  );
  // 256 bytes and 64 KiB of binary data in a single unmasked frame.
  const b256 = new Uint8Array(256).map((_, i) => i);
  assertParses(concat(bytes(0x82, 0x7e, 0x01, 0x00), b256), [b256], client);
  const b64k = new Uint8Array(65536).map((_, i) => i * 7);
  const frame64k = concat(bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0), b64k);
  for (const chunks of [[frame64k], randomChunks(frame64k, 5000)]) {
    const { events, error } = run(chunks, client);
    assert.equal(error, undefined);
    assert.deepEqual(events, [b64k]);
  }
});

Deno.test("FrameParser reads a representative session at every split", () => {
  // Fragmented binary with a ping in the middle, a text whose 2-byte
  // character straddles two fragments, empty messages, a pong, a close,
  // and junk after the close (ignored).
  const stream = concat(
    masked(Opcode.binary, bytes(1, 2, 3), false),
    masked(Opcode.ping, "hi"),
    masked(Opcode.continuation, bytes(4), false),
    masked(Opcode.continuation, bytes(), true),
    masked(Opcode.text, bytes(0x61, 0xc3), false),
    masked(Opcode.continuation, bytes(0xa9, 0x62), true),
    masked(Opcode.text, ""),
    masked(Opcode.binary, bytes()),
    masked(Opcode.pong, bytes()),
    masked(Opcode.text, "\ufeffbom kept"),
    encodeCloseFrame(4000, "bye ✓", KEY),
    bytes(0xff, 0xff, 0xff),
  );
  assertParses(stream, [
    ["ping", [0x68, 0x69]],
    bytes(1, 2, 3, 4),
    "aéb",
    "",
    bytes(),
    ["pong", []],
    "\ufeffbom kept",
    ["close", 4000, "bye ✓"],
  ], server);
});

Deno.test("FrameParser emits binary messages that do not alias the chunk", () => {
  const chunk = plain(Opcode.binary, bytes(9, 8, 7));
  const got: WebSocketMessage[] = [];
  new FrameParser(client).decode(chunk, (m) => got.push(m));
  chunk.fill(0);
  assert.deepEqual(got, [bytes(9, 8, 7)]);
});

// --- Framing rules and their close codes ----------------------------------

Deno.test("FrameParser rejects reserved bits and unknown opcodes with 1002", () => {
  for (const rsv of [0x40, 0x20, 0x10]) {
    assertRejects(bytes(0x81 | rsv, 0x00), 1002, client);
  }
  for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    assertRejects(bytes(0x80 | opcode, 0x00), 1002, client);
  }
});

Deno.test("FrameParser enforces masking by role with 1002", () => {
  const error = assertRejects(plain(Opcode.text, "hi"), 1002, server);
  assert.match(error.message, /Unmasked frame from a client/);
  const error2 = assertRejects(masked(Opcode.text, "hi"), 1002, client);
  assert.match(error2.message, /Masked frame from a server/);
  // Control frames too.
  assertRejects(plain(Opcode.ping, ""), 1002, server);
});

Deno.test("FrameParser rejects bad control frames with 1002", () => {
  // Fragmented (FIN clear) ping, 126-byte ping, 126-length close.
  assertRejects(bytes(0x09, 0x00), 1002, client);
  assertRejects(bytes(0x89, 0x7e, 0x00, 0x7e), 1002, client);
  assertRejects(bytes(0x88, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x7e), 1002, client);
  // A 125-byte ping is fine.
  const p = new Uint8Array(125).fill(7);
  assertParses(plain(Opcode.ping, p), [["ping", [...p]]], client);
});

Deno.test("FrameParser rejects bad fragmentation with 1002", () => {
  // Continuation without a start.
  assertRejects(plain(Opcode.continuation, "x"), 1002, client);
  // A new data frame while a fragmented message is open.
  assertRejects(
    concat(plain(Opcode.text, "a", false), plain(Opcode.binary, "b")),
    1002,
    client,
  );
  assertRejects(
    concat(plain(Opcode.text, "a", false), plain(Opcode.text, "b")),
    1002,
    client,
  );
  // A ping between fragments is fine (see the session test above).
});

Deno.test("FrameParser checks close payloads", () => {
  assertParses(plain(Opcode.close, bytes()), [["close", 1005, ""]], client);
  assertParses(plain(Opcode.close, bytes(0x03, 0xe8)), [
    ["close", 1000, ""],
  ], client);
  assertRejects(plain(Opcode.close, bytes(0x03)), 1002, client);
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
    assert.ok(!isValidCloseCode(code), `${code}`);
    assertRejects(
      plain(Opcode.close, bytes(code >> 8, code & 0xff)),
      1002,
      client,
    );
  }
  for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999]) {
    assert.ok(isValidCloseCode(code), `${code}`);
    assert.deepEqual(parseClosePayload(bytes(code >> 8, code & 0xff, 0x41)), [
      code,
      "A",
    ]);
  }
  assertRejects(plain(Opcode.close, bytes(0x03, 0xe8, 0xff)), 1007, client);
});

Deno.test("FrameParser ignores every byte after a close frame", () => {
  const { events, parser, error } = run([
    concat(plain(Opcode.close, bytes(0x03, 0xe8)), plain(Opcode.text, "x")),
    bytes(0xff, 0xff), // not even a valid frame
  ], client);
  assert.equal(error, undefined);
  assert.deepEqual(events, [["close", 1000, ""]]);
  assert.ok(parser.closed);
  assert.equal(parser.buffered, 0);
});

Deno.test("FrameParser validates UTF-8 with 1007, across fragments and fast", () => {
  // Invalid in a single frame.
  assertRejects(plain(Opcode.text, bytes(0x61, 0xff)), 1007, client);
  // A truncated sequence at the end of the message.
  assertRejects(plain(Opcode.text, bytes(0x61, 0xc3)), 1007, client);
  assertRejects(
    concat(
      plain(Opcode.text, "a", false),
      plain(Opcode.continuation, bytes(0xe2, 0x82)),
    ),
    1007,
    client,
  );
  // A sequence broken across two fragments.
  assertRejects(
    concat(
      plain(Opcode.text, bytes(0xc3), false),
      plain(Opcode.continuation, bytes(0x41)),
    ),
    1007,
    client,
  );
  // Surrogates and overlong forms are invalid UTF-8.
  assertRejects(plain(Opcode.text, bytes(0xed, 0xa0, 0x80)), 1007, client);
  assertRejects(plain(Opcode.text, bytes(0xc0, 0xaf)), 1007, client);
  // Fail fast: the bad byte of an unfinished message throws at once.
  const { error } = run(
    [plain(Opcode.text, bytes(0x61, 0xff, 0x62), false)],
    client,
  );
  assert.ok(error instanceof WebSocketProtocolError);
  assert.equal(error.closeCode, 1007);
  // U+FFFD sent on purpose is valid text (decoding is checked twice then).
  assertParses(plain(Opcode.text, "a\ufffdb"), ["a\ufffdb"], client);
  assertParses(
    plain(Opcode.close, concat(bytes(0x03, 0xe8), text.encode("\ufffd"))),
    [["close", 1000, "\ufffd"]],
    client,
  );
  assertRejects(
    plain(Opcode.text, concat(text.encode("\ufffd"), bytes(0x80))),
    1007,
    client,
  );
  // A 4-byte character split over three fragments is valid.
  assertParses(
    concat(
      plain(Opcode.text, bytes(0xf0, 0x9f), false),
      plain(Opcode.continuation, bytes(0x98), false),
      plain(Opcode.continuation, bytes(0x80)),
    ),
    ["😀"],
    client,
  );
});

Deno.test("FrameParser checks maxMessageBytes on headers, before allocating (1009)", () => {
  const limit = { role: "client", maxMessageBytes: 1000 } as const;
  assertParses(plain(Opcode.binary, new Uint8Array(1000)), [
    new Uint8Array(1000),
  ], limit);
  // One byte over in one frame: rejected on the header alone.
  assertRejects(bytes(0x82, 0x7e, 0x03, 0xe9), 1009, limit);
  // The sum of fragments counts.
  const error = assertRejects(
    concat(
      plain(Opcode.binary, new Uint8Array(600), false),
      bytes(0x00, 0x7e, 0x01, 0xf4), // a continuation announcing 500 more
    ),
    1009,
    limit,
  );
  assert.ok(error instanceof FrameTooLargeError);
  assert.ok(error instanceof DecodeError);
  assert.equal((error as MessageTooBigError).size, 1100);
  assert.equal((error as MessageTooBigError).limit, 1000);
  // 64-bit lengths: 2^40, 2^53 and above; a set top bit is a protocol error.
  assertRejects(bytes(0x82, 0x7f, 0, 0, 1, 0, 0, 0, 0, 0), 1009, client);
  assertRejects(bytes(0x82, 0x7f, 0, 0x20, 0, 0, 0, 0, 0, 0), 1009, client);
  assertRejects(
    bytes(0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    1009,
    client,
  );
  assertRejects(bytes(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0), 1002, client);
  // Control frames are not counted against the message.
  assertParses(
    concat(
      plain(Opcode.binary, new Uint8Array(900), false),
      plain(Opcode.ping, new Uint8Array(125)),
      plain(Opcode.continuation, new Uint8Array(100)),
    ),
    [["ping", new Array(125).fill(0)], new Uint8Array(1000)],
    limit,
  );
  assert.throws(() => new FrameParser({ maxMessageBytes: -1 }), RangeError);
  assert.throws(
    () => new FrameParser({ maxMessageBytes: 2 ** 53 }),
    RangeError,
  );
});

Deno.test("FrameParser stores what arrived, not what a header announced", () => {
  // 200 parsers each told 4 MiB is coming, then given 10 bytes: storage must
  // track the 10 bytes (plus a small first allocation), not the 4 MiB.
  const before = Deno.memoryUsage().external;
  const parsers: FrameParser[] = [];
  const header = bytes(0x82, 0x7f, 0, 0, 0, 0, 0, 0x40, 0, 0);
  for (let i = 0; i < 200; i++) {
    const parser = new FrameParser({
      role: "client",
      maxMessageBytes: 8 << 20,
    });
    parser.decode(concat(header, new Uint8Array(10)), () => {});
    assert.equal(parser.buffered, 10 + 10);
    parsers.push(parser);
  }
  const grown = Deno.memoryUsage().external - before;
  assert.ok(grown < 50 << 20, `external memory grew by ${grown} bytes`);
});

Deno.test("FrameParser keeps throwing the same error after a violation", () => {
  const parser = new FrameParser(client);
  let first: unknown;
  try {
    parser.decode(bytes(0xc1, 0x00), () => {});
  } catch (error) {
    first = error;
  }
  assert.ok(first instanceof WebSocketProtocolError);
  assert.throws(
    () => parser.decode(plain(Opcode.text, "ok"), () => {}),
    (e) => e === first,
  );
  assert.equal(parser.buffered, 0);
});

Deno.test("FrameParser reassembles a 4 MiB message from several frames", () => {
  const size = 4 << 20;
  const payload = new Uint8Array(size);
  const random = seededRandom(7);
  for (let i = 0; i < size; i += 4) payload[i] = random() * 256;
  // Five masked fragments of uneven sizes, fed in 64 KiB reads.
  const cutsAt = [0, 1, 70000, 1 << 20, 3 << 20, size];
  const frames: Uint8Array[] = [];
  for (let i = 0; i + 1 < cutsAt.length; i++) {
    frames.push(
      encodeFrame(
        i === 0 ? Opcode.binary : Opcode.continuation,
        payload.subarray(cutsAt[i], cutsAt[i + 1]),
        i + 2 === cutsAt.length,
        true,
      ),
    );
  }
  const stream = concat(...frames);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < stream.length; i += 65536) {
    chunks.push(stream.subarray(i, i + 65536));
  }
  const started = performance.now();
  const { events, error, maxBuffered } = run(chunks, {
    role: "server",
    maxMessageBytes: size,
  });
  const ms = performance.now() - started;
  assert.equal(error, undefined);
  assert.equal(events.length, 1);
  assert.ok(events[0] instanceof Uint8Array);
  assert.equal(events[0].length, size);
  assert.ok(events[0].every((b, i) => b === payload[i]));
  assert.ok(maxBuffered <= size + 14);
  console.log(`4 MiB in 5 masked frames, 64 KiB reads: ${ms.toFixed(1)} ms`);

  // The same as text, with 3-byte characters straddling every fragment.
  const string = "€".repeat(size / 3);
  const utf8 = text.encode(string);
  const textFrames = [0, 1, 2, 100001, 2000000, utf8.length].flatMap((
    at,
    i,
    all,
  ) =>
    i + 1 < all.length
      ? [encodeFrame(
        i === 0 ? Opcode.text : Opcode.continuation,
        utf8.subarray(at, all[i + 1]),
        i + 2 === all.length,
        true,
      )]
      : []
  );
  const textRun = run(
    randomChunks(concat(...textFrames), 100000, seededRandom(3)),
    {
      role: "server",
      maxMessageBytes: size,
    },
  );
  assert.equal(textRun.error, undefined);
  assert.equal(textRun.events.length, 1);
  assert.ok(textRun.events[0] === string);
});

// --- Random round trips and fuzz ----------------------------------------

/** Random messages, fragmented at random, with random pings between frames. */
function randomSession(random: () => number, mask: boolean) {
  const expected: Event[] = [];
  const frames: Uint8Array[] = [];
  const alphabet = ["a", "é", "€", "😀", " ", "\n"];
  for (let m = 0; m < 30; m++) {
    const isText = random() < 0.5;
    const length = Math.floor(random() ** 3 * 70000);
    let payload: Uint8Array;
    if (isText) {
      let s = "";
      while (s.length < length / 2) s += alphabet[Math.floor(random() * 6)];
      expected.push(s);
      payload = text.encode(s);
    } else {
      payload = new Uint8Array(length).map(() => random() * 256);
      expected.push(payload);
    }
    const pieces = 1 + Math.floor(random() * 4);
    let at = 0;
    for (let p = 0; p < pieces; p++) {
      const end = p + 1 === pieces
        ? payload.length
        : at + Math.floor(random() * (payload.length - at));
      frames.push(
        encodeFrame(
          p === 0
            ? (isText ? Opcode.text : Opcode.binary)
            : Opcode.continuation,
          payload.subarray(at, end),
          p + 1 === pieces,
          mask,
        ),
      );
      at = end;
      if (random() < 0.2) {
        const ping = new Uint8Array(Math.floor(random() * 126)).fill(m);
        frames.push(encodeFrame(Opcode.ping, ping, true, mask));
        // Before the message unless it came after the message's last frame.
        if (p + 1 === pieces) expected.push(["ping", [...ping]]);
        else expected.splice(expected.length - 1, 0, ["ping", [...ping]]);
      }
    }
  }
  return { bytes: concat(...frames), expected };
}

Deno.test("FrameParser round-trips seeded random sessions in random chunks", () => {
  for (let seed = 1; seed <= 6; seed++) {
    const random = seededRandom(seed);
    const mask = seed % 2 === 1;
    const { bytes, expected } = randomSession(random, mask);
    for (const max of [1, 7, 1000, 70000]) {
      // One-byte chunks only for one seed: a session is ~500 KB.
      if (max === 1 && seed > 1) continue;
      const { events, error, parser } = run(
        randomChunks(bytes, max, random),
        { role: mask ? "server" : "client" },
      );
      assert.equal(error, undefined, `seed ${seed} max ${max}: ${error}`);
      assert.deepEqual(events, expected, `seed ${seed} max ${max}`);
      assert.equal(parser.buffered, 0);
    }
  }
});

Deno.test("FrameParser survives garbage: only typed errors, bounded buffering", () => {
  const limit = 4096;
  for (let seed = 1; seed <= 300; seed++) {
    const random = seededRandom(seed);
    let input: Uint8Array;
    if (seed % 2 === 0) {
      input = new Uint8Array(2000).map(() => random() * 256);
    } else {
      // A valid session with a few bytes flipped: deeper into the parser.
      input = randomSession(random, seed % 4 === 1).bytes.slice(0, 20000);
      for (let i = 0; i < 5; i++) {
        input[Math.floor(random() * input.length)] = random() * 256;
      }
    }
    for (const role of ["server", "client"] as const) {
      const { error, maxBuffered } = run(randomChunks(input, 64, random), {
        role,
        maxMessageBytes: limit,
      });
      assert.ok(
        error === undefined || error instanceof WebSocketProtocolError ||
          error instanceof MessageTooBigError,
        `seed ${seed} ${role}: ${error}`,
      );
      assert.ok(
        maxBuffered <= limit + 14 + 125,
        `seed ${seed}: ${maxBuffered}`,
      );
    }
  }
});

// --- Writer -------------------------------------------------------------

Deno.test("encodeHeaderInto uses 7, 16 and 64-bit lengths at the boundaries", () => {
  const target = new Uint8Array(14);
  const cases: [number, number[]][] = [
    [0, [0x82, 0]],
    [125, [0x82, 125]],
    [126, [0x82, 126, 0, 126]],
    [65535, [0x82, 126, 0xff, 0xff]],
    [65536, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]],
    [2 ** 32 + 5, [0x82, 127, 0, 0, 0, 1, 0, 0, 0, 5]],
    [2 ** 53 - 1, [0x82, 127, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
  ];
  for (const [length, header] of cases) {
    const end = encodeHeaderInto(target, 0, Opcode.binary, length, true, false);
    assert.equal(end, header.length);
    assert.equal(headerSize(length, false), header.length);
    assert.deepEqual([...target.subarray(0, end)], header, `${length}`);
  }
  // With a mask: the bit is set and 4 key bytes follow.
  const end = encodeHeaderInto(target, 0, Opcode.text, 200, false, KEY);
  assert.deepEqual([...target.subarray(0, end)], [0x01, 0xfe, 0, 200, ...KEY]);
  // Parsed back, 64-bit headers announce what was written.
  const parser = new FrameParser({ role: "client", maxMessageBytes: 10 });
  assert.throws(
    () => parser.decode(bytes(0x82, 127, 0, 0, 0, 1, 0, 0, 0, 5), () => {}),
    (e) => e instanceof MessageTooBigError && e.size === 2 ** 32 + 5,
  );
});

Deno.test("encodeHeaderInto and encodeFrameInto refuse misuse and report no room", () => {
  const t = new Uint8Array(8);
  assert.throws(
    () => encodeHeaderInto(t, 0, Opcode.ping, 126, true, false),
    RangeError,
  );
  assert.throws(
    () => encodeHeaderInto(t, 0, Opcode.close, 1, false, false),
    RangeError,
  );
  assert.throws(
    () => encodeHeaderInto(t, 0, Opcode.text, -1, true, false),
    RangeError,
  );
  assert.throws(
    () => encodeHeaderInto(t, 0, Opcode.text, 1.5, true, false),
    RangeError,
  );
  assert.throws(
    () => encodeHeaderInto(t, 0, Opcode.text, 1, true, bytes(1)),
    RangeError,
  );
  assert.equal(encodeHeaderInto(t, 7, Opcode.text, 1, true, false), -1);
  assert.equal(
    encodeFrameInto(t, 0, Opcode.binary, new Uint8Array(7), true, false),
    -1,
  );
  assert.equal(
    encodeFrameInto(t, 0, Opcode.binary, new Uint8Array(6), true, false),
    8,
  );
  assert.equal(
    encodeFrameInto(t, 0, Opcode.binary, new Uint8Array(3), true, true),
    -1,
  );
});

Deno.test("client frames get fresh random masks and parse on the server side", () => {
  const a = encodeFrame(Opcode.binary, new Uint8Array(100), true, true);
  const b = encodeFrame(Opcode.binary, new Uint8Array(100), true, true);
  assert.equal(a[1]! & 0x80, 0x80);
  assert.notDeepEqual(a.subarray(2, 6), b.subarray(2, 6));
  assertParses(
    concat(a, b),
    [new Uint8Array(100), new Uint8Array(100)],
    server,
  );
});

Deno.test("encodeTextFrameInto writes text frames in place at every header size", () => {
  const target = new Uint8Array(300000);
  for (
    const s of [
      "",
      "a",
      "é".repeat(62),
      "é".repeat(63),
      "€".repeat(42),
      "x".repeat(126),
      "😀".repeat(20000),
      "z".repeat(70000),
    ]
  ) {
    for (const mask of [false, KEY]) {
      const end = encodeTextFrameInto(target, 3, s, true, mask);
      assert.deepEqual(
        target.slice(3, end),
        encodeFrame(Opcode.text, s, true, mask),
        `${s.length}`,
      );
    }
  }
  // Fragments, and no room.
  let at = encodeTextFrameInto(target, 0, "ab", false, false);
  at = encodeTextFrameInto(target, at, "c", true, false, Opcode.continuation);
  assertParses(target.slice(0, at), ["abc"], client);
  assert.equal(
    encodeTextFrameInto(new Uint8Array(4), 0, "abc", true, false),
    -1,
  );
  assert.equal(encodeTextFrameInto(new Uint8Array(4), 0, "ab", true, false), 4);
  assert.equal(encodeTextFrameInto(new Uint8Array(1), 0, "", true, false), -1);
});

Deno.test("closePayload cuts long reasons at a UTF-8 boundary within 125 bytes", () => {
  const payload = closePayload(1000, "😀".repeat(40)); // 160 bytes of reason
  assert.equal(payload.length, 2 + 120);
  assert.deepEqual(parseClosePayload(payload), [1000, "😀".repeat(30)]);
  assert.equal(closePayload(4000, "x".repeat(500)).length, 125);
  assert.equal(closePayload(undefined, "ignored").length, 0);
  for (const code of [1005, 1006, 999, 5000, 1004]) {
    assert.throws(() => closePayload(code), RangeError);
  }
  // A maximal close frame parses.
  assertParses(encodeCloseFrame(3001, "é".repeat(80), KEY), [[
    "close",
    3001,
    "é".repeat(61),
  ]], server);
});

Deno.test("applyMask matches a byte loop at every alignment, phase and length", () => {
  const random = seededRandom(11);
  const key = bytes(0x12, 0x34, 0x56, 0x78);
  const buffer = new Uint8Array(300).map(() => random() * 256);
  for (let offset = 0; offset < 4; offset++) {
    for (const length of [0, 1, 3, 31, 32, 33, 100, 257]) {
      for (let phase = 0; phase < 4; phase++) {
        const a = buffer.slice(0, offset + length).subarray(offset);
        const expected = a.map((b, i) => b ^ key[(phase + i) & 3]!);
        applyMask(a, key, 0, phase);
        assert.deepEqual(a, expected, `${offset}/${length}/${phase}`);
      }
    }
  }
});
