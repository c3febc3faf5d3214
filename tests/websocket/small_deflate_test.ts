// The TypeScript deflate encoder for short messages (_small_deflate.ts):
// every output inflates (node:zlib, with the tail RFC 7692 appends) to the
// input, within the window it was given, for inputs of every size it takes
// and of every kind (text, skewed, random, long runs); and chat-like text
// comes out about as small as zlib makes it.
import assert from "node:assert/strict";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import {
  deflateSmall,
  SMALL_DEFLATE_MAX,
} from "../../src/websocket/_small_deflate.ts";
import { deflateMessage } from "../../src/websocket/_deflate.ts";
import { seededRandom } from "../_util.ts";

const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

// Inflates with a 2^windowBits window, in 64-byte output chunks, so that a
// back-reference further than the window fails.
function inflate(compressed: Uint8Array, windowBits: number): Uint8Array {
  const input = new Uint8Array(compressed.length + 4);
  input.set(compressed);
  input.set(TAIL, compressed.length);
  return new Uint8Array(inflateRawSync(input, {
    windowBits,
    chunkSize: 64,
    finishFlush: constants.Z_SYNC_FLUSH,
  }));
}

function sample(random: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  const kind = Math.floor(random() * 4);
  const alphabet = kind === 0
    ? 256
    : kind === 1
    ? 4
    : 1 + Math.floor(random() * 64);
  for (let i = 0; i < n; i++) {
    if (kind === 3 && i > 0 && random() < 0.9) out[i] = out[i - 1]!; // runs
    else if (i > 8 && random() < 0.3) {
      // A repeat from up to 2 KiB back.
      out[i] = out[i - 1 - Math.floor(random() * Math.min(i, 2048))]!;
    } else {
      // Skewed: low values far more often.
      out[i] = Math.floor(alphabet * random() ** 3);
    }
  }
  return out;
}

Deno.test("deflateSmall() output inflates to the input within its window", () => {
  const random = seededRandom(1);
  for (let round = 0; round < 3000; round++) {
    const n = round < 300
      ? round
      : Math.floor(random() * (SMALL_DEFLATE_MAX + 1));
    const input = sample(random, n);
    const windowBits = 8 + (round % 8);
    const level = 1 + (round % 9);
    const compressed = deflateSmall(input, windowBits, level);
    assert.deepEqual(
      inflate(compressed, windowBits),
      input,
      `round ${round}: ${n} bytes, window ${windowBits}, level ${level}`,
    );
  }
});

Deno.test("deflateSmall() output is as zlib's sync flush ends it, and fresh each call", () => {
  const text = new TextEncoder().encode(JSON.stringify({
    type: "chat",
    text: "the weather is nice here, the weather is nice there",
  }));
  const a = deflateSmall(text, 15, 6);
  const b = deflateSmall(text, 15, 6);
  assert.deepEqual(a, b);
  assert.notEqual(a.buffer, b.buffer);
  // The empty stored block's LEN/NLEN are left off: appending them back
  // gives a stream zlib reads to the end.
  assert.notDeepEqual(a.subarray(-4), TAIL);
  assert.deepEqual(inflate(new Uint8Array(0), 15), new Uint8Array(0));
  assert.deepEqual(
    inflate(deflateSmall(new Uint8Array(0), 15, 6), 15),
    new Uint8Array(0),
  );
});

Deno.test("deflateSmall() makes chat text about as small as zlib", () => {
  const random = seededRandom(2);
  const words =
    "the be to of and a in that have it for not on with he as you do at this but his by from they we say her she or an will my one all would there their what so up out if about who get which go me when make can like time no just him know take people into year your good some could them see other than then now look only come its over think also back after use two how our work first well way even new want because any these give day most us meeting tomorrow deploy build release lunch coffee"
      .split(" ");
  let ours = 0;
  let zlib = 0;
  let raw = 0;
  for (let i = 0; i < 500; i++) {
    const text: string[] = [];
    for (let w = 12 + Math.floor(random() * 25); w > 0; w--) {
      text.push(words[Math.floor(random() * words.length)]!);
    }
    const message = new TextEncoder().encode(JSON.stringify({
      type: "chat",
      room: "lobby",
      from: `user${Math.floor(random() * 1000)}`,
      text: text.join(" "),
    }));
    raw += message.length;
    ours += deflateSmall(message, 15, 6).length;
    zlib += deflateRawSync(message, {
      level: 6,
      finishFlush: constants.Z_SYNC_FLUSH,
    }).length - 4;
  }
  assert.ok(ours <= zlib * 1.05, `${ours} vs zlib's ${zlib} (of ${raw})`);
  assert.ok(ours < raw * 0.8);
});

Deno.test("deflateMessage() takes the TypeScript path up to its limit, zlib past it", () => {
  const params = { windowBits: 15, level: 6, threshold: 0 };
  for (const n of [SMALL_DEFLATE_MAX, SMALL_DEFLATE_MAX + 1, 100_000]) {
    const input = sample(seededRandom(n), n);
    assert.deepEqual(inflate(deflateMessage(input, params), 15), input);
  }
});
