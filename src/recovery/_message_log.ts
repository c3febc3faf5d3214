// Package-internal: the bounded log of the messages one resumable session
// wrote (issue 17), counted in messages, so that after a dropped connection
// the peer says how many whole messages it took and the rest go out again.
//
// It holds references, never copies, of shared bytes: a broadcast's frame
// sits once in a shared segment (_shared_segment.ts) and every member's log
// points at the same `Uint8Array`, as its outbound queue does. Only private
// frames (`send()` encodes into a pooled chunk that is reused once written)
// are copied, into blocks of BLOCK bytes (one allocation per block, not per
// message). Entries are kept in a ring of two plain arrays (the bases, and
// four small integers per entry), on the JavaScript heap: recording a
// message allocates nothing once the ring has grown, and a session's log
// costs two small arrays, not five typed arrays with their own buffers.
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
 * The ring is allocated with the first message, this large, and doubles
 * while needed (at most to the message bound). A busy member needs few
 * entries (one per flush pass, hundreds of messages each); one that gets a
 * message per pass grows to as many as it keeps.
 */
const RING_MIN = 8;
// Per entry in #ranges: start, end, messages, and 1 when its messages can
// be found in frameEnds.
const START = 0;
const END = 1;
const FRAMES = 2;
const SPLIT = 3;
const STRIDE = 4;

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
  // The ring: entry i (0 = oldest) is slot (#head + i) & #mask, its bytes
  // #bases[slot] and its numbers #ranges[slot * STRIDE + START...]. Only
  // small integers go in #ranges, so V8 keeps it an array of them (no
  // boxed numbers).
  #bases: (Uint8Array | undefined)[] = [];
  #ranges: number[] = [];
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
    const ranges = this.#ranges;
    const i = at * STRIDE;
    ranges[i + START] = start;
    ranges[i + END] = end;
    ranges[i + FRAMES] = frames;
    ranges[i + SPLIT] = split;
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
    const ranges = this.#ranges;
    let i = this.#foundIndex;
    if (i < this.#entries && this.#foundSkip > 0) {
      // Resuming inside a range: from the message's first byte on.
      const at = (this.#head + i) & mask;
      push(
        this.#bases[at]!,
        this.#foundOffset,
        ranges[at * STRIDE + END]!,
        ranges[at * STRIDE + FRAMES]! - this.#foundSkip,
      );
      i++;
    }
    for (; i < this.#entries; i++) {
      const at = (this.#head + i) & mask;
      push(
        this.#bases[at]!,
        ranges[at * STRIDE + START]!,
        ranges[at * STRIDE + END]!,
        ranges[at * STRIDE + FRAMES]!,
      );
    }
    return true;
  }

  /** Forgets everything (the session ended). */
  clear(): void {
    this.#bases = [];
    this.#ranges = [];
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
    const ranges = this.#ranges;
    this.#foundSkip = 0;
    for (let i = this.#entries; i > 0; i--) {
      if (at === position) {
        this.#foundIndex = i;
        return true;
      }
      const entry = (this.#head + i - 1) & mask;
      at -= ranges[entry * STRIDE + FRAMES]!;
      if (at < position) {
        if (ranges[entry * STRIDE + SPLIT] !== 1) return false;
        const skip = position - at;
        const ends = frameEnds.get(this.#bases[entry]!);
        if (ends === undefined) return false;
        // The first frame end after the entry's start ends its first message.
        const start = ranges[entry * STRIDE + START]!;
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
    const ranges = this.#ranges;
    while (
      this.#entries > 0 &&
      (this.#held > this.#maxMessages || this.#bytes > this.#maxBytes)
    ) {
      const at = this.#head;
      const i = at * STRIDE;
      this.#held -= ranges[i + FRAMES]!;
      this.#bytes -= ranges[i + END]! - ranges[i + START]!;
      // Let go of the bytes at once (the segment may be held by nothing
      // else).
      this.#bases[at] = undefined;
      this.#head = (at + 1) & mask;
      this.#entries--;
    }
  }

  #grow(): void {
    const size = this.#mask + 1;
    const next = Math.max(RING_MIN, size * 2);
    // Filled, not holey: V8 keeps packed arrays of one kind.
    const bases: (Uint8Array | undefined)[] = new Array(next).fill(undefined);
    const ranges: number[] = new Array(next * STRIDE).fill(0);
    const old = this.#ranges;
    for (let i = 0; i < this.#entries; i++) {
      const at = (this.#head + i) & this.#mask;
      bases[i] = this.#bases[at];
      for (let k = 0; k < STRIDE; k++) {
        ranges[i * STRIDE + k] = old[at * STRIDE + k]!;
      }
    }
    this.#bases = bases;
    this.#ranges = ranges;
    this.#mask = next - 1;
    this.#head = 0;
  }
}
