// The recovery preamble (issue 17): a client that speaks recovery starts its
// TCP, TLS or Unix connection with MAGIC and one ASCII line, before any codec
// byte; the server answers with MAGIC and one line, before any codec byte.
// MAGIC starts with 0xFF, which no frame of a built-in codec can start with
// (not UTF-8, so not lines() or json(); not "Header", so not microSocket();
// a length of at least 0xFF000000 bytes, beyond any lengthPrefixed() limit),
// so a server sniffs only the first byte of a connection to tell the two
// kinds of client apart, and a client that does not speak recovery sends and
// receives exactly the bytes it did before.
//
//   client: MAGIC "new\n"
//           MAGIC "resume <id> <token> <received>\n"
//   server: MAGIC "ok <recovered 0|1> <id> <token> <received> <window>\n"
//           MAGIC "fail <reason>\n"                (then closes)
//
// <received> counts the whole messages that side has decoded from the other
// (heartbeats and control frames left out; a frame cut off doesn't count),
// so the other side sends again, from its message log, exactly the messages
// that follow them (see _message_log.ts). Over WebSocket the same lines are
// WebSocket text messages, prefixed "msrec1 " (see WEBSOCKET_PREFIX), and
// each WebSocket message counts as one: a browser can speak it.
//
// Extension point (a cluster's per-message positions, later): a line is
// words separated by spaces; words after the ones above are `key=value`
// extensions that a version-1 peer ignores, and the first word is a record
// kind: kinds other than the ones above are reserved. A cluster adds
// `pos=<position> epoch=<epoch>` to `resume` and to `ok` (one position on
// the history engine's global sequence covers all of a session's rooms and
// its direct messages, so that they are replayed from JetStream or Redis
// Streams on any node), and a `pos` record kind that carries an entry's
// position ahead of it: see _cluster_wire.ts. Local recovery needs
// neither: positions are counted per session.

import { inflateMessage } from "../websocket/_deflate.ts";

/** The 8 bytes that open both preambles. */
export const MAGIC: Uint8Array = new Uint8Array([
  0xff,
  0x00,
  0x6d, // m
  0x73, // s
  0x72, // r
  0x65, // e
  0x63, // c
  0x01, // version 1
]);

/**
 * Over WebSocket the client says it speaks recovery in the upgrade URL's
 * query (this parameter), and its first message is the hello: a server
 * reads a hello only from those connections, so a plain WebSocket client is
 * never sniffed or delayed.
 */
export const WEBSOCKET_PARAM = "microsocket-recovery";

/** What opens a hello or an answer sent as a WebSocket text message. */
export const WEBSOCKET_PREFIX = "msrec1 ";

/** The longest preamble line accepted, newline included. */
export const MAX_LINE = 256;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** MAGIC followed by `line` and a newline, ready to write. */
export function preamble(line: string): Uint8Array {
  const text = encoder.encode(line + "\n");
  const out = new Uint8Array(MAGIC.length + text.length);
  out.set(MAGIC);
  out.set(text, MAGIC.length);
  return out;
}

/** A client's hello, parsed. */
export type Hello =
  | { readonly kind: "new" }
  | {
    readonly kind: "resume";
    readonly id: number;
    readonly token: string;
    readonly received: number;
  };

/** A server's answer, parsed. */
export type Answer =
  | {
    readonly kind: "ok";
    readonly recovered: boolean;
    readonly id: number;
    readonly token: string;
    readonly received: number;
    readonly window: number;
  }
  | { readonly kind: "fail"; readonly reason: string };

const COUNT = /^(0|[1-9][0-9]{0,15})$/;
const TOKEN = /^[A-Za-z0-9_-]{22,64}$/;

