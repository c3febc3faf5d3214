// Package-internal: a session's read loop. A quiet session waits for its
// peer in a tiny buffer of its own (a pending read pins its buffer, and a
// gateway may hold a million quiet sessions); once a read fills that, the
// session reads into a working buffer, which doubles while reads fill it and
// shrinks back once traffic is small. A session whose reads keep arriving
// quickly (QUICK_READS in a row, each within QUICK_READ_MS) keeps its working
// buffer between reads, so a busy session allocates nothing per read; a
// sparse one goes back to the tiny buffer whenever a read has emptied the
// socket, and allocates a working buffer at most once per wake-up, only for
// a message that doesn't fit the tiny one. It decodes what it reads into the
// inbound pipeline; pauses while flow control, a handler or a rate limit
// holds it back; and, once the session is closing, goes on reading and
// discarding until the peer ends its side (see _linger.ts).
import type { Decoder } from "../codec/codec.ts";
import { CloseReason } from "../close_reason.ts";
import { FrameTooLargeError, TruncatedFrameError } from "../errors.ts";
import { type Flow, producerContext } from "./_flow_control.ts";
import type { ClosingReader, Life } from "./_lifecycle.ts";
import {
  QUICK_READ_MS,
  QUICK_READS,
  READ_BUFFER_IDLE,
  READ_BUFFER_MAX,
  READ_BUFFER_MIN,
} from "../defaults.ts";

// The origin of Reader.#lastSeen.
const EPOCH = Date.now();

/** What the loop feeds (the inbound pipeline, _inbound.ts). */
export interface ReadInto<In> {
  /** Messages decoded so far. */
  readonly framesIn: number;
  /** While set, reading waits for it (unless awaiting replies). */
  readonly handlerBusy: Promise<void> | undefined;
  /** The decoder's callback. */
  readonly emit: (message: In) => void;
  /** Runs before the first read; reading waits for what it returns. */
  start(): Promise<void> | undefined;
  /** A pause the byte rate asks for after `n` bytes, if any. */
  throttleBytes(n: number): Promise<void> | undefined;
  /** Whether to read on while a handler awaits a reply from the peer. */
  awaitingReplies(): boolean;
  /** Whether the codec correlates requests and replies. */
  readonly correlated: boolean;
  /**
   * Waits for `busy` to settle, or until it asks the peer something (then
   * reading goes on).
   */
  waitFor(busy: Promise<unknown>): Promise<void>;
}

/** One session's read loop; see the file comment. */
export class Reader<In> implements ClosingReader {
  /** Replaced only when a resumable session resumes (issue 17). */
  decoder: Decoder<In>;
  /**
   * Bytes read from the connection before the session existed (past a
   * WebSocket handshake): decoded before the first read.
   */
  prelude: Uint8Array | undefined;
  /** Bytes read from the peer. */
  bytesIn = 0;
  // When the last frame arrived (or the connection opened), in ms since
  // EPOCH: a small integer, stored in place, where epoch milliseconds are a
  // boxed heap number per session (issue 19 §4).
  #lastSeen: number;
  readonly #conn: Deno.Conn;
  readonly #life: Life;
  readonly #inbound: ReadInto<In>;
  readonly #flow: Flow;
  readonly #liveness: { frameEnded(): void } | undefined;
  // In-flight I/O, awaited on close so no operation outlives the session.
  #reading: Promise<number | null> | undefined;
  // The loop; it ends at EOF, on a read error, or once the connection is
  // closed (a closing session keeps reading, see #discard).
  #loop: Promise<void> | undefined;

  constructor(
    conn: Deno.Conn,
    decoder: Decoder<In>,
    life: Life,
    inbound: ReadInto<In>,
    flow: Flow,
    liveness: { frameEnded(): void } | undefined,
    connectedAt: number,
  ) {
    this.#conn = conn;
    this.decoder = decoder;
    this.#life = life;
    this.#inbound = inbound;
    this.#flow = flow;
    this.#liveness = liveness;
    this.#lastSeen = connectedAt - EPOCH;
  }

  /** When the last frame arrived (or the connection opened), epoch ms. */
  get lastSeen(): number {
    return EPOCH + this.#lastSeen;
  }

  /** The loop, once started. */
  get loop(): Promise<void> | undefined {
    return this.#loop;
  }

  /** The read in flight, if any. */
  get reading(): Promise<number | null> | undefined {
    return this.#reading;
  }

  /** Starts the loop, in a microtask (after the session is set up). */
  start(): void {
    queueMicrotask(() => {
      this.#loop = this.#run();
    });
  }

