// Package-internal: where a broadcast's frame is encoded, once, for all its
// receivers. Frames of one channel (a room, or the whole manager) go one
// after the other into the same segment, so every receiver that gets them
// all holds one growing view of it (see OutboundQueue's shared ranges) and
// writes it with no copy of its own.
//
// A segment outlives the flush pass while its channel keeps broadcasting:
// a receiver whose write was still in flight at the pass then finds the
// next passes' frames right after the ones it already holds, so they still
// leave in one range (with a segment per pass, its queue gathered them into
// a copy of its own). The segment is let go after many passes in a row in
// which the channel broadcast nothing (passes that only write what is
// queued, or other rooms', come and go while it is busy): the writes still
// reference it, nothing else does, and an idle room keeps no buffer. Those
// are passes that run anyway: a quiet process is not kept awake to let
// segments go, so the last ones it used (one per channel, at most 64 KiB)
// wait for its next writes. The next segment is sized by what the last one
// held; one that filled up is followed by one twice its size.
import type { Codec } from "./codec/codec.ts";
import { atNextPassEnd, atPassEnd } from "./session/_flush_scheduler.ts";
import { resumableSessions } from "./session/_outbound_log.ts";
import type { SharedRun } from "./session/_shared_run.ts";

/** Segments hold at least this much... */
const SEGMENT_MIN = 1024;
/** ...and at most this much; larger frames are shared as they are. */
const SEGMENT_MAX = 65536;
/** Passes in a row without a frame after which a segment is let go. */
const IDLE_PASSES = 64;
/** Runs in a row that may end unused before runs are only tried now and then. */
const UNUSED_RUNS_MAX = 4;
/** How often a channel whose runs go unused tries one (every Nth broadcast). */
const RUN_PROBE = 16;

/**
 * Where each frame written into a segment ends, by segment: a resumable
 * session's log (src/recovery/_message_log.ts) keeps one range per segment
 * for a pass's broadcasts, not one entry per message, and finds a message
 * inside it here, on a resume. One array per segment, one push per frame
 * (per broadcast, not per receiver).
 */
export const frameEnds: WeakMap<Uint8Array, number[]> = new WeakMap();

