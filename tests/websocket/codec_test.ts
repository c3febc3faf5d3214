// webSocketCodec() without sockets: each built-in codec's mapping survives
// every split of the byte stream, encodeInto writes what encode does, pings
// are answered through the link (at most maxPingsPerSecond), and the close
// frame follows the reason, the error or the peer's own close.
import assert from "node:assert/strict";
import {
  type Codec,
  type DecoderLink,
  json,
  lengthPrefixed,
  lines,
  microSocket,
  webSocketCodec,
} from "../../mod.ts";
import { encodeFrame, Opcode } from "../../src/websocket/_frame_writer.ts";
import { parseClosePayload } from "../../src/websocket/_frame_parser.ts";
import { assertDecodesAcrossCuts, concat, feed } from "../_split.ts";

const KEY = new Uint8Array([0x12, 0x34, 0x56, 0x78]);
const text = (s: string) => encodeFrame(Opcode.text, s, true, KEY);
const binary = (b: Uint8Array) => encodeFrame(Opcode.binary, b, true, KEY);

function link() {
  const sent: Uint8Array[] = [];
  const closes: (string | undefined)[] = [];
  const l: DecoderLink = {
    sendFrame: (frame) => {
      sent.push(frame);
      return true;
    },
    close: (reason) => {
      closes.push(reason);
      return Promise.resolve();
    },
  };
  return { link: l, sent, closes };
}

Deno.test("webSocketCodec: every built-in mapping decodes across every cut", () => {
  assertDecodesAcrossCuts(
    () => webSocketCodec(lines()).decoder(),
    concat(text("héllo"), text("a\nb"), text("")),
    ["héllo", "a", "b", ""],
  );
  assertDecodesAcrossCuts(
    () => webSocketCodec(json()).decoder(),
    concat(text('{"type":"x","n":1}'), text("[1,2]")),
    [{ type: "x", n: 1 }, [1, 2]],
  );
  assertDecodesAcrossCuts(
    () => webSocketCodec(lengthPrefixed()).decoder(),
    concat(binary(new Uint8Array([1, 2, 3])), binary(new Uint8Array(0))),
    [new Uint8Array([1, 2, 3]), new Uint8Array(0)],
  );
  const ms = microSocket();
  const frame = ms.encode({ module: "m", method: "M", x: "1" });
  const decoded = feed(webSocketCodec(ms).decoder(), [binary(frame)]).messages;
  assert.deepEqual(decoded.map((m) => ({ ...m })), [{
    module: "m",
    method: "M",
    x: "1",
  }]);
});

Deno.test("webSocketCodec: encodeInto writes the same bytes as encode, unmasked for a server", () => {
  const cases: [
    unknown,
    ReturnType<typeof webSocketCodec<unknown, unknown>>,
  ][] = [
    ["line ✓", webSocketCodec(lines()) as never],
    [{ type: "t" }, webSocketCodec(json()) as never],
    [new Uint8Array(300).fill(7), webSocketCodec(lengthPrefixed()) as never],
    [{ module: "a", method: "b" }, webSocketCodec(microSocket()) as never],
  ];
  for (const [message, codec] of cases) {
    const frame = codec.encode(message);
    assert.equal(frame[1]! & 0x80, 0, "server frames are not masked");
    // microSocket() has no encodeInto: its adapter has none either.
    if (codec.name === "webSocket(microSocket)") {
      assert.equal(codec.encodeInto, undefined);
      continue;
    }
    const target = new Uint8Array(1024);
    const end = codec.encodeInto!(message, target, 5);
    assert.deepEqual(target.subarray(5, end), frame, codec.name);
    assert.equal(codec.encodeInto!(message, new Uint8Array(3), 0), -1);
  }
  assert.throws(() => webSocketCodec(lines()).encode("a\nb"), TypeError);
});

Deno.test("webSocketCodec: a client masks its frames", () => {
  const codec = webSocketCodec(lines(), { role: "client" });
  const frame = codec.encode("hi");
  assert.equal(frame[1]! & 0x80, 0x80);
  const target = new Uint8Array(64);
  const end = codec.encodeInto!("hi", target, 0);
  assert.equal(end, 8);
  assert.equal(target[1]! & 0x80, 0x80);
});

