import assert from "node:assert/strict";
import {
  DecodeError,
  FrameTooLargeError,
  json,
  type JsonOptions,
  TruncatedFrameError,
} from "../../mod.ts";
import {
  assertDecodesAcrossCuts,
  assertFailsAcrossCuts,
  concat,
  cuts,
  feed,
} from "../_split.ts";
import { dial, testServer } from "../_server.ts";
import { readToEnd, utf8, within } from "../_util.ts";

function lengthFrame(payload: string | Uint8Array): Uint8Array {
  const body = typeof payload === "string" ? utf8(payload) : payload;
  const n = body.length;
  return concat(
    new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]),
    body,
  );
}

const values = [
  { type: "chat", text: "héllo 🙂" },
  [1, 2, { deep: [null, true] }],
  "a string with\nnewline",
  42,
  null,
];

const lineDecoder = (options: JsonOptions = {}) => () =>
  json(options).decoder();
const frameDecoder = (options: JsonOptions = {}) => () =>
  json({ ...options, framing: "length" }).decoder();

Deno.test("json() encodes one value per line by default", () => {
  const codec = json();
  assert.equal(codec.name, "json");
  assert.deepEqual(
    codec.encode({ type: "chat", text: "a\nb" }),
    utf8('{"type":"chat","text":"a\\nb"}\n'),
  );
});

Deno.test("json() decodes lines under every split and random chunking", () => {
  const codec = json();
  const bytes = concat(...values.map((v) => codec.encode(v)));
  assertDecodesAcrossCuts(lineDecoder(), bytes, values);
});

Deno.test("json() accepts CRLF and skips blank lines", () => {
  assertDecodesAcrossCuts(
    lineDecoder(),
    utf8('\n{"a":1}\r\n\r\n   \t\n[2]\n'),
    [{ a: 1 }, [2]],
  );
});

Deno.test("json() with length framing round-trips under every split", () => {
  const codec = json({ framing: "length" });
  const frame = codec.encode({ a: 1 });
  assert.deepEqual(frame, lengthFrame('{"a":1}'));
  const bytes = concat(...values.map((v) => codec.encode(v)));
  assertDecodesAcrossCuts(frameDecoder(), bytes, values);
});

Deno.test("json() with length framing skips empty frames", () => {
  assertDecodesAcrossCuts(
    frameDecoder(),
    concat(
      lengthFrame(""),
      lengthFrame("[1]"),
      lengthFrame(" "),
      lengthFrame(""),
    ),
    [[1]],
  );
});

Deno.test("json() closes on invalid JSON after delivering earlier values", () => {
  const error = assertFailsAcrossCuts(
    lineDecoder(),
    utf8('{"ok":1}\n{oops}\n{"never":1}\n'),
    DecodeError,
    [{ ok: 1 }],
  );
  assert.match(error.message, /^Invalid JSON in frame/);
  assert.ok(error.cause instanceof SyntaxError);

  assertFailsAcrossCuts(
    frameDecoder(),
    concat(lengthFrame('{"ok":1}'), lengthFrame("{oops}"), lengthFrame("1")),
    DecodeError,
    [{ ok: 1 }],
  );
});

Deno.test("json() rejects truncated values and trailing garbage", () => {
  for (const line of ['{"a":', "[1,2", "1 2", '"unterminated']) {
    assertFailsAcrossCuts(lineDecoder(), utf8(line + "\n"), DecodeError);
    assertFailsAcrossCuts(frameDecoder(), lengthFrame(line), DecodeError);
  }
});

Deno.test("json() rejects invalid UTF-8", () => {
  const bad = new Uint8Array([0x22, 0xff, 0x22]);
  assertFailsAcrossCuts(lineDecoder(), concat(bad, utf8("\n")), DecodeError);
  assertFailsAcrossCuts(frameDecoder(), lengthFrame(bad), DecodeError);
});

Deno.test("json() enforces maxFrameBytes for both framings", () => {
  const max = { maxFrameBytes: 8 };
  assertDecodesAcrossCuts(lineDecoder(max), utf8('"123456"\n'), ["123456"]);
  assertFailsAcrossCuts(
    lineDecoder(max),
    utf8('"1234567"\n'),
    FrameTooLargeError,
  );
  assertDecodesAcrossCuts(frameDecoder(max), lengthFrame('"123456"'), [
    "123456",
  ]);
  // The header alone is enough to refuse: no payload is ever buffered.
  const { error } = feed(frameDecoder(max)(), [
    new Uint8Array([0xff, 0xff, 0xff, 0xff]),
  ]);
  assert.ok(error instanceof FrameTooLargeError);
});