  async #run(): Promise<void> {
    // Everything this session's handlers do, across awaits, is on its
    // behalf: see _flow_control.ts. A busy session's loop runs in that
    // context for good; a quiet one's enters it only while it hands over
    // what it read, because every await made inside the context pins a
    // context frame of its own (~0.4 KB) for as long as the read is pending.
    let inContext = false;
    const life = this.#life;
    const inbound = this.#inbound;
    const opening = producerContext.run(this.#flow, start, inbound);
    // onOpen may ask the peer something first (session.request()): reading
    // starts once it does, so that the reply can arrive.
    if (opening !== undefined) {
      await (inbound.correlated ? inbound.waitFor(opening) : opening);
    }
    const idle = new Uint8Array(READ_BUFFER_IDLE);
    let buffer = idle;
    let smallReads = 0;
    // Reads in a row that arrived within QUICK_READ_MS of being issued.
    let quickReads = 0;
    let issued = 0;
    while (life.state === "open") {
      // Flow control: a target we sent to is over its high-water mark.
      if (this.#flow.blocked) {
        const since = performance.now();
        this.#flow.pauses++;
        await this.#flow.unblocked();
        this.#flow.pausedMs += performance.now() - since;
        if (life.state !== "open") break;
      }
      let n: number | null;
      try {
        if (this.prelude !== undefined) {
          const prelude = this.prelude;
          this.prelude = undefined;
          if (prelude.byteLength > buffer.byteLength) {
            buffer = new Uint8Array(prelude.byteLength);
          }
          buffer.set(prelude);
          n = prelude.byteLength;
        } else {
          issued = Date.now() - EPOCH;
          n = await (this.#reading = this.#conn.read(buffer));
        }
        this.#reading = undefined;
      } catch (error) {
        this.#reading = undefined;
        if (life.state === "open") life.close(readFailure(error), error);
        return;
      }
      if (n === null) {
        // The peer half-closed: its last message (a line without "\n") or a
        // cut-off frame's error, then answer what it sent and close our side.
        const ended = inContext
          ? this.#decode(undefined)
          : producerContext.run(this.#flow, Reader.#decodeIn, this, undefined);
        if (!ended) return;
        if (inbound.handlerBusy !== undefined) await inbound.handlerBusy;
        life.close(CloseReason.Eof, undefined);
        return;
      }
      // Since EPOCH (see #lastSeen): the waiting loop's frame holds both
      // times while the next read is pending. Date.now(), not
      // performance.now(): half the cost here, once per read.
      const now = Date.now() - EPOCH;
      if (now - issued >= QUICK_READ_MS) quickReads = 0;
      else if (quickReads < QUICK_READS && ++quickReads === QUICK_READS) {
        if (!inContext) producerContext.enterWith(this.#flow);
        inContext = true;
      }
      this.bytesIn += n;
      const pause = inbound.throttleBytes(n);
      if (pause !== undefined) {
        const decoder = this.decoder;
        await pause;
        // A resumable session resumed meanwhile (issue 17): these bytes came
        // from the old connection, after the count the peer was given, so
        // the peer sends their messages again.
        if (this.decoder !== decoder) continue;
      }
      if (life.state !== "open") break;
      const frames = inbound.framesIn;
      const chunk = buffer.subarray(0, n);
      const decoded = inContext
        ? this.#decode(chunk)
        : producerContext.run(this.#flow, Reader.#decodeIn, this, chunk);
      if (!decoded) break;
      if (inbound.framesIn !== frames || this.decoder.buffered === 0) {
        this.#lastSeen = Date.now() - EPOCH;
        this.#liveness?.frameEnded();
      }
      const busy = inbound.handlerBusy;
      if (busy !== undefined && !inbound.awaitingReplies()) {
        // A handler that asks the peer something later, after other awaits,
        // lets reading go on from then (see Inbound.waitFor).
        await (inbound.correlated ? inbound.waitFor(busy) : busy);
      }
      // Grow while reads fill the buffer; wait in the tiny one unless busy;
      // shrink back once traffic is small.
      if (n === buffer.length) {
        if (buffer === idle) buffer = new Uint8Array(READ_BUFFER_MIN);
        else if (n < READ_BUFFER_MAX) buffer = new Uint8Array(n * 2);
        smallReads = 0;
      } else if (quickReads < QUICK_READS) {
        buffer = idle;
        smallReads = 0;
      } else if (buffer.length > READ_BUFFER_MIN && n < READ_BUFFER_MIN) {
        if (++smallReads >= 16) {
          buffer = new Uint8Array(READ_BUFFER_MIN);
          smallReads = 0;
        }
      }
    }
    await this.#discard(buffer);
  }

  // A closing session goes on reading, and discards what it reads, until the
  // peer ends its side or the connection is closed; see _linger.ts.
  async #discard(buffer: Uint8Array): Promise<void> {
    while (this.#life.state === "closing") {
      try {
        const n = await (this.#reading = this.#conn.read(buffer));
        if (n === null) return;
        this.bytesIn += n;
      } catch {
        return;
      } finally {
        this.#reading = undefined;
      }
    }
  }

  // Decodes a chunk, or ends the stream (undefined), handing the messages
  // to the pipeline; false once decoding has failed (the session closes).
  #decode(chunk: Uint8Array | undefined): boolean {
    try {
      if (chunk === undefined) this.decoder.end?.(this.#inbound.emit);
      else this.decoder.decode(chunk, this.#inbound.emit);
      return true;
    } catch (error) {
      this.#decodeFailed(error);
      return false;
    }
  }

  // One function for every session (no closure per read).
  static #decodeIn(
    // deno-lint-ignore no-explicit-any
    reader: Reader<any>,
    chunk: Uint8Array | undefined,
  ): boolean {
    return reader.#decode(chunk);
  }

  #decodeFailed(error: unknown): void {
    const life = this.#life;
    if (life.state !== "open") return;
    life.report(error);
    life.close(
      error instanceof FrameTooLargeError
        ? CloseReason.FrameTooLarge
        : error instanceof TruncatedFrameError
        ? CloseReason.TruncatedFrame
        : CloseReason.DecodeError,
      error,
    );
  }
}

function start(
  inbound: { start(): Promise<void> | undefined },
): Promise<void> | undefined {
  return inbound.start();
}

function readFailure(error: unknown): string {
  return error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.ConnectionAborted ||
      error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.UnexpectedEof
    ? CloseReason.Reset
    : CloseReason.Error;
}
