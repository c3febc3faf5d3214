// Package-internal: the bytes waiting to be written to one connection, in
// order, with no socket in sight (so it is tested on its own).
//
// Two kinds of bytes arrive:
// - private frames (`send()`): small ones are encoded or copied into a pooled
//   chunk that fills up as they come, large ones are kept by reference;
// - shared ranges (`broadcast()`, `sendFrame()`): views of bytes that many
//   queues reference at once. A range that continues the previous one in the
//   same buffer just extends it, so a turn's broadcasts cost each receiver a
//   few field updates and no copy.
//
// `nextWrite()` hands out one write at a time: a single entry as it is (no
// copy), or several small ones gathered into one pooled chunk, so a session
// makes at most one write per flush pass.
import { giveChunk, takeChunk } from "./_chunk_pool.ts";
import type { OutboundLog } from "./_outbound_log.ts";
import type { RunFollower, RunSleeper, SharedRun } from "./_shared_run.ts";

/**
 * Frames smaller than this are copied into the private chunk; larger ones
 * are queued by reference and written as they are.
 */
export const COPY_BELOW = 8192;
/** Private chunks start this small and double while they fill up... */
const CHUNK_MIN = 1024;
/** ...up to this size, which is also the most one gathered write holds. */
const CHUNK_MAX = 65536;
/** An entry at least this large is written alone rather than gathered. */
const GATHER_BELOW = 16384;

const EMPTY = new Uint8Array(0);

interface FlushWaiter {
  target: number;
  resolve: (written: boolean) => void;
}

/** One connection's outbound bytes; see the file comment. */
export class OutboundQueue implements RunFollower {
  // Sealed entries, in order, from #head.
  #entries: Uint8Array[] = [];
  #head = 0;
  // Pooled buffers behind sealed private chunks, in order: given back once
  // written.
  #pooled: ArrayBuffer[] = [];
  // The open private chunk, being filled from #tailFill.
  #tail: Uint8Array | undefined;
  #tailFill = 0;
  #chunkSize = CHUNK_MIN;
  // The open shared range: #sharedBase[#sharedStart, #sharedEnd).
  #sharedBase: Uint8Array | undefined;
  #sharedStart = 0;
  #sharedEnd = 0;
  // Messages in the open shared range, and whether they go to the log.
  #sharedFrames = 0;
  #sharedLogged = false;
  /**
   * A resumable session's message log (issue 17): each shared range of
   * logged messages is recorded once (not once per message: a pass's
   * broadcasts to this connection are one range). A range sealed while
   * frames are being queued is only noted in #unlogged, and recorded when
   * a write is handed out or `sealForLog()` is called (the writer calls it
   * before it logs a private frame, so the log keeps the queue's order).
   * So the log is never called from the per-delivery path (pushShared()):
   * were it, V8 would inline the log's code into every broadcast's loop
   * over the members, and that loop, grown past its inlining budget, ran
   * 15-25% slower per delivery with recovery on.
   */
  log: OutboundLog | undefined;
  // Sealed logged ranges not recorded yet: base, start, end, frames.
  #unlogged: (Uint8Array | number)[] = [];
  // The run the open shared range follows (_shared_run.ts): the frames it
  // gained since the last #settle() are this queue's too. Every method
  // that reads or changes the queue settles first; one that changes it
  // leaves the run (a write doesn't: the range starts again at the run's
  // end, which may then be where it starts: an empty range).
  #run: SharedRun | undefined;
  // run.frames when last settled.
  #runFrames = 0;
  // The write handed out by nextWrite() and not yet completed, and the
  // pooled buffer behind it (a gathered or private chunk), if any.
  #inFlight: Uint8Array | undefined;
  #inFlightPooled: ArrayBuffer | undefined;

  #queued = 0;
  #enqueuedTotal = 0;
  #writtenTotal = 0;
  #frames = 0;
  #waiters: FlushWaiter[] | undefined;
  #dropped = false;

