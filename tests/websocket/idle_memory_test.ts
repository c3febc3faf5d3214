// Issue 19 §4: what a quiet WebSocket session holds in its codec's decoder
// and its upgrade request. A device gateway holds a million of them, so the
// decoder shares its settings and parser config with every session of the
// adapter, makes its parser's buffers only when a frame needs them, and
// holds no closures; the request keeps the head's text until its headers
// are read.
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  type DecoderLink,
  json,
  lines,
  listen,
  webSocketCodec,
  webSocketRequest,
} from "../../mod.ts";
import { encodeFrame, Opcode } from "../../src/websocket/_frame_writer.ts";
import { dial } from "../_server.ts";
import { until, within, writeAll } from "../_util.ts";

// A forced, full GC without --expose-gc on the command line.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapUsed(): number {
  for (let i = 0; i < 3; i++) gc();
  return Deno.memoryUsage().heapUsed;
}

function link(): DecoderLink {
  const owner = {};
  return {
    owner,
    sendFrame: () => true,
    close: () => Promise.resolve(),
  };
}

Deno.test("a quiet WebSocket session's decoder holds under 500 bytes of heap (no closures, no buffers, shared settings)", () => {
  // On ca3aca0 it held ~1.3 KB: a settings object, six closures and their
  // contexts, the parser's scratch buffer and three views of it.
  const codec = webSocketCodec(lines());
  const count = 2000;
  const links = Array.from({ length: count }, link);
  const held: unknown[] = [];
  const before = heapUsed();
  for (const l of links) held.push(codec.decoder(l));
  const perDecoder = (heapUsed() - before) / count;
  assert.equal(held.length, count);
  assert.ok(perDecoder < 500, `${perDecoder.toFixed(0)} bytes per decoder`);
});

Deno.test("a decoder still answers pings, decodes split frames and control frames, and maps messages after the change", () => {
  const codec = webSocketCodec(json());
  const sent: Uint8Array[] = [];
  const got: unknown[] = [];
  const bytes = new Uint8Array([
    ...encodeFrame(Opcode.text, '{"a":1}', true, true),
    ...encodeFrame(Opcode.ping, "hi", true, true),
    ...encodeFrame(Opcode.text, '{"b":2}', true, true),
  ]);
  // Every split: headers, keys and the ping's payload across two chunks.
  for (let cut = 0; cut <= bytes.length; cut++) {
    got.length = 0;
    sent.length = 0;
    const d = codec.decoder({
      owner: {},
      sendFrame: (frame) => sent.push(frame) > 0,
      close: () => Promise.resolve(),
    });
    const copy = bytes.slice();
    d.decode(copy.subarray(0, cut), (m) => void got.push(m));
    d.decode(copy.subarray(cut), (m) => void got.push(m));
    assert.deepEqual(got, [{ a: 1 }, { b: 2 }], `cut at ${cut}`);
    assert.deepEqual(sent, [encodeFrame(Opcode.pong, "hi")], `cut at ${cut}`);
    assert.equal(d.buffered, 0);
  }
});

Deno.test("webSocketRequest(): headers read from the kept head, the same map on every read", async () => {
  const seen: Array<ReturnType<typeof webSocketRequest>> = [];
  await using server = listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    onOpen: (session) => {
      seen.push(webSocketRequest(session));
      seen.push(webSocketRequest(session));
    },
  });
  const conn = await dial(server.addr.port);
  try {
    await writeAll(
      conn,
      new TextEncoder().encode(
        "GET /ws/room?name=den HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          "Sec-WebSocket-Version: 13\r\nX-Token: a\r\nX-Token:  b \r\n" +
          "Cookie: c=1\r\n\r\n",
      ),
    );
    await within(until(() => seen.length === 2), 5000, "onOpen");
  } finally {
    conn.close();
  }
  const request = seen[0]!;
  assert.equal(seen[1], request);
  assert.equal(request.target, "/ws/room?name=den");
  assert.equal(request.path, "/ws/room");
  assert.equal(request.protocol, undefined);
  const headers = request.headers;
  assert.equal(request.headers, headers);
  assert.deepEqual([...headers], [
    ["host", "127.0.0.1"],
    ["upgrade", "websocket"],
    ["connection", "Upgrade"],
    ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
    ["sec-websocket-version", "13"],
    ["x-token", "a, b"],
    ["cookie", "c=1"],
  ]);
});

Deno.test("a heartbeat's pong between messages gives back what a message in pieces left kept (storage, scratch, text validator)", () => {
  // On ca3aca0 a session that once read a message in pieces kept up to
  // 16 KiB of storage for good, however quiet it went.
  const codec = webSocketCodec(lines({ maxLineBytes: 1 << 20 }));
  const count = 200;
  const decoders = Array.from({ length: count }, () => codec.decoder(link()));
  const line = "y".repeat(12_000);
  const message = encodeFrame(Opcode.text, line, true, true);
  const pong = encodeFrame(Opcode.pong, "", true, true);
  // Counted, not kept: 200 lines of 12 KB would be most of the figure.
  let got = 0;
  const memory = (): number => {
    heapUsed();
    const { heapUsed: heap, external } = Deno.memoryUsage();
    return heap + external;
  };
  const before = memory();
  for (const d of decoders) {
    // In three reads, the last one cutting the pong's header.
    const bytes = new Uint8Array([...message, ...pong]);
    const emit = (m: unknown): void => void (got += m === line ? 1 : 0);
    d.decode(bytes.subarray(0, 5000), emit);
    d.decode(bytes.subarray(5000, message.length + 1), emit);
    d.decode(bytes.subarray(message.length + 1), emit);
    assert.equal(d.buffered, 0);
  }
  const perDecoder = (memory() - before) / count;
  assert.equal(got, count);
  assert.ok(perDecoder < 2000, `${perDecoder.toFixed(0)} bytes per decoder`);
  // The next message in pieces still decodes (its buffers made again).
  const d = decoders[0]!;
  const again: string[] = [];
  const bytes = message.slice();
  d.decode(bytes.subarray(0, 7), (m) => void again.push(m as string));
  d.decode(bytes.subarray(7), (m) => void again.push(m as string));
  assert.deepEqual(again, [line]);
});
