// Package-internal: a cluster client's positions (issue 17; the wire is
// _cluster_wire.ts). A server in a cluster puts a record carrying a global
// position right before some messages (room broadcasts, direct messages):
// over TCP, TLS and Unix MAGIC "pos <p>\n" at a frame start, over WebSocket
// a text message "msrec1 pos <p>". A record is not a message: it never
// reaches the app and is never counted in what the client says it
// received. The client holds <p> as pending, and takes it as its last
// position once the message after it has been decoded whole: a connection
// cut in between makes the server send both again.
//
// The seam is the session's decoder (wrapDecoders() in
// src/session/_internals.ts), installed only on a client whose session
// answer carried `pos= epoch=`: server sessions and other clients run the
// code they ran before.
//
// Byte streams (PositionDecoder): a record can be told from data only at a
// frame start, i.e. where the codec's decoder holds no bytes (`buffered`
// is 0, which the Decoder contract defines as "no frame begun"). MAGIC
// opens with 0xFF, which no frame of a built-in codec starts with, and a
// record can only begin at a 0xFF byte: so the wrapper looks for 0xFF with
// indexOf (native) and hands everything between to the codec's decoder as
// it is. Its cost: one indexOf per read; for text codecs (lines(), json())
// nothing else, since 0xFF never occurs in UTF-8; for binary codecs one
// more decode call (and subarray) per 0xFF byte inside a payload. Nothing
// is allocated per message or per record: the record's line is parsed
// byte by byte as it arrives, however it is split.
//
// WebSocket (webSocketPositions): a record is a whole message of its own,
// seen before the codec's mapping (WebSocketDecoder.interceptMessages):
// one prefix test per message.
import type { Decoder } from "../codec/codec.ts";
import { DecodeError } from "../errors.ts";
import { WebSocketDecoder } from "../websocket/_decoder.ts";
import type { WebSocketMessage } from "../websocket/_frame_parser.ts";
import { MAGIC, MAX_LINE, WEBSOCKET_PREFIX } from "./_preamble.ts";

/**
 * A cluster client's last committed position and its epoch: one per
 * session, updated by the decoders of each of its connections in turn.
 */
export interface Committed {
  /** The position of the last message taken whole after a record. */
  position: number;
  /** The epoch of the engine's sequence (from the server's answer). */
  epoch: string;
}

// Where a PositionDecoder is in a record.
const OUTSIDE = 0; // not in a record
const OPENING = 1; // reading MAGIC
const KIND = 2; // reading "pos "
const DIGITS = 3; // reading the position
const REST = 4; // past the position: extension words, up to the newline
const OTHER = 5; // a record of another kind (reserved): skipped
const BAD = 6; // a malformed pos record: refused at its newline

const POS = [0x70, 0x6f, 0x73, 0x20]; // "pos "
const LF = 0x0a;
// Up to 16 digits, as COUNT in _cluster_wire.ts.
const MAX_DIGITS = 16;

/**
 * A byte stream's decoder with position records taken out at frame
 * starts; see the file comment.
 */
