// Helpers for tests/server/hostile_test.ts: one entry per built-in codec with small
// limits, a generator of valid messages, garbage, and hostile headers, so the
// fuzz tests can treat every decoder alike.
import type { Codec } from "../../mod.ts";
import { json, lengthPrefixed, lines, microSocket } from "../../mod.ts";

/** A codec under test, with what the fuzzer needs to know about it. */
export interface FuzzCase {
  name: string;
  // deno-lint-ignore no-explicit-any
  codec: () => Codec<any, any>;
  /** The most bytes a decoder of this codec may hold at any time. */
  bound: number;
  /** A random valid message (as `encode` takes it, and decoding yields). */
  message: (random: () => number) => unknown;
  /** Byte sequences that are hostile for this framing. */
  hostile: Uint8Array[];
}

const MAX = 256;

function text(random: () => number, max: number): string {
  const alphabet = 'abc xyz|:\\{}[]"é€😀\t\r0123456789';
  const chars = [...alphabet];
  let out = "";
  const length = Math.floor(random() * max);
  for (let i = 0; i < length; i++) {
    out += chars[Math.floor(random() * chars.length)];
  }
  return out;
}

/** Bytes [b0..b3] as a 4-byte header after an optional prefix. */
function withHeader(prefix: string, ...bytes: number[]): Uint8Array {
  return new Uint8Array([...new TextEncoder().encode(prefix), ...bytes]);
}

/** The built-in codecs with small limits, so limits are hit often. */
export const FUZZ_CASES: FuzzCase[] = [
  {
    name: "lines",
    codec: () => lines({ maxLineBytes: MAX }),
    bound: MAX + 1, // a CR may wait for its LF
    message: (random) =>
      text(random, 40).replaceAll("\r", "").replaceAll("\n", ""),
    hostile: [
      new Uint8Array(MAX + 10).fill(0x61), // a line over the limit
      new Uint8Array([0xff, 0xfe, 0x0a]), // invalid UTF-8
      new Uint8Array([0xe2, 0x82]), // a truncated sequence
    ],
  },
  {
    name: "lengthPrefixed",
    codec: () => lengthPrefixed({ maxFrameBytes: MAX }),
    bound: MAX + 4,
    message: (random) => {
      const bytes = new Uint8Array(Math.floor(random() * 64));
      for (let i = 0; i < bytes.length; i++) bytes[i] = random() * 256;
      return bytes;
    },
    hostile: [
      withHeader("", 0xff, 0xff, 0xff, 0xff),
      withHeader("", 0x7f, 0xff, 0xff, 0xff),
      withHeader("", 0, 0, 1, 1), // limit + 1
    ],
  },
  {
    name: "json (lines)",
    codec: () => json({ maxFrameBytes: MAX }),
    bound: MAX + 1,
    message: (random) => ({
      n: Math.floor(random() * 1e6),
      s: text(random, 20),
    }),
    hostile: [
      new TextEncoder().encode("{not json}\n"),
      new TextEncoder().encode('{"a":'.repeat(100) + "\n"),
      new Uint8Array(MAX + 10).fill(0x20),
    ],
  },
  {
    name: "json (length)",
    codec: () => json({ framing: "length", maxFrameBytes: MAX }),
    bound: MAX + 4,
    message: (random) => [text(random, 20), random() < 0.5, null],
    hostile: [
      withHeader("", 0xff, 0xff, 0xff, 0xff),
      withHeader("", 0, 0, 0, 3, 0x7b, 0x7b, 0x7b), // "{{{"
      withHeader("", 0, 0, 0, 2, 0xc3, 0x28), // invalid UTF-8
    ],
  },
  {
    name: "microSocket",
    codec: () => microSocket({ maxFrameBytes: MAX }),
    bound: MAX + 10,
    message: (random) => ({
      action: text(random, 10) || "a",
      [`k${Math.floor(random() * 9)}`]: text(random, 20),
    }),
    hostile: [
      withHeader("Header", 0xff, 0xff, 0xff, 0xff), // negative: the seed panics
      withHeader("Header", 0x7f, 0xff, 0xff, 0xff), // the seed buffers 2 GiB
      withHeader("Heeder", 0, 0, 0, 1),
      withHeader("Header", 0, 0, 0, 4, 0x6e, 0x6f, 0x70, 0x65), // no ":"
    ],
  },
];

/** `count` random bytes. */
export function garbage(random: () => number, count: number): Uint8Array {
  const bytes = new Uint8Array(count);
  for (let i = 0; i < count; i++) bytes[i] = random() * 256;
  return bytes;
}

/** Picks one element. */
export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}
