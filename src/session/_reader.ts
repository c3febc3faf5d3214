// Package-internal: a session's read loop. It reads into a buffer that
// starts small (idle sessions stay cheap), doubles while reads fill it and
// shrinks back once traffic is small; decodes what it reads into the
// inbound pipeline; pauses while flow control, a handler or a rate limit
// holds it back; and, once the session is closing, goes on reading and
// discarding until the peer ends its side (see _linger.ts).
import type { Decoder } from "../codec/codec.ts";
import { CloseReason } from "../close_reason.ts";
import { FrameTooLargeError, TruncatedFrameError } from "../errors.ts";
import { type Flow, producerContext } from "./_flow_control.ts";
import type { ClosingReader, Life } from "./_lifecycle.ts";
import { READ_BUFFER_MAX, READ_BUFFER_MIN } from "../defaults.ts";

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
  /** When the last frame arrived (or the connection opened), epoch ms. */
  lastSeen: number;
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
    this.lastSeen = connectedAt;
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
    // behalf: see _flow_control.ts.
    producerContext.enterWith(this.#flow);
    const life = this.#life;
    const inbound = this.#inbound;
    const opening = inbound.start();
    if (opening !== undefined) await opening;
    let buffer = new Uint8Array(READ_BUFFER_MIN);
    let smallReads = 0;
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
        try {
          this.decoder.end?.(inbound.emit);
        } catch (error) {
          this.#decodeFailed(error);
          return;
        }
        if (inbound.handlerBusy !== undefined) await inbound.handlerBusy;
        life.close(CloseReason.Eof, undefined);
        return;
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
      try {
        this.decoder.decode(buffer.subarray(0, n), inbound.emit);
      } catch (error) {
        this.#decodeFailed(error);
        break;
      }
      if (inbound.framesIn !== frames || this.decoder.buffered === 0) {
        this.lastSeen = Date.now();
        this.#liveness?.frameEnded();
      }
      if (inbound.handlerBusy !== undefined && !inbound.awaitingReplies()) {
        await inbound.handlerBusy;
      }
      // Grow while reads fill the buffer; shrink back once traffic is small.
      if (n === buffer.length && n < READ_BUFFER_MAX) {
        buffer = new Uint8Array(n * 2);
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

function readFailure(error: unknown): string {
  return error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.ConnectionAborted ||
      error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.UnexpectedEof
    ? CloseReason.Reset
    : CloseReason.Error;
}