Deno.test("webSocketCodec: pings are answered through the link, a flood throws 1008", () => {
  const { link: l, sent } = link();
  const decoder = webSocketCodec(lines(), { maxPingsPerSecond: 3 }).decoder(l);
  const ping = encodeFrame(Opcode.ping, "p", true, KEY);
  decoder.decode(ping.slice(), () => {});
  assert.deepEqual(sent, [encodeFrame(Opcode.pong, "p")]);
  decoder.decode(concat(ping, ping), () => {});
  assert.equal(sent.length, 3);
  assert.throws(
    () => decoder.decode(ping.slice(), () => {}),
    (error: { closeCode?: number }) => error.closeCode === 1008,
  );
});

Deno.test("webSocketCodec: close frames follow the reason, the error, or echo the peer's", () => {
  const codec = webSocketCodec(lines());
  const code = (frame: Uint8Array | undefined) =>
    parseClosePayload(frame!.subarray(2))[0];
  assert.equal(
    code(codec.decoder().closeFrame!("server shutdown", undefined)),
    1001,
  );
  assert.equal(code(codec.decoder().closeFrame!("closed", undefined)), 1000);
  assert.equal(
    code(codec.decoder().closeFrame!("decode error", { closeCode: 1002 })),
    1002,
  );
  assert.equal(
    code(codec.decoder().closeFrame!("frame too large", undefined)),
    1009,
  );
  assert.equal(codec.decoder().closeFrame!("reset", undefined), undefined);
  // Only once.
  const once = codec.decoder();
  assert.ok(once.closeFrame!("closed", undefined) !== undefined);
  assert.equal(once.closeFrame!("closed", undefined), undefined);
  // The peer's close is echoed, code and reason, and ends the connection.
  const { link: l, closes } = link();
  const decoder = codec.decoder(l);
  const peer = encodeFrame(
    Opcode.close,
    new Uint8Array([0x0f, 0xa0, 0x62, 0x79, 0x65]), // 4000 "bye"
    true,
    KEY,
  );
  decoder.decode(peer, () => {});
  assert.deepEqual(closes, ["eof"]);
  const echo = decoder.closeFrame!("eof", undefined)!;
  assert.deepEqual(parseClosePayload(echo.subarray(2)), [4000, "bye"]);
});

Deno.test("webSocketCodec: a binary message for lines() or a text one for lengthPrefixed() throws 1003", () => {
  for (
    const [codec, frame] of [
      [webSocketCodec(lines()), binary(new Uint8Array([0x61]))],
      [webSocketCodec(lengthPrefixed()), text("a")],
    ] as const
  ) {
    // deno-lint-ignore no-explicit-any
    const { error } = feed(codec.decoder() as any, [frame]);
    assert.equal((error as { closeCode?: number }).closeCode, 1003);
  }
});

Deno.test("webSocketCodec: a custom codec's encodeInto is wrapped in a binary frame of the right header size", () => {
  const raw: Codec<Uint8Array> = {
    name: "raw",
    encode: (bytes) => bytes.slice(),
    encodeInto(bytes, target, offset) {
      if (offset + bytes.length > target.length) return -1;
      target.set(bytes, offset);
      return offset + bytes.length;
    },
    decoder: () => ({
      buffered: 0,
      decode: (chunk, emit) => emit(chunk.slice()),
    }),
  };
  const codec = webSocketCodec(raw);
  for (const size of [0, 5, 125, 126, 300, 70000]) {
    const payload = new Uint8Array(size).map((_, i) => i & 0xff);
    const frame = codec.encode(payload);
    const target = new Uint8Array(size + 64);
    const end = codec.encodeInto!(payload, target, 3);
    assert.deepEqual(target.subarray(3, end), frame, `size ${size}`);
    const decoded = feed(codec.decoder(), [
      encodeFrame(Opcode.binary, payload, true, KEY),
    ]);
    assert.deepEqual(decoded.messages, [payload]);
  }
});