export class PositionDecoder<In> implements Decoder<In> {
  readonly #inner: Decoder<In>;
  readonly #at: Committed;
  // The position of the last whole record, until the message after it
  // arrives; -1: none.
  #pending = -1;
  #state = OUTSIDE;
  // Bytes of the current record read so far (MAGIC included).
  #record = 0;
  #value = 0;
  #digits = 0;
  #emit: (message: In) => void = ignore;
  // Handed to the codec's decoder while a position is pending: the first
  // message commits it.
  readonly #commitThenEmit = (message: In): void => {
    if (this.#pending >= 0) {
      this.#at.position = this.#pending;
      this.#pending = -1;
    }
    this.#emit(message);
  };

  constructor(inner: Decoder<In>, at: Committed) {
    this.#inner = inner;
    this.#at = at;
  }

  get buffered(): number {
    return this.#inner.buffered + this.#record;
  }

  decode(chunk: Uint8Array, emit: (message: In) => void): void {
    this.#emit = emit;
    const inner = this.#inner;
    const end = chunk.length;
    let start = 0;
    while (start < end) {
      if (this.#state !== OUTSIDE) {
        start = this.#readRecord(chunk, start);
        continue;
      }
      const ff = chunk.indexOf(0xff, start);
      if (ff === -1) {
        this.#feed(chunk, start, end);
        return;
      }
      if (ff > start) this.#feed(chunk, start, ff);
      if (inner.buffered !== 0) {
        // Inside a frame: data, up to the next 0xFF (no record can begin
        // before it).
        const next = chunk.indexOf(0xff, ff + 1);
        const stop = next === -1 ? end : next;
        this.#feed(chunk, ff, stop);
        start = stop;
        continue;
      }
      this.#state = OPENING;
      this.#record = 1;
      start = ff + 1;
    }
  }

  // The end of the input: a record cut off is dropped (it is not a
  // message, and its position was never taken).
  end(emit: (message: In) => void): void {
    this.#state = OUTSIDE;
    this.#record = 0;
    this.#inner.end?.(emit);
  }

  closeFrame(reason: string, error: unknown): Uint8Array | undefined {
    return this.#inner.closeFrame?.(reason, error);
  }

  #feed(chunk: Uint8Array, from: number, to: number): void {
    this.#inner.decode(
      from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to),
      this.#pending >= 0 ? this.#commitThenEmit : this.#emit,
    );
  }

  // Reads record bytes from `at` on; returns where the rest of the chunk
  // starts (past the record's newline, or the chunk's end).
  #readRecord(chunk: Uint8Array, at: number): number {
    const end = chunk.length;
    for (let i = at; i < end; i++) {
      const byte = chunk[i]!;
      const state = this.#state;
      if (state === OPENING) {
        const k = this.#record;
        if (byte !== MAGIC[k]) {
          // Not MAGIC after all (a codec whose frames may start with 0xFF):
          // what was taken for a record's opening is the frame's.
          this.#state = OUTSIDE;
          this.#record = 0;
          this.#feed(MAGIC, 0, k);
          return i;
        }
        this.#record++;
        if (this.#record === MAGIC.length) this.#state = KIND;
        continue;
      }
      if (++this.#record - MAGIC.length > MAX_LINE) {
        throw new DecodeError("The recovery record line is too long");
      }
      if (byte === LF) {
        this.#ended(state);
        return i + 1;
      }
      if (state === KIND) {
        const k = this.#record - MAGIC.length - 1;
        if (byte !== POS[k]) this.#state = OTHER;
        else if (k === POS.length - 1) {
          this.#state = DIGITS;
          this.#value = 0;
          this.#digits = 0;
        }
      } else if (state === DIGITS) {
        if (byte >= 0x30 && byte <= 0x39) {
          // No leading zero, at most MAX_DIGITS digits.
          if (
            (this.#digits === 1 && this.#value === 0) ||
            this.#digits === MAX_DIGITS
          ) {
            this.#state = BAD;
          } else {
            this.#value = this.#value * 10 + (byte - 0x30);
            this.#digits++;
          }
        } else if (byte === 0x20 && this.#digits > 0) this.#state = REST;
        else this.#state = BAD;
      }
    }
    return end;
  }

  // A record's newline: a pos record's position is pending; a record of
  // another kind is skipped (reserved, _preamble.ts).
  #ended(state: number): void {
    this.#state = OUTSIDE;
    this.#record = 0;
    if (state === OTHER || state === KIND) return;
    if (
      state === BAD || (state === DIGITS && this.#digits === 0) ||
      !Number.isSafeInteger(this.#value)
    ) {
      throw new DecodeError("Invalid position record");
    }
    this.#pending = this.#value;
  }
}

/**
 * The decoder wrap of a byte stream's cluster client (see wrapDecoders()).
 */
export function streamPositions(
  at: Committed,
): (decoder: Decoder<unknown>) => Decoder<unknown> {
  return (decoder) => new PositionDecoder(decoder, at);
}

/**
 * The decoder wrap of a WebSocket cluster client: the connection's
 * WebSocketDecoder, with its records taken out before the mapping.
 *
 * @throws {TypeError} When the decoder is not a WebSocket one.
 */
export function webSocketPositions(
  at: Committed,
): (decoder: Decoder<unknown>) => Decoder<unknown> {
  return (decoder) => {
    if (!(decoder instanceof WebSocketDecoder)) {
      throw new TypeError("Not a WebSocket decoder");
    }
    // One per connection: a record's position waits for the next message
    // of the same connection.
    let pending = -1;
    decoder.interceptMessages((message: WebSocketMessage) => {
      if (
        typeof message === "string" && message.startsWith(WEBSOCKET_PREFIX)
      ) {
        const position = recordPosition(message);
        if (position >= 0) pending = position;
        return true;
      }
      if (pending >= 0) {
        at.position = pending;
        pending = -1;
      }
      return false;
    });
    return decoder;
  };
}

// The position of a WebSocket record ("msrec1 pos <p>[ words]"), read in
// place; -1 for a record of another kind (reserved).
function recordPosition(text: string): number {
  const from = WEBSOCKET_PREFIX.length;
  if (!text.startsWith("pos ", from)) return -1;
  let value = 0;
  let at = from + 4;
  const end = text.length;
  for (; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code === 0x20) break;
    if (
      code < 0x30 || code > 0x39 || at - from - 4 >= MAX_DIGITS ||
      (at > from + 4 && value === 0)
    ) {
      throw new DecodeError("Invalid position record");
    }
    value = value * 10 + (code - 0x30);
  }
  if (at === from + 4 || !Number.isSafeInteger(value)) {
    throw new DecodeError("Invalid position record");
  }
  return value;
}

function ignore(): void {}
