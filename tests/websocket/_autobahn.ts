// Test helper for the Autobahn|Testsuite port (conformance_*_test.ts): an
// echo server under test and a fuzzing peer that sends any bytes (reserved
// bits, reserved opcodes, bad lengths, chops of any size) and records every
// frame the server sends back, in order, checking each one's framing (no
// reserved bits, no mask, minimal length encoding) as Autobahn's own client
// does. Like Autobahn's fuzzing client, the peer answers a server-initiated
// close with a close of its own, then waits for the server to drop TCP.
// With a permessage-deflate offer (families 12 and 13), the peer keeps the
// server's answer, allows RSV1 on a message's first frame once the
// extension is agreed, and inflates such messages with the window the
// server agreed to.
import assert from "node:assert/strict";
import { constants, inflateRawSync } from "node:zlib";
import {
  type PerMessageDeflateOptions,
  type Server,
  webSocketMessages,
} from "../../mod.ts";
import { ResponseHeadParser } from "../../src/websocket/_http_head.ts";
import { dial, testServer } from "../_server.ts";
import { delay, writeAll } from "../_util.ts";
import { upgradeRequest } from "./_ws_raw.ts";

/** Opcodes, including the reserved ones the fuzzer sends. */
export const Op = {
  continuation: 0,
  text: 1,
  binary: 2,
  close: 8,
  ping: 9,
  pong: 10,
} as const;

/**
 * The server under test: `webSocketMessages()` echoes text as text and
 * binary as binary, byte for byte, as Autobahn's echo server does.
 */
export function autobahnServer(
  maxMessageBytes?: number,
  perMessageDeflate?: boolean | PerMessageDeflateOptions,
): Server<unknown, string | Uint8Array, string | Uint8Array, Deno.NetAddr> {
  return testServer<unknown, string | Uint8Array, string | Uint8Array>({
    transport: "websocket",
    codec: webSocketMessages(),
    ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }),
    ...(perMessageDeflate === undefined ? {} : { perMessageDeflate }),
    onMessage: (session, message) => void session.send(message),
    onError: () => {},
  });
}

/** How a frame to send is built. */
export interface FrameSpec {
  /** FIN bit. @default {true} */
  fin?: boolean;
  /** RSV1-3 as a number from 0 to 7 (RSV1 is 4). @default {0} */
  rsv?: number;
  /** Mask the payload (clients must). @default {true} */
  mask?: boolean;
  /** Force the length encoding: 7-bit, 16-bit or 64-bit. */
  lengthBytes?: 0 | 2 | 8;
}

const encoder = new TextEncoder();

/** Encodes one client frame, with anything in it the test asks for. */
export function frame(
  opcode: number,
  payload: Uint8Array | string = new Uint8Array(0),
  spec: FrameSpec = {},
): Uint8Array {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  const mask = spec.mask ?? true;
  const n = bytes.length;
  const lengthBytes = spec.lengthBytes ??
    (n < 126 ? 0 : n < 65536 ? 2 : 8);
  const out = new Uint8Array(2 + lengthBytes + (mask ? 4 : 0) + n);
  out[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) |
    opcode;
  let p = 2;
  if (lengthBytes === 0) {
    out[1] = n;
  } else if (lengthBytes === 2) {
    out[1] = 126;
    new DataView(out.buffer).setUint16(2, n);
    p += 2;
  } else {
    out[1] = 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
    p += 8;
  }
  if (mask) {
    out[1] |= 0x80;
    const key = crypto.getRandomValues(new Uint8Array(4));
    out.set(key, p);
    p += 4;
    for (let i = 0; i < n; i++) out[p + i] = bytes[i]! ^ key[i & 3]!;
  } else {
    out.set(bytes, p);
  }
  return out;
}

