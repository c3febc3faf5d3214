// Package-internal: where a broadcast's frame is encoded, once, for all its
// receivers. Frames of one channel (a room, or the whole manager) in one
// flush pass go one after the other into the same segment, so every receiver
// that gets them all holds one growing view of it (see OutboundQueue's shared
// ranges) and writes it with no copy of its own.
//
// The segment is let go at the end of the pass: the writes still reference
// it, nothing else does, and an idle room keeps no buffer. The next segment
// is sized by what the channel used in its last pass.
import type { Codec } from "./codec/codec.ts";
import { atPassEnd } from "./session/_flush_scheduler.ts";

/** Segments hold at least this much... */
const SEGMENT_MIN = 1024;
/** ...and at most this much; larger frames are shared as they are. */
const SEGMENT_MAX = 65536;

/**
 * Where each frame written into a segment ends, by segment: a resumable
 * session's log (src/recovery/_message_log.ts) keeps one range per segment
 * for a pass's broadcasts, not one entry per message, and finds a message
 * inside it here, on a resume. One array per segment, one push per frame
 * (per broadcast, not per receiver).
 */
export const frameEnds: WeakMap<Uint8Array, number[]> = new WeakMap();

/**
 * How many resumable sessions are open in this process: frame ends are kept
 * only while there are some (nothing changes for a server without
 * recovery).
 */
export const resumableSessions = { count: 0 };

/** Encodes frames into shared segments; see the file comment. */
export class SegmentWriter {
  #bytes: Uint8Array | undefined;
  #fill = 0;
  #used = 0;
  #size = SEGMENT_MIN;
  #ends: number[] | undefined;
  readonly #release = () => {
    this.#bytes = undefined;
    // Size the next segment for what this pass needed (rounded up to a power
    // of two, within bounds).
    let size = SEGMENT_MIN;
    while (size < this.#used && size < SEGMENT_MAX) size *= 2;
    this.#size = size;
    this.#used = 0;
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
   * Encodes `message` with `codec`; the frame is then
   * `base[start, end)`. The bytes never change afterwards.
   *
   * @throws {TypeError} When the codec cannot encode the message.
   */
  write<Out>(codec: Codec<unknown, Out>, message: Out): void {
    this.codec = codec;
    if (codec.encodeInto !== undefined) {
      const bytes = this.#bytes ?? this.#open(0);
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
    let bytes = this.#bytes;
    if (bytes === undefined || bytes.length - this.#fill < size) {
      bytes = this.#open(size);
    }
    bytes.set(frame, this.#fill);
    this.#took(bytes, this.#fill + size);
    if (frames > 1) frameEnds.delete(bytes);
  }

  #took(bytes: Uint8Array, end: number): void {
    this.#ends?.push(end);
    this.base = bytes;
    this.start = this.#fill;
    this.end = end;
    this.#used += end - this.#fill;
    this.#fill = end;
  }

  #open(size: number): Uint8Array {
    if (this.#bytes === undefined) atPassEnd(this.#release);
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