/** Encodes frames into shared segments; see the file comment. */
export class SegmentWriter {
  #bytes: Uint8Array | undefined;
  #fill = 0;
  // Whether a frame went in since the last pass end, and the passes in a
  // row without one.
  #used = false;
  #idle = 0;
  #size = SEGMENT_MIN;
  #ends: number[] | undefined;
  readonly #passEnd = () => {
    if (this.#used) {
      this.#used = false;
      this.#idle = 0;
    }
    if (++this.#idle < IDLE_PASSES) {
      // Keep the segment; look again at the next pass that runs anyway.
      atNextPassEnd(this.#passEnd);
      return;
    }
    this.#idle = 0;
    // The channel's run ends with its segment (its followers let go).
    this.endRun();
    // Size the next segment for what this one held (rounded up to a power
    // of two, within bounds).
    let size = SEGMENT_MIN;
    while (size < this.#fill && size < SEGMENT_MAX) size *= 2;
    this.#size = size;
    this.#bytes = undefined;
    this.#ends = undefined;
    this.#fill = 0;
  };

  /** The bytes the last `write()` encoded into; valid until the next write. */
  base: Uint8Array = new Uint8Array(0);
  /** Where the last frame starts in `base`. */
  start = 0;
  /** Where the last frame ends in `base`. */
  end = 0;
  /**
   * The codec of the last `write()`, for a caller that hands the same frame
   * on (the cluster publishes what a room's members got); whoever reads it
   * clears it first, so that a stale frame is never taken for a new one.
   */
  // deno-lint-ignore no-explicit-any
  codec: Codec<any, any> | undefined;

  /**
   * The run of the channel's latest broadcast, which the next one may
   * extend instead of visiting every receiver (src/session/_shared_run.ts).
   */
  run: SharedRun | undefined;
  // Runs in a row that ended without growing (the receivers got something
  // else in between: broadcasts alternating between channels with the same
  // members, join storms), and the broadcasts made without a run since.
  // Past UNUSED_RUNS_MAX, a run is tried every RUN_PROBE broadcasts only:
  // an unused run costs each receiver a follow and an unfollow.
  #unusedRuns = 0;
  #withoutRun = 0;

  /** Runs in a row that ended without growing. */
  get unusedRuns(): number {
    return this.#unusedRuns;
  }

  /** Whether the next broadcast should start a run (see #unusedRuns). */
  wantsRun(): boolean {
    return this.#unusedRuns < UNUSED_RUNS_MAX ||
      ++this.#withoutRun % RUN_PROBE === 0;
  }

  /** Notes how the channel's latest run did: it grew or not. */
  runUsed(grew: boolean): void {
    this.#unusedRuns = grew ? 0 : this.#unusedRuns + 1;
  }

  /** Ends the channel's run: its receivers changed. */
  endRun(): void {
    const run = this.run;
    if (run === undefined) return;
    run.close();
    this.run = undefined;
  }

  /**
   * Encodes `message` with `codec`; the frame is then
   * `base[start, end)`. The bytes never change afterwards.
   *
   * @throws {TypeError} When the codec cannot encode the message.
   */
  write<Out>(codec: Codec<unknown, Out>, message: Out): void {
    this.codec = codec;
    if (codec.encodeInto !== undefined) {
      const bytes = this.#current() ?? this.#open(0);
      const end = codec.encodeInto(message, bytes, this.#fill);
      if (end >= 0) {
        this.#took(bytes, end);
        return;
      }
    }
    this.copy(codec.encode(message));
  }

  /**
   * Copies an already-encoded frame in (one from another cluster node, or a
   * codec's without `encodeInto`), so that a pass's frames sit side by side
   * and each receiver writes them as one range; the frame is then
   * `base[start, end)`. When `frames` (the messages it holds) is more than
   * one, the segment's messages can no longer be told apart (frameEnds).
   */
  copy(frame: Uint8Array, frames = 1): void {
    const size = frame.byteLength;
    if (size > SEGMENT_MAX / 2) {
      // Shared as it is: copying it into a segment buys nothing.
      this.base = frame;
      this.start = 0;
      this.end = size;
      return;
    }
    let bytes = this.#current();
    if (bytes === undefined || bytes.length - this.#fill < size) {
      bytes = this.#open(size);
    }
    bytes.set(frame, this.#fill);
    this.#took(bytes, this.#fill + size);
    if (frames > 1) frameEnds.delete(bytes);
  }

  // The open segment, unless a resumable session appeared since it was
  // opened without frame ends: then the next frame starts a new one, so
  // that every frame a resumable session logs can be found again.
  #current(): Uint8Array | undefined {
    if (this.#ends === undefined && resumableSessions.count > 0) {
      return undefined;
    }
    return this.#bytes;
  }

  #took(bytes: Uint8Array, end: number): void {
    this.#ends?.push(end);
    this.base = bytes;
    this.start = this.#fill;
    this.end = end;
    this.#used = true;
    this.#fill = end;
  }

  #open(size: number): Uint8Array {
    if (this.#bytes === undefined) atPassEnd(this.#passEnd);
    // A full segment: the channel is busy, the next one is larger.
    else this.#size = Math.min(SEGMENT_MAX, this.#size * 2);
    let length = this.#size;
    while (length < size) length *= 2;
    this.#bytes = new Uint8Array(length);
    this.#fill = 0;
    if (resumableSessions.count > 0) {
      this.#ends = [];
      frameEnds.set(this.#bytes, this.#ends);
    } else {
      this.#ends = undefined;
    }
    return this.#bytes;
  }
}