/** A close frame's payload: the code, then the reason's bytes. */
export function closeBody(
  code: number,
  reason: Uint8Array | string = "",
): Uint8Array {
  const text = typeof reason === "string" ? encoder.encode(reason) : reason;
  const out = new Uint8Array(2 + text.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/** Bytes from hex ("cebae1", spaces allowed). */
export function hex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/** One frame the server sent. */
export interface ServerFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  /** 0, 2 or 8: the extended length field's size. */
  lengthBytes: number;
  payload: Uint8Array;
}

/** What the peer saw, in order. */
export type PeerEvent =
  | { kind: "message"; data: string | Uint8Array; compressed: boolean }
  | { kind: "ping"; payload: Uint8Array }
  | { kind: "pong"; payload: Uint8Array }
  | { kind: "close"; code: number | undefined; reason: Uint8Array }
  | { kind: "bad"; why: string };

const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** What the server agreed to in its permessage-deflate answer. */
export interface AgreedDeflate {
  /** The window the server compresses with: its server_max_window_bits. */
  serverWindowBits: number;
}

/** A fuzzing client on one upgraded connection. */
export class Peer {
  readonly conn: Deno.TcpConn;
  /** The server's Sec-WebSocket-Extensions answer, if it sent one. */
  extensions: string | undefined;
  /** Set when the server agreed to permessage-deflate. */
  deflate: AgreedDeflate | undefined;
  /** Every frame the server sent, in order. */
  readonly frames: ServerFrame[] = [];
  /** Messages (reassembled), control frames and framing errors, in order. */
  readonly events: PeerEvent[] = [];
  /** Whether the server ended the connection (EOF or reset). */
  ended = false;
  /** Whether the peer sent a close frame. */
  closeSent = false;
  #chunks: Uint8Array[] = [];
  readonly #waiters = new Set<() => void>();
  #total = 0;
  #need = 2; // bytes the next frame needs, as far as known
  #fragments: Uint8Array[] = [];
  #fragmentOpcode = 0;
  #fragmentCompressed = false;
  readonly #reading: Promise<void>;

  private constructor(
    conn: Deno.TcpConn,
    rest: Uint8Array,
    extensions: string | undefined,
  ) {
    this.conn = conn;
    this.extensions = extensions;
    this.deflate = agreedDeflate(extensions);
    this.#feed(rest);
    this.#reading = this.#read();
  }

  /**
   * Connects and upgrades (within 5 s); throws unless the answer is 101.
   * `options.extensions` is sent as the Sec-WebSocket-Extensions offer.
   */
  static async open(
    server: { readonly addr: Deno.NetAddr },
    options: { extensions?: string } = {},
  ): Promise<Peer> {
    const conn = await dial(server);
    // Each send goes out at once, as Autobahn's (Twisted's) do: without
    // this, Nagle holds a small frame until the previous one is acked.
    conn.setNoDelay(true);
    const timer = setTimeout(() => conn.close(), 5000);
    try {
      const offer = options.extensions === undefined
        ? ""
        : `Sec-WebSocket-Extensions: ${options.extensions}\r\n`;
      await writeAll(conn, upgradeRequest("/", offer));
      const head = new ResponseHeadParser();
      const buffer = new Uint8Array(4096);
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error("EOF during the handshake");
        const used = head.push(buffer.subarray(0, n));
        if (used < 0) continue;
        if (head.head!.status !== 101) {
          throw new Error(`status ${head.head!.status}`);
        }
        return new Peer(
          conn,
          buffer.slice(used, n),
          head.head!.headers.get("sec-websocket-extensions"),
        );
      }
    } catch (error) {
      try {
        conn.close();
      } catch {
        // Closed by the timer.
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The data messages received. */
  get messages(): (string | Uint8Array)[] {
    return this.events.flatMap((e) => e.kind === "message" ? [e.data] : []);
  }

  /** The payloads of the pongs received. */
  get pongs(): Uint8Array[] {
    return this.events.flatMap((e) => e.kind === "pong" ? [e.payload] : []);
  }

  /** The server's close frame, if one came. */
  get close(): Extract<PeerEvent, { kind: "close" }> | undefined {
    return this.events.find((e) => e.kind === "close") as
      | Extract<PeerEvent, { kind: "close" }>
      | undefined;
  }

  /** Writes bytes at once; ignores a connection the server closed. */
  async send(bytes: Uint8Array): Promise<void> {
    try {
      await writeAll(this.conn, bytes);
    } catch {
      // The server may have failed the connection already.
    }
  }

  /** Sends one frame (see {@linkcode frame}). */
  async sendFrame(
    opcode: number,
    payload?: Uint8Array | string,
    spec?: FrameSpec,
  ): Promise<void> {
    if (opcode === Op.close) this.closeSent = true;
    await this.send(frame(opcode, payload, spec));
  }

  /**
   * Sends bytes in chops of `size` (each its own write), `pause` ms apart:
   * Autobahn's "chopped" and "octet-wise" sends.
   */
  async sendChopped(bytes: Uint8Array, size: number, pause = 0): Promise<void> {
    for (let at = 0; at < bytes.length && !this.ended; at += size) {
      await this.send(bytes.subarray(at, at + size));
      if (pause > 0) await delay(pause);
    }
  }

  /** Sends a close frame with `code` (no payload when undefined). */
  async sendClose(code?: number, reason?: Uint8Array | string): Promise<void> {
    await this.sendFrame(
      Op.close,
      code === undefined ? undefined : closeBody(code, reason),
    );
  }

  /**
   * Waits until `condition` holds, the server ends the connection, or `ms`
   * pass; returns whether it held.
   */
  async until(condition: () => boolean, ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      const left = deadline - Date.now();
      if (this.ended || left <= 0) return condition();
      // Woken by the next frame or the end, so waits time the server, not
      // a polling interval.
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#waiters.add(resolve);
      const timer = setTimeout(resolve, left);
      await promise;
      clearTimeout(timer);
      this.#waiters.delete(resolve);
    }
    return true;
  }

  /** Waits for `n` events of `kind` (within `ms`); returns whether they came. */
  count(kind: PeerEvent["kind"], n: number, ms = 5000): Promise<boolean> {
    return this.until(
      () => this.events.filter((e) => e.kind === kind).length >= n,
      ms,
    );
  }

  /**
   * Waits up to `ms` for the server to end the connection, then closes ours
   * and stops reading; returns whether the server ended it in time.
   */
  async finish(ms = 3000): Promise<boolean> {
    await this.until(() => this.ended, ms);
    const ended = this.ended;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.#reading;
    return ended;
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(1 << 20);
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        this.#feed(buffer.subarray(0, n));
      }
    } catch {
      // Reset, or closed by finish(): ended all the same.
    }
    this.ended = true;
    this.#wake();
  }

  #wake(): void {
    for (const resolve of this.#waiters) resolve();
    this.#waiters.clear();
  }

  #feed(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    // Chunks are joined only once the next frame is whole, so a large
    // frame read in many pieces is copied once, not once per read.
    this.#chunks.push(bytes.slice());
    this.#total += bytes.length;
    if (this.#total < this.#need) return;
    const joined = concat(this.#chunks);
    let at = 0;
    for (;;) {
      const parsed = parseFrame(joined, at);
      if (typeof parsed === "number") {
        this.#need = parsed;
        break;
      }
      at = parsed.end;
      this.frames.push(parsed.frame);
      this.#onFrame(parsed.frame);
    }
    this.#wake();
    const rest = joined.subarray(at);
    this.#chunks = rest.length === 0 ? [] : [rest];
    this.#total = rest.length;
  }

  #onFrame(f: ServerFrame): void {
    // Autobahn's client checks each frame a server sends: RSV1 only on the
    // first frame of a data message, and only with the extension agreed.
    const compressed = f.rsv === 4 && this.deflate !== undefined &&
      (f.opcode === Op.text || f.opcode === Op.binary);
    if (f.rsv !== 0 && !compressed) this.#bad(`reserved bits ${f.rsv}`);
    if (f.masked) this.#bad("masked server frame");
    const n = f.payload.length;
    const minimal = n < 126 ? 0 : n < 65536 ? 2 : 8;
    if (f.lengthBytes !== minimal) {
      this.#bad(`length ${n} in a ${f.lengthBytes}-byte field`);
    }
    switch (f.opcode) {
      case Op.ping:
        this.events.push({ kind: "ping", payload: f.payload });
        return;
      case Op.pong:
        this.events.push({ kind: "pong", payload: f.payload });
        return;
      case Op.close: {
        const p = f.payload;
        this.events.push({
          kind: "close",
          code: p.length >= 2 ? (p[0]! << 8) | p[1]! : undefined,
          reason: p.subarray(Math.min(2, p.length)),
        });
        if (!this.closeSent) {
          // Autobahn answers the server's close, echoing its code.
          this.closeSent = true;
          void this.send(frame(Op.close, p.subarray(0, Math.min(2, p.length))));
        }
        return;
      }
      case Op.text:
      case Op.binary:
      case Op.continuation: {
        if (f.opcode !== Op.continuation) {
          if (this.#fragmentOpcode !== 0) this.#bad("new message in a message");
          this.#fragmentOpcode = f.opcode;
          this.#fragmentCompressed = compressed;
          this.#fragments = [];
        } else if (this.#fragmentOpcode === 0) {
          this.#bad("continuation without a message");
          return;
        }
        this.#fragments.push(f.payload);
        if (!f.fin) return;
        let bytes = concat(this.#fragments);
        const opcode = this.#fragmentOpcode;
        const wasCompressed = this.#fragmentCompressed;
        this.#fragmentOpcode = 0;
        this.#fragments = [];
        if (wasCompressed) {
          try {
            bytes = inflate(bytes, this.deflate!.serverWindowBits);
          } catch (error) {
            this.#bad(`bad compressed data: ${(error as Error).message}`);
            return;
          }
        }
        if (opcode === Op.binary) {
          this.events.push({
            kind: "message",
            data: bytes,
            compressed: wasCompressed,
          });
          return;
        }
        try {
          this.events.push({
            kind: "message",
            data: fatal.decode(bytes),
            compressed: wasCompressed,
          });
        } catch {
          this.#bad("invalid UTF-8 from the server");
        }
        return;
      }
      default:
        this.#bad(`opcode ${f.opcode}`);
    }
  }

  #bad(why: string): void {
    this.events.push({ kind: "bad", why });
  }
}

function parseFrame(
  bytes: Uint8Array,
  at: number,
): { frame: ServerFrame; end: number } | number {
  // Returns the bytes needed (from `at`) when the frame is not whole yet.
  if (bytes.length - at < 2) return 2;
  const b0 = bytes[at]!;
  const b1 = bytes[at + 1]!;
  const length7 = b1 & 0x7f;
  const lengthBytes = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
  const masked = (b1 & 0x80) !== 0;
  const headerSize = 2 + lengthBytes + (masked ? 4 : 0);
  if (bytes.length - at < headerSize) return headerSize;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at + 2);
  const length = lengthBytes === 0
    ? length7
    : lengthBytes === 2
    ? view.getUint16(0)
    : Number(view.getBigUint64(0));
  const end = at + headerSize + length;
  if (bytes.length < end) return end - at;
  const payload = bytes.slice(at + headerSize, end);
  if (masked) {
    const key = bytes.subarray(at + headerSize - 4, at + headerSize);
    for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!;
  }
  return {
    frame: {
      fin: (b0 & 0x80) !== 0,
      rsv: (b0 >> 4) & 7,
      opcode: b0 & 0x0f,
      masked,
      lengthBytes,
      payload,
    },
    end,
  };
}

