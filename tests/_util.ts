// Shared helpers for tests on real loopback sockets.

/** Rejects after `ms` unless `promise` settles first; clears its timer. */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what = "operation",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${ms} ms: ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms until it holds, or fails after `ms`. */
export async function until(
  condition: () => boolean,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await delay(5);
  }
}

/** Reads until `count` bytes have arrived (or EOF), within `ms`. */
export async function readBytes(
  conn: Deno.Conn,
  count: number,
  ms = 5000,
): Promise<Uint8Array> {
  const out = new Uint8Array(count);
  let filled = 0;
  const deadline = Date.now() + ms;
  while (filled < count) {
    const n = await within(
      conn.read(out.subarray(filled)),
      Math.max(1, deadline - Date.now()),
      `reading ${count} bytes`,
    );
    if (n === null) break;
    filled += n;
  }
  return out.subarray(0, filled);
}

/** Reads everything until EOF, within `ms`. */
export async function readToEnd(
  conn: Deno.Conn,
  ms = 5000,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  const deadline = Date.now() + ms;
  for (;;) {
    let n: number | null;
    try {
      n = await within(
        conn.read(buffer),
        Math.max(1, deadline - Date.now()),
        "reading to EOF",
      );
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) break;
      throw error;
    }
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  const total = chunks.reduce((sum, c) => sum + c.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** A line reader over a raw connection, for text protocols. */
export class LineReader {
  #conn: Deno.Conn;
  #buffered = "";
  #offset = 0;
  #decoder = new TextDecoder();
  #chunk = new Uint8Array(65536);
  #eof = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The next line without its terminator, or `null` at EOF. */
  async next(ms = 5000): Promise<string | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const newline = this.#buffered.indexOf("\n", this.#offset);
      if (newline >= 0) {
        const line = this.#buffered.slice(this.#offset, newline);
        this.#offset = newline + 1;
        return line;
      }
      if (this.#eof) return null;
      const n = await within(
        this.#conn.read(this.#chunk),
        Math.max(1, deadline - Date.now()),
        "reading a line",
      );
      if (n === null) {
        this.#eof = true;
        continue;
      }
      this.#buffered = this.#buffered.slice(this.#offset) +
        this.#decoder.decode(this.#chunk.subarray(0, n), { stream: true });
      this.#offset = 0;
    }
  }
}

const encoder = new TextEncoder();

/** Encodes text as UTF-8. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Writes all of `bytes`. */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Splits `bytes` into chunks of random sizes from 1 to `max`. */
export function randomChunks(
  bytes: Uint8Array,
  max: number,
  random: () => number = Math.random,
): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const size = 1 + Math.floor(random() * max);
    chunks.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

/** A small deterministic PRNG (mulberry32) so failures can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