function count(text: string | undefined): number | undefined {
  if (text === undefined || !COUNT.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

// The words before the first `key=value` extension (see the file comment).
function known(words: string[]): string[] {
  const at = words.findIndex((word) => word.includes("="));
  return at === -1 ? words : words.slice(0, at);
}

/** Parses a hello line (without MAGIC and newline); `undefined` if invalid. */
export function parseHello(line: string): Hello | undefined {
  const words = known(line.split(" "));
  if (words.length === 1 && words[0] === "new") return { kind: "new" };
  if (words.length !== 4 || words[0] !== "resume") return undefined;
  const id = count(words[1]);
  const token = words[2]!;
  const received = count(words[3]);
  if (id === undefined || received === undefined || !TOKEN.test(token)) {
    return undefined;
  }
  return { kind: "resume", id, token, received };
}

/** Parses an answer line (without MAGIC and newline); `undefined` if invalid. */
export function parseAnswer(line: string): Answer | undefined {
  const words = line.split(" ");
  if (words[0] === "fail") {
    return { kind: "fail", reason: words.slice(1).join(" ") };
  }
  if (known(words).length !== 6 || words[0] !== "ok") return undefined;
  const id = count(words[2]);
  const received = count(words[4]);
  const window = count(words[5]);
  const token = words[3]!;
  if (
    (words[1] !== "0" && words[1] !== "1") || id === undefined ||
    received === undefined || window === undefined || !TOKEN.test(token)
  ) return undefined;
  return {
    kind: "ok",
    recovered: words[1] === "1",
    id,
    token,
    received,
    window,
  };
}

/** What {@linkcode readPreamble} read. */
export interface ReadPreamble {
  /** The line after MAGIC, without its newline; `undefined` when not MAGIC. */
  readonly line: string | undefined;
  /** Bytes read past the line (or all bytes read, when not MAGIC). */
  readonly rest: Uint8Array;
  /** The read still pending when time ran out, if any (see PendingConn). */
  readonly pending: Promise<number | null> | undefined;
  /** The buffer that pending read fills. */
  readonly buffer: Uint8Array;
}

/**
 * Reads MAGIC and a line from `conn`, within `deadline` (a time from
 * `performance.now()`). Returns early, with `line: undefined`, as soon as
 * the bytes read can't be MAGIC, or at the deadline; throws on a line
 * longer than {@linkcode MAX_LINE} or an EOF inside the preamble.
 */
export async function readPreamble(
  conn: Deno.Conn,
  deadline: number,
  untilEof = false,
  initial: Uint8Array = new Uint8Array(0),
): Promise<ReadPreamble> {
  let got = initial;
  const buffer = new Uint8Array(4096);
  // Bytes a handshake read already may hold the whole preamble.
  let first = initial.length > 0;
  for (;;) {
    if (first) {
      first = false;
      const decided = decide(got);
      if (decided !== undefined) {
        return { ...decided, pending: undefined, buffer };
      }
    }
    const reading = conn.read(buffer);
    let settled = false;
    reading.then(() => (settled = true), () => (settled = true));
    const left = deadline - performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let n = await Promise.race([
      reading,
      new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), Math.max(0, left));
      }),
    ]).finally(() => clearTimeout(timer));
    // A busy event loop runs a due timer before it polls the socket: give
    // bytes that are already there two more turns before calling it late.
    for (let turn = 0; n === "late" && turn < 2; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (settled) n = await reading;
    }
    if (n === "late") {
      // Whoever takes the pending read over handles its failure; nobody
      // may, when the connection is given up.
      reading.catch(() => {});
      return { line: undefined, rest: got, pending: reading, buffer };
    }
    if (n === null) {
      if (got.length === 0 && !untilEof) {
        return { line: undefined, rest: got, pending: undefined, buffer };
      }
      throw new Deno.errors.UnexpectedEof("The recovery preamble ended early");
    }
    const next = new Uint8Array(got.length + n);
    next.set(got);
    next.set(buffer.subarray(0, n), got.length);
    got = next;
    const decided = decide(got);
    if (decided !== undefined) {
      return { ...decided, pending: undefined, buffer };
    }
  }
}