// What a Sec-WebSocket-Extensions answer agreed to, when it names
// permessage-deflate (its validity is the tests' business).
function agreedDeflate(answer: string | undefined): AgreedDeflate | undefined {
  if (answer === undefined) return undefined;
  const [name, ...params] = answer.split(";").map((p) => p.trim());
  if (name?.toLowerCase() !== "permessage-deflate") return undefined;
  let serverWindowBits = 15;
  for (const param of params) {
    const [key, value] = param.split("=").map((p) => p.trim());
    if (key === "server_max_window_bits" && value !== undefined) {
      serverWindowBits = Number(value.replace(/"/g, ""));
    }
  }
  return { serverWindowBits };
}

// Inflates one message (RFC 7692 section 7.2.2: the tail appended). Below
// a 32 KiB window, output comes in 64-byte chunks, so that zlib's window
// (2^bits bytes of earlier output) is what a back-reference may reach: a
// sender that used a larger window than agreed fails here.
function inflate(payload: Uint8Array, windowBits: number): Uint8Array {
  const out = inflateRawSync(concat([payload, TAIL]), {
    windowBits,
    finishFlush: constants.Z_SYNC_FLUSH,
    ...(windowBits < 15 ? { chunkSize: 64 } : {}),
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/** Joins byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Autobahn's verdict on a failed connection: the server sent a close with
 * `code` (or, where `dropOk`, dropped TCP without one: "or drop TCP"),
 * ended the connection, and sent no frame with bad framing.
 */
export async function assertFailed(
  peer: Peer,
  code: number,
  dropOk = false,
): Promise<void> {
  const ended = await peer.finish();
  assert.ok(ended, "the server ends the connection");
  assert.deepEqual(peer.events.filter((e) => e.kind === "bad"), []);
  const close = peer.close;
  if (close === undefined && dropOk) return;
  assert.ok(close !== undefined, "the server sends a close frame");
  assert.equal(close.code, code);
  // Nothing after the close frame.
  assert.equal(peer.events.at(-1), close, "the close frame comes last");
}

/**
 * Autobahn's verdict on a clean close the peer started: the server answers
 * with a close frame whose code is one of `codes` (undefined: no payload),
 * then drops TCP.
 */
export async function assertClosedCleanly(
  peer: Peer,
  codes: (number | undefined)[],
): Promise<void> {
  const ended = await peer.finish();
  assert.ok(ended, "the server drops TCP after the close handshake");
  assert.deepEqual(peer.events.filter((e) => e.kind === "bad"), []);
  const close = peer.close;
  assert.ok(close !== undefined, "the server answers with a close frame");
  assert.ok(
    codes.includes(close.code),
    `close code ${close.code} is one of ${codes.join(", ")}`,
  );
  assert.equal(peer.events.at(-1), close, "the close frame comes last");
}

/** Autobahn's normal end of a case: close 1000, expect 1000 back and EOF. */
export async function closeNormally(peer: Peer): Promise<void> {
  await peer.sendClose(1000);
  await assertClosedCleanly(peer, [1000]);
}

/** `n` bytes of a repeating pattern (text-safe when `ascii`). */
export function pattern(n: number, ascii = false): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = ascii ? 0x20 + (i * 7) % 95 : (i * 31 + (i >> 8)) & 0xff;
  }
  return out;
}
