// Package-internal: the bounded log of the messages one resumable session
// wrote (issue 17), counted in messages, so that after a dropped connection
// the peer says how many whole messages it took and the rest go out again.
//
// It holds references, never copies, of shared bytes: a broadcast's frame
// sits once in a shared segment (_shared_segment.ts) and every member's log
// points at the same `Uint8Array`, as its outbound queue does. Only private
// frames (`send()` encodes into a pooled chunk that is reused once written)
// are copied, into blocks of BLOCK bytes (one allocation per block, not per
// message). Entries are kept in a ring of parallel arrays: recording a
// message allocates nothing once the ring has grown.
//
// It is fed by the outbound queue once per shared range, not once per
// message: a pass's broadcasts to one member are one range of one segment
// (the queue coalesces them anyway), so a fan-out to many resumable members
// costs each one entry per pass. Where each message of such a range starts
// is found, on a resume only, in the segment's frame ends (`frameEnds`).
// Trimming drops whole entries, so the log keeps at most maxMessages (and
// maxBytes), sometimes fewer.
//
// An entry of several frames recorded at once (frames that arrived from
// another cluster node) can't be split: a position inside one is refused
// like a trimmed log (never a partial replay).
import { frameEnds } from "../_shared_segment.ts";
import type { OutboundLog } from "../session/_outbound_log.ts";

/** Private frames are copied into blocks of this many bytes. */
const BLOCK = 16384;
/**
 * The ring is allocated with the first message, this large, and doubles up
 * to the message bound (a busy member's log rarely grows past it: one
 * entry per flush pass).
 */
const RING_MIN = 64;

const EMPTY_INT = new Int32Array(0);
const EMPTY_BYTES = new Uint8Array(0);

/** What a log is bounded by. */
export interface MessageLogLimits {
  /** The most messages kept. */
  readonly maxMessages: number;
  /** The most bytes kept (what the entries reference). */
  readonly maxBytes: number;
}

/** One session's written messages; see the file comment. */
export class MessageLog implements OutboundLog {
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  // The ring: entry i (0 = oldest) is at (#head + i) & #mask.
  #bases: (Uint8Array | undefined)[] = [];
  #starts = EMPTY_INT;
  #ends = EMPTY_INT;
  #frames = EMPTY_INT;
  // 1: the entry's messages can be found in frameEnds.
  #split = EMPTY_BYTES;
  // -1: nothing allocated yet.
  #mask = -1;
  #head = 0;
  #entries = 0;
  // Messages logged so far (the position after the newest), and in the ring.
  #total = 0;
  #held = 0;
  #bytes = 0;
  #block: Uint8Array | undefined;
  #blockFill = 0;

  constructor(limits: MessageLogLimits) {
    this.#maxMessages = limits.maxMessages;
    this.#maxBytes = limits.maxBytes;
  }

  /** Messages written so far: the position after the newest. */
  get total(): number {
    return this.#total;
  }

  /** The oldest position the log can still replay from. */
  get first(): number {
    return this.#total - this.#held;
  }

  /** Bytes the log references. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Logs `base[start, end)` (`frames` messages) by reference: the bytes
   * must never change afterwards.
   */
  record(base: Uint8Array, start: number, end: number, frames = 1): void {
    // A range of a segment's frames can be split at any message (see
    // frameEnds); other bytes only as a whole.
    this.#add(base, start, end, frames, frameEnds.has(base) ? 1 : 0);
  }