Deno.test("json() refuses values JSON cannot represent", () => {
  for (const framing of ["lines", "length"] as const) {
    const codec = json<unknown>({ framing });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const bad of [undefined, () => {}, Symbol("s"), 1n, cycle]) {
      assert.throws(() => codec.encode(bad), TypeError, `${framing}`);
    }
  }
});

Deno.test("json() validates its options", () => {
  assert.throws(
    () => json({ framing: "xml" as "lines" }),
    RangeError,
  );
  for (const bad of [0, -1, 1.5, NaN]) {
    assert.throws(() => json({ maxFrameBytes: bad }), RangeError);
  }
});

Deno.test("json() reports buffered bytes from its framing", () => {
  const d = json().decoder();
  feed(d, [utf8('{"a":')]);
  assert.equal(d.buffered, 5);
  const f = json({ framing: "length" }).decoder();
  feed(f, [lengthFrame('{"a":1}').subarray(0, 6)]);
  assert.equal(f.buffered, 6);
});

Deno.test("json() over listen(): invalid JSON closes that session with a decode error", async () => {
  const errors: [unknown, number | undefined][] = [];
  const closed = Promise.withResolvers<string>();
  const got: unknown[] = [];
  await using server = testServer({
    codec: json(),
    onMessage: (session, message) => {
      got.push(message);
      session.send({ echo: message });
    },
    onError: (error, session) => void errors.push([error, session?.id]),
    onClose: (_session, reason) => closed.resolve(reason),
  });
  using conn = await dial(server);
  await conn.write(utf8('{"n":1}\nnot json\n{"n":2}\n'));
  assert.equal(await within(closed.promise, 5000, "close"), "decode error");
  assert.deepEqual(got, [{ n: 1 }]);
  assert.equal(errors.length, 1);
  assert.ok(errors[0]![0] instanceof DecodeError);
  assert.equal(typeof errors[0]![1], "number");
  // The reply to the valid value was still delivered before the close.
  const text = new TextDecoder().decode(await readToEnd(conn));
  assert.equal(text, '{"echo":{"n":1}}\n');
});

Deno.test("json() delivers a last value without a line feed at the end of input, and calls a cut-off length frame truncated", () => {
  for (const [label, chunks] of cuts(utf8('{"a":1}\n{"b":2}'))) {
    const decoder = json().decoder();
    const { messages, error } = feed(decoder, chunks);
    assert.equal(error, undefined, label);
    decoder.end!((m) => messages.push(m));
    assert.deepEqual(messages, [{ a: 1 }, { b: 2 }], label);
  }
  const half = json().decoder();
  half.decode(utf8('{"b":'), () => {});
  assert.throws(() => half.end!(() => {}), DecodeError);
  const framed = json({ framing: "length" }).decoder();
  framed.decode(lengthFrame('{"a":1}').subarray(0, 6), () => {});
  assert.throws(() => framed.end!(() => {}), TruncatedFrameError);
});

Deno.test("json() correlation never touches the message's own fields", () => {
  const correlation = json().correlation!;
  const request = correlation.request({ type: "getUser", id: 17 }, 1);
  assert.deepEqual(request, { type: "getUser", id: 17, $id: 1 });
  const reply = correlation.reply(request, { type: "user", id: 17, re: "x" });
  assert.deepEqual(reply, { type: "user", id: 17, re: "x", $re: 1 });
  assert.equal(correlation.replyTo(reply), 1);
  // A user field named re is not a reply.
  assert.equal(correlation.replyTo({ type: "chat", re: 1 }), undefined);
});

Deno.test("json() correlation refuses a message that already has its reserved field, naming it", () => {
  const correlation = json().correlation!;
  assert.throws(
    () => correlation.request({ type: "x", $id: 5 }, 1),
    (e: unknown) => e instanceof TypeError && e.message.includes('"$id"'),
  );
  assert.throws(
    () => correlation.reply({ type: "x", $id: 1 }, { type: "y", $re: 3 }),
    (e: unknown) => e instanceof TypeError && e.message.includes('"$re"'),
  );
  assert.throws(
    () => correlation.reply({ type: "x", id: 1 }, { type: "y" }),
    (e: unknown) => e instanceof TypeError && e.message.includes('"$id"'),
  );
});
