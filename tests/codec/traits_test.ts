// Codec identity is a symbol, not a name: what the package decides on
// (the WebSocket mapping, the message limit) comes from the kind the
// built-in codecs carry, never from `name`, which is for messages only.
import assert from "node:assert/strict";
import {
  type Codec,
  type Decoder,
  json,
  lines,
  webSocketCodec,
} from "../../mod.ts";

const TEXT = 0x81; // FIN + text opcode
const BINARY = 0x82; // FIN + binary opcode

// A user codec of its own framing: each message is one byte.
function bytesNamed(name: string): Codec<string> {
  return {
    name,
    encode: (s) => new Uint8Array([s.charCodeAt(0)]),
    decoder(): Decoder<string> {
      return {
        buffered: 0,
        decode(chunk, emit) {
          for (const byte of chunk) emit(String.fromCharCode(byte));
        },
      };
    },
  };
}

Deno.test("a user codec named like a built-in one is framed as a user codec over WebSocket", () => {
  for (const name of ["lines", "json", "lengthPrefixed"]) {
    const codec = webSocketCodec(bytesNamed(name));
    const frame = codec.encode("a");
    // One binary message holding the codec's own frame, not the built-in's
    // text mapping.
    assert.deepEqual([...frame], [BINARY, 1, 0x61], name);
    assert.equal(codec.name, `webSocket(${name})`);
  }
});

Deno.test("a built-in codec keeps its identity under another name and through a spread", () => {
  const renamed = { ...lines(), name: "chat" };
  assert.equal(webSocketCodec(renamed).encode("hi")[0], TEXT);
  const routed: Codec<unknown> = {
    ...json(),
    routeKey: () => "all",
  };
  const frame = webSocketCodec(routed).encode({ a: 1 });
  assert.equal(frame[0], TEXT);
  assert.equal(new TextDecoder().decode(frame.subarray(2)), '{"a":1}');
});

Deno.test("a spread of a built-in codec that replaces its encoder is a user codec", () => {
  const base = lines();
  const shouting: Codec<string> = {
    ...base,
    encode: (line) => base.encode(line.toUpperCase()),
  };
  const frame = webSocketCodec(shouting).encode("hi");
  // Its own frame ("HI\n") in a binary message, as for any user codec.
  assert.deepEqual([...frame], [BINARY, 3, 0x48, 0x49, 0x0a]);
});

Deno.test("a user codec named like a built-in one is neither mapped nor limited like it over WebSocket", () => {
  // lines()' own limit is 64 KiB; a user codec named "lines" has none, so
  // only maxMessageBytes bounds its WebSocket messages.
  const codec = webSocketCodec(bytesNamed("lines"), {
    maxMessageBytes: 100_000,
  });
  const decoder = codec.decoder();
  const payload = new Uint8Array(70_000).fill(0x61);
  // A masked binary frame with a 64-bit length.
  const length = payload.length;
  const header = [
    BINARY,
    0x80 | 127,
    0,
    0,
    0,
    0,
    0,
    length >> 16,
    (length >> 8) & 255,
    length & 255,
  ];
  const mask = new Uint8Array(4); // a zero mask leaves the payload as it is
  let count = 0;
  decoder.decode(new Uint8Array([...header, ...mask]), () => count++);
  decoder.decode(payload, () => count++);
  assert.equal(count, 70_000);
});