  #add(
    base: Uint8Array,
    start: number,
    end: number,
    frames: number,
    split: number,
  ): void {
    if (this.#entries > this.#mask) this.#grow();
    const at = (this.#head + this.#entries) & this.#mask;
    this.#bases[at] = base;
    this.#starts[at] = start;
    this.#ends[at] = end;
    this.#frames[at] = frames;
    this.#split[at] = split;
    this.#entries++;
    this.#total += frames;
    this.#held += frames;
    this.#bytes += end - start;
    if (this.#held > this.#maxMessages || this.#bytes > this.#maxBytes) {
      this.#trim();
    }
  }

  /** Logs a copy of `bytes[start, end)`, one message the caller may reuse. */
  recordCopy(bytes: Uint8Array, start: number, end: number): void {
    const size = end - start;
    if (size > BLOCK / 4) {
      this.#add(bytes.slice(start, end), 0, size, 1, 0);
      return;
    }
    let block = this.#block;
    if (block === undefined || block.length - this.#blockFill < size) {
      block = this.#block = new Uint8Array(BLOCK);
      this.#blockFill = 0;
    }
    const at = this.#blockFill;
    block.set(bytes.subarray(start, end), at);
    this.#blockFill = at + size;
    this.#add(block, at, at + size, 1, 0);
  }

  /**
   * Whether everything from position `from` on can be replayed: not
   * trimmed, not from the future, not inside a multi-frame entry.
   */
  canReplayFrom(from: number): boolean {
    if (!Number.isSafeInteger(from) || from < this.first) return false;
    if (from > this.#total) return false;
    return this.#find(from);
  }

  /**
   * Hands every entry from position `from` on to `push`, oldest first.
   *
   * @returns `false` (and pushes nothing) when `canReplayFrom(from)` isn't.
   */
  replay(
    from: number,
    push: (
      base: Uint8Array,
      start: number,
      end: number,
      frames: number,
    ) => void,
  ): boolean {
    if (!this.canReplayFrom(from)) return false;
    const mask = this.#mask;
    let i = this.#foundIndex;
    if (i < this.#entries && this.#foundSkip > 0) {
      // Resuming inside a range: from the message's first byte on.
      const at = (this.#head + i) & mask;
      push(
        this.#bases[at]!,
        this.#foundOffset,
        this.#ends[at]!,
        this.#frames[at]! - this.#foundSkip,
      );
      i++;
    }
    for (; i < this.#entries; i++) {
      const at = (this.#head + i) & mask;
      push(
        this.#bases[at]!,
        this.#starts[at]!,
        this.#ends[at]!,
        this.#frames[at]!,
      );
    }
    return true;
  }

  /** Forgets everything (the session ended). */
  clear(): void {
    this.#bases = [];
    this.#starts = EMPTY_INT;
    this.#ends = EMPTY_INT;
    this.#frames = EMPTY_INT;
    this.#split = EMPTY_BYTES;
    this.#mask = -1;
    this.#head = 0;
    this.#entries = 0;
    this.#held = 0;
    this.#bytes = 0;
    this.#block = undefined;
  }

  // Set by #find(): the entry (0 = oldest) `position` falls in, how many of
  // its messages come before it, and where it starts in the entry's bytes.
  #foundIndex = 0;
  #foundSkip = 0;
  #foundOffset = 0;

  // Finds `position` (see the fields above); `false` when it falls inside
  // an entry that can't be split. Replays start near the newest end.
  #find(position: number): boolean {
    let at = this.#total;
    const mask = this.#mask;
    this.#foundSkip = 0;
    for (let i = this.#entries; i > 0; i--) {
      if (at === position) {
        this.#foundIndex = i;
        return true;
      }
      const entry = (this.#head + i - 1) & mask;
      const frames = this.#frames[entry]!;
      at -= frames;
      if (at < position) {
        if (this.#split[entry] !== 1) return false;
        const skip = position - at;
        const ends = frameEnds.get(this.#bases[entry]!);
        if (ends === undefined) return false;
        // The first frame end after the entry's start ends its first message.
        const start = this.#starts[entry]!;
        let lo = 0;
        let hi = ends.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (ends[mid]! <= start) lo = mid + 1;
          else hi = mid;
        }
        const offset = ends[lo + skip - 1];
        if (offset === undefined) return false;
        this.#foundIndex = i - 1;
        this.#foundSkip = skip;
        this.#foundOffset = offset;
        return true;
      }
    }
    this.#foundIndex = 0;
    return at === position;
  }

  #trim(): void {
    const mask = this.#mask;
    while (
      this.#entries > 0 &&
      (this.#held > this.#maxMessages || this.#bytes > this.#maxBytes)
    ) {
      const at = this.#head;
      this.#held -= this.#frames[at]!;
      this.#bytes -= this.#ends[at]! - this.#starts[at]!;
      this.#bases[at] = undefined;
      this.#head = (at + 1) & mask;
      this.#entries--;
    }
  }

  #grow(): void {
    const size = this.#mask + 1;
    const next = Math.max(RING_MIN, size * 2);
    const bases: (Uint8Array | undefined)[] = new Array(next);
    const starts = new Int32Array(next);
    const ends = new Int32Array(next);
    const frames = new Int32Array(next);
    const split = new Uint8Array(next);
    for (let i = 0; i < this.#entries; i++) {
      const at = (this.#head + i) & this.#mask;
      bases[i] = this.#bases[at];
      starts[i] = this.#starts[at]!;
      ends[i] = this.#ends[at]!;
      frames[i] = this.#frames[at]!;
      split[i] = this.#split[at]!;
    }
    this.#bases = bases;
    this.#starts = starts;
    this.#ends = ends;
    this.#frames = frames;
    this.#split = split;
    this.#mask = next - 1;
    this.#head = 0;
  }
}