// The preamble in `got`, or that there is none; `undefined`: read more.
function decide(
  got: Uint8Array,
): { line: string | undefined; rest: Uint8Array } | undefined {
  const head = Math.min(got.length, MAGIC.length);
  for (let i = 0; i < head; i++) {
    if (got[i] !== MAGIC[i]) return { line: undefined, rest: got };
  }
  if (got.length <= MAGIC.length) return undefined;
  const newline = got.indexOf(0x0a, MAGIC.length);
  if (newline === -1) {
    if (got.length - MAGIC.length >= MAX_LINE) {
      throw new RangeError("The recovery preamble line is too long");
    }
    return undefined;
  }
  if (newline - MAGIC.length >= MAX_LINE) {
    throw new RangeError("The recovery preamble line is too long");
  }
  return {
    line: decoder.decode(got.subarray(MAGIC.length, newline)),
    rest: got.subarray(newline + 1),
  };
}

/** Writes all of `bytes` to `conn`. */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/**
 * A WebSocket text frame carrying `WEBSOCKET_PREFIX + line` (at most 125
 * bytes), masked when `masked` (a client's).
 */
export function webSocketLine(line: string, masked: boolean): Uint8Array {
  const text = encoder.encode(WEBSOCKET_PREFIX + line);
  if (text.length > 125) throw new RangeError("The recovery line is too long");
  const head = masked ? 6 : 2;
  const out = new Uint8Array(head + text.length);
  out[0] = 0x81;
  out[1] = text.length | (masked ? 0x80 : 0);
  if (masked) {
    const mask = crypto.getRandomValues(new Uint8Array(4));
    out.set(mask, 2);
    for (let i = 0; i < text.length; i++) {
      out[head + i] = text[i]! ^ mask[i & 3]!;
    }
  } else {
    out.set(text, head);
  }
  return out;
}

/** What {@linkcode readWebSocketLine} read. */
export interface ReadWebSocketLine {
  /** The line after WEBSOCKET_PREFIX; `undefined` when the message isn't one. */
  readonly line: string | undefined;
  /** Bytes read past the frame. */
  readonly rest: Uint8Array;
}

/**
 * Reads one WebSocket text frame of at most 125 bytes from `conn` (after
 * `initial`), within `deadline` (a time from `performance.now()`): a hello
 * (masked, from a client) or an answer (unmasked, from a server).
 *
 * @throws When time runs out, the connection ends, or the first frame isn't
 * a small text frame.
 */
export async function readWebSocketLine(
  conn: Deno.Conn,
  deadline: number,
  initial: Uint8Array = new Uint8Array(0),
): Promise<ReadWebSocketLine> {
  let got = initial;
  const buffer = new Uint8Array(4096);
  for (;;) {
    if (got.length >= 2) {
      // A text frame, FIN; RSV1 when a browser compressed it (deflate).
      const compressed = got[0] === 0xc1;
      if ((got[0] !== 0x81 && !compressed) || (got[1]! & 0x7f) > 125) {
        throw new RangeError("The recovery message is not a short text frame");
      }
      const masked = (got[1]! & 0x80) !== 0;
      const length = got[1]! & 0x7f;
      const head = masked ? 6 : 2;
      if (got.length >= head + length) {
        let text: Uint8Array = got.slice(head, head + length);
        if (masked) {
          for (let i = 0; i < length; i++) text[i]! ^= got[2 + (i & 3)]!;
        }
        if (compressed) text = inflateMessage(text, MAX_LINE, "recovery");
        const message = decoder.decode(text);
        return {
          line: message.startsWith(WEBSOCKET_PREFIX)
            ? message.slice(WEBSOCKET_PREFIX.length)
            : undefined,
          rest: got.subarray(head + length),
        };
      }
    }
    const left = deadline - performance.now();
    if (left <= 0) throw new Deno.errors.TimedOut("No recovery message");
    const reading = conn.read(buffer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      reading,
      new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), left);
      }),
    ]).finally(() => clearTimeout(timer));
    if (n === "late") {
      reading.catch(() => {});
      throw new Deno.errors.TimedOut("No recovery message");
    }
    if (n === null) {
      throw new Deno.errors.UnexpectedEof("The connection ended early");
    }
    const next = new Uint8Array(got.length + n);
    next.set(got);
    next.set(buffer.subarray(0, n), got.length);
    got = next;
  }
}