  /** Bytes queued or being written. */
  get queuedBytes(): number {
    if (this.#run !== undefined) this.#settle();
    return this.#queued;
  }

  /** Frames accepted. */
  get frames(): number {
    if (this.#run !== undefined) this.#settle();
    return this.#frames;
  }

  /** Bytes whose write has completed. */
  get writtenBytes(): number {
    return this.#writtenTotal;
  }

  /** Whether bytes are queued that no write has taken yet. */
  get hasPending(): boolean {
    if (this.#run !== undefined) this.#settle();
    return this.#queued > (this.#inFlight?.byteLength ?? 0);
  }

  /** Whether a write handed out by `nextWrite()` has not completed yet. */
  get writing(): boolean {
    return this.#inFlight !== undefined;
  }

  /** Whether `drop()` was called: nothing more will be written. */
  get dropped(): boolean {
    return this.#dropped;
  }

  /**
   * Whether it holds nothing at all: no bytes, no write in flight, no open
   * chunk or range, no waiter, no log. Only then may `reset()` recycle it.
   */
  get empty(): boolean {
    if (this.#run !== undefined) return false;
    return this.#queued === 0 && this.#inFlight === undefined &&
      this.#tail === undefined && this.#sharedBase === undefined &&
      this.#head === this.#entries.length && this.#pooled.length === 0 &&
      this.#waiters === undefined && !this.#dropped && this.log === undefined;
  }

  /**
   * Makes an `empty` queue as good as new (its counters at zero), for
   * another session or a later wake-up; its arrays are kept.
   */
  reset(): void {
    this.#entries.length = 0;
    this.#head = 0;
    this.#chunkSize = CHUNK_MIN;
    this.#sharedStart = 0;
    this.#sharedEnd = 0;
    this.#sharedFrames = 0;
    this.#sharedLogged = false;
    this.#enqueuedTotal = 0;
    this.#writtenTotal = 0;
    this.#frames = 0;
  }

  /**
   * The open private chunk, for encoding a frame straight into it at
   * `privateFill` (no allocation); `commitPrivate()` then counts it.
   */
  privateChunk(): Uint8Array {
    if (this.#run !== undefined) this.#leaveRun();
    if (this.#sharedBase !== undefined) this.#sealShared();
    return this.#tail ?? this.#openTail(0);
  }

  /** Where the next frame goes in `privateChunk()`. */
  get privateFill(): number {
    return this.#tailFill;
  }

  /** Counts the frame just encoded into `privateChunk()`, ending at `end`. */
  commitPrivate(end: number): void {
    const size = end - this.#tailFill;
    this.#tailFill = end;
    this.#count(size);
  }

  /**
   * Queues a frame only this connection gets. Small frames are copied (the
   * caller may reuse its bytes), large ones are kept by reference.
   */
  pushPrivate(frame: Uint8Array): void {
    if (this.#run !== undefined) this.#leaveRun();
    const size = frame.byteLength;
    if (size < COPY_BELOW) {
      if (this.#sharedBase !== undefined) this.#sealShared();
      let tail = this.#tail;
      if (tail === undefined || tail.length - this.#tailFill < size) {
        tail = this.#openTail(size);
      }
      tail.set(frame, this.#tailFill);
      this.#tailFill += size;
    } else {
      this.#sealOpen();
      this.#entries.push(frame);
    }
    this.#count(size);
  }

  /**
   * Queues `base[start, end)` (holding `frames` frames) by reference. The
   * bytes must never change afterwards. A range that starts where the open
   * one ends, in the same `base`, extends it.
   */
  pushShared(
    base: Uint8Array,
    start: number,
    end: number,
    frames = 1,
    logged = false,
  ): void {
    if (this.#run !== undefined) this.#leaveRun();
    if (
      this.#sharedBase === base && this.#sharedEnd === start &&
      this.#sharedLogged === logged
    ) {
      this.#sharedEnd = end;
      this.#sharedFrames += frames;
    } else {
      this.#sealOpen();
      this.#sharedBase = base;
      this.#sharedStart = start;
      this.#sharedEnd = end;
      this.#sharedFrames = frames;
      this.#sharedLogged = logged;
    }
    this.#count(end - start, frames);
  }

  /**
   * Records every shared range queued so far in the log now (before a
   * private frame is logged, before a replay).
   */
  sealForLog(): void {
    if (this.#run !== undefined) this.#leaveRun();
    if (this.#sharedBase !== undefined) this.#sealShared();
    if (this.#unlogged.length > 0) this.#record();
  }

  /**
   * The next bytes to write, or `undefined` when nothing is pending or a
   * write is already in flight. Call `completed()` once they are written.
   */
  nextWrite(): Uint8Array | undefined {
    if (this.#inFlight !== undefined || this.#dropped) return undefined;
    if (this.#run !== undefined) {
      if (this.#head === this.#entries.length) {
        // Following a run: write what it gave so far, and keep following.
        this.#settle();
        const start = this.#sharedStart;
        const end = this.#sharedEnd;
        if (start === end) return undefined;
        this.#sharedStart = end;
        const write = this.#run.view(start, end);
        this.#inFlight = write;
        return write;
      }
      // Entries first (the range of the run before this one, when its
      // segment filled up): the range stays open behind them, following.
    } else if (
      this.#sharedBase !== undefined && this.#head === this.#entries.length
    ) {
      const base = this.#sharedBase;
      // A broadcast receiver's usual turn: one shared range and nothing
      // else, written as it is, without a trip through the entry list.
      this.#sharedBase = undefined;
      if (this.#unlogged.length > 0) this.#record();
      if (this.#sharedLogged) {
        // Recorded as sealForLog() would (a resumable session's log).
        this.log?.record(
          base,
          this.#sharedStart,
          this.#sharedEnd,
          this.#sharedFrames,
        );
      }
      const write = base.subarray(this.#sharedStart, this.#sharedEnd);
      this.#inFlight = write;
      return write;
    } else {
      this.#sealOpen();
    }
    // Whatever a write takes is in the log before it goes out.
    if (this.#unlogged.length > 0) this.#record();
    const entries = this.#entries;
    let head = this.#head;
    if (head === entries.length) return undefined;
    const first = entries[head]!;
    let write = first;
    let pooled: ArrayBuffer | undefined;
    let last = head + 1;
    if (first.byteLength < GATHER_BELOW) {
      // Gather the small entries that follow into one write.
      let total = first.byteLength;
      while (last < entries.length) {
        const size = entries[last]!.byteLength;
        if (size >= GATHER_BELOW || total + size > CHUNK_MAX) break;
        total += size;
        last++;
      }
      if (last > head + 1) {
        const gathered = takeChunk(total);
        let offset = 0;
        for (let i = head; i < last; i++) {
          const entry = entries[i]!;
          gathered.set(entry, offset);
          offset += entry.byteLength;
          this.#releaseIfPooled(entry);
        }
        write = gathered.subarray(0, total);
        pooled = gathered.buffer as ArrayBuffer;
      } else if (this.#pooled[0] === first.buffer) {
        pooled = this.#pooled.shift();
      }
    } else if (this.#pooled[0] === first.buffer) {
      pooled = this.#pooled.shift();
    }
    for (let i = head; i < last; i++) entries[i] = EMPTY;
    head = last;
    if (head === entries.length) {
      entries.length = 0;
      head = 0;
    } else if (head > 1024) {
      entries.splice(0, head);
      head = 0;
    }
    this.#head = head;
    this.#inFlight = write;
    this.#inFlightPooled = pooled;
    return write;
  }

  /** Reports that the write `nextWrite()` handed out is complete. */
  completed(): void {
    const write = this.#inFlight;
    if (write === undefined) return;
    this.#inFlight = undefined;
    const pooled = this.#inFlightPooled;
    this.#inFlightPooled = undefined;
    // After drop() the pooled buffer may still be in the kernel's hands
    // until now; from here on nobody uses it.
    if (pooled !== undefined) giveChunk(pooled);
    if (this.#dropped) return;
    this.#queued -= write.byteLength;
    this.#writtenTotal += write.byteLength;
    if (this.#waiters !== undefined) this.#wake();
  }

  /**
   * Resolves `true` once everything queued so far is written, `false` when
   * the queue is dropped first.
   */
  flushed(): Promise<boolean> {
    if (this.#run !== undefined) this.#settle();
    if (this.#writtenTotal >= this.#enqueuedTotal) return Promise.resolve(true);
    if (this.#dropped) return Promise.resolve(false);
    const { promise, resolve } = Promise.withResolvers<boolean>();
    (this.#waiters ??= []).push({ target: this.#enqueuedTotal, resolve });
    return promise;
  }

  /**
   * Forgets what no write has taken yet (a resumed session replays it from
   * its log); the write in flight, if any, completes as usual.
   */
  discardPending(): void {
    if (this.#dropped) return;
    if (this.#run !== undefined) this.#leaveRun();
    this.sealForLog();
    for (const buffer of this.#pooled) giveChunk(buffer);
    this.#pooled = [];
    this.#entries = [];
    this.#head = 0;
    const tail = this.#tail;
    if (tail !== undefined) giveChunk(tail.buffer as ArrayBuffer);
    this.#tail = undefined;
    this.#tailFill = 0;
    this.#sharedBase = undefined;
    const kept = this.#inFlight?.byteLength ?? 0;
    this.#enqueuedTotal -= this.#queued - kept;
    this.#queued = kept;
  }

  /** Forgets everything queued; waiting `flushed()` calls get `false`. */
  drop(): void {
    if (this.#dropped) return;
    if (this.#run !== undefined) this.#leaveRun();
    this.#dropped = true;
    this.#entries = [];
    this.#head = 0;
    this.#pooled = [];
    this.#tail = undefined;
    this.#tailFill = 0;
    this.#sharedBase = undefined;
    this.#queued = 0;
    const waiters = this.#waiters;
    this.#waiters = undefined;
    if (waiters !== undefined) {
      for (const waiter of waiters) waiter.resolve(false);
    }
  }

  /**
   * Follows `run` (_shared_run.ts): its later frames are this queue's too,
   * until the queue is changed any other way. Only a queue whose open
   * shared range is the run's latest frame, and that keeps no log, can.
   *
   * @returns Whether it follows it now.
   */
  follow(run: SharedRun): boolean {
    if (
      this.#sharedBase !== run.base || this.#sharedEnd !== run.end ||
      this.log !== undefined || this.#run !== undefined
    ) return false;
    this.#run = run;
    this.#runFrames = run.frames;
    return true;
  }

  /** Whether it follows a run. */
  get following(): boolean {
    return this.#run !== undefined;
  }

  /**
   * Leaves the run it follows, if any (its session is closing, or it is
   * quiet): what the run added so far stays queued.
   */
  leaveRun(): void {
    if (this.#run !== undefined) this.#leaveRun();
  }

  /** The run ended (see RunFollower). */
  runEnded(run: SharedRun): void {
    if (this.#run !== run) return;
    this.#settle();
    this.#unfollow();
  }

  /**
   * Has `sleeper` woken when the run it follows grows (it has nothing to
   * write until then); nothing when it follows none.
   */
  sleep(sleeper: RunSleeper): void {
    this.#run?.sleep(sleeper);
  }

  // Takes in the frames the run gained since the last look.
  #settle(): void {
    const run = this.#run!;
    const grown = run.end - this.#sharedEnd;
    if (grown === 0) return;
    const frames = run.frames - this.#runFrames;
    this.#runFrames = run.frames;
    this.#sharedEnd = run.end;
    this.#sharedFrames += frames;
    this.#count(grown, frames);
  }

  // Settles, then stops following: the run can't grow for its followers
  // alike any more, so it ends.
  #leaveRun(): void {
    const run = this.#run!;
    this.#settle();
    this.#unfollow();
    run.close();
  }

  #unfollow(): void {
    this.#run = undefined;
    // A range emptied by a write is no range.
    if (this.#sharedStart === this.#sharedEnd) this.#sharedBase = undefined;
  }

  #count(size: number, frames = 1): void {
    this.#queued += size;
    this.#enqueuedTotal += size;
    this.#frames += frames;
  }

  #wake(): void {
    const waiters = this.#waiters!;
    const written = this.#writtenTotal;
    let kept = 0;
    for (const waiter of waiters) {
      if (waiter.target <= written) waiter.resolve(true);
      else waiters[kept++] = waiter;
    }
    waiters.length = kept;
    if (kept === 0) this.#waiters = undefined;
  }

  #releaseIfPooled(entry: Uint8Array): void {
    if (this.#pooled[0] === entry.buffer) giveChunk(this.#pooled.shift()!);
  }

  // Makes room for `size` more bytes in the private chunk: grows it while it
  // is under CHUNK_MAX (so a turn's small frames stay in one write),
  // otherwise seals it and starts the next.
  #openTail(size: number): Uint8Array {
    const old = this.#tail;
    const fill = this.#tailFill;
    if (old !== undefined && fill + size <= CHUNK_MAX) {
      const grown = takeChunk(
        Math.min(CHUNK_MAX, Math.max(old.length * 2, fill + size)),
      );
      grown.set(old.subarray(0, fill));
      giveChunk(old.buffer as ArrayBuffer);
      this.#chunkSize = grown.length;
      return this.#tail = grown;
    }
    this.#sealTail();
    const tail = takeChunk(Math.max(size, this.#chunkSize));
    this.#tail = tail;
    this.#tailFill = 0;
    return tail;
  }

  #sealOpen(): void {
    if (this.#sharedBase !== undefined) this.#sealShared();
    else if (this.#tail !== undefined) this.#sealTail();
  }

  #sealShared(): void {
    const base = this.#sharedBase!;
    this.#sharedBase = undefined;
    this.#entries.push(base.subarray(this.#sharedStart, this.#sharedEnd));
    if (this.#sharedLogged && this.log !== undefined) {
      // Recorded later, off the per-delivery path (see `log`).
      this.#unlogged.push(
        base,
        this.#sharedStart,
        this.#sharedEnd,
        this.#sharedFrames,
      );
    }
  }

  // Hands the ranges noted in #unlogged to the log, in order.
  #record(): void {
    const unlogged = this.#unlogged;
    const log = this.log;
    for (let i = 0; log !== undefined && i < unlogged.length; i += 4) {
      log.record(
        unlogged[i] as Uint8Array,
        unlogged[i + 1] as number,
        unlogged[i + 2] as number,
        unlogged[i + 3] as number,
      );
    }
    unlogged.length = 0;
  }

  #sealTail(): void {
    const tail = this.#tail;
    if (tail === undefined) return;
    this.#tail = undefined;
    if (this.#tailFill > 0) {
      this.#entries.push(tail.subarray(0, this.#tailFill));
      this.#pooled.push(tail.buffer as ArrayBuffer);
    } else {
      giveChunk(tail.buffer as ArrayBuffer);
    }
    // A chunk that stayed mostly empty makes the next one smaller.
    if (this.#tailFill * 4 < tail.length) {
      this.#chunkSize = Math.max(CHUNK_MIN, this.#chunkSize >> 1);
    }
    this.#tailFill = 0;
  }
}

// Queues given back by sessions gone quiet (see Writer), handed to the next
// session that sends: a quiet session holds no queue, and waking one up
// allocates none while any is free. Bounded.
const freeQueues: OutboundQueue[] = [];
const FREE_QUEUES_MAX = 1024;

/** A queue with nothing in it: a recycled one, or a new one. */
export function takeQueue(): OutboundQueue {
  return freeQueues.pop() ?? new OutboundQueue();
}

/** Recycles a queue that is `empty`; the caller must not use it any more. */
export function giveQueue(queue: OutboundQueue): void {
  queue.reset();
  if (freeQueues.length < FREE_QUEUES_MAX) freeQueues.push(queue);
}
