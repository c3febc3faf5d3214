// Package-internal: the broadcasts of a channel to the same receivers,
// queued on each receiver once (issue 19 §1).
//
// A broadcast queues its frame on every receiver: a loop over the members,
// a call into each one's writer. When one read of a sender's socket holds
// fifteen lines, that loop ran fifteen times per member before the flush
// pass wrote each member's fifteen frames as one range. A run makes the
// later ones O(1): the first broadcast queues its frame on every member as
// usual, and each member's queue then *follows* the run (its open shared
// range ends where the run ends). The next broadcast to the same receivers,
// encoded right after in the same segment, only moves the run's end; each
// follower reads how far its range grew the next time anyone looks at its
// queue (OutboundQueue settles it first).
//
// A follower keeps following across its writes: a write takes what the run
// gave it so far, and its range starts again where the run ends. A follower
// with nothing left to write *sleeps* on the run, which wakes it (joins it
// to the next flush pass) when it grows: once per write, never per message.
//
// A run grows only while nothing could make one of its members differ from
// the others:
// - every receiver of the first broadcast followed it (same codec, no log
//   of a resumable session, none refused it);
// - no follower did anything else with its queue (a private frame, another
//   range): that follower leaves, and the run ends;
// - the channel's membership is unchanged (the manager and the rooms end
//   their channel's run on every join, leave and close);
// - the later broadcast has the same exception and no filter, and its frame
//   starts where the run ends (so the run ends with its segment, at most
//   64 KiB);
// - it fits every follower: the run grows by at most the smallest room any
//   follower had below its budget and its high-water mark when it joined,
//   so the budget and flow control never need to look at a member; a
//   broadcast that doesn't fit takes the loop, which does.
// Otherwise the broadcast takes the loop over the members, and starts the
// next run. A run that ends lets its followers go (their queues stop
// following it), so a quiet member holds nothing of it.
import type { Codec } from "../codec/codec.ts";

/** A queue that follows a run; told when the run ends. */
export interface RunFollower {
  /** The run ended: stop following it (what it added stays queued). */
  runEnded(run: SharedRun): void;
}

/** A follower's writer, asleep until the run grows. */
export interface RunSleeper {
  /** The run grew: join the next flush pass. */
  wake(): void;
}

/** A channel's broadcasts followed by many queues; see the file comment. */
export class SharedRun {
  /** The segment the run's frames are in. */
  readonly base: Uint8Array;
  /** Where the run ends in `base` (its followers' ranges end here too). */
  end: number;
  /** Frames added since it started (followers count theirs from here). */
  frames = 0;
  /** The codec of its frames. */
  // deno-lint-ignore no-explicit-any
  readonly codec: Codec<any, any>;
  /** The session id its broadcasts leave out (-1: none). */
  readonly exceptId: number;
  /** Whether it may still grow. */
  open = true;
  // Bytes it may still grow by without any follower reaching its budget or
  // high-water mark.
  #room = Number.POSITIVE_INFINITY;
  #followers: RunFollower[] = [];
  #sleepers: RunSleeper[] = [];
  // The last view handed to a follower's write: the followers that write in
  // the same pass usually write the same range, and share one view of it
  // instead of each allocating its own.
  #view: Uint8Array | undefined;
  #viewStart = 0;

  constructor(
    base: Uint8Array,
    end: number,
    // deno-lint-ignore no-explicit-any
    codec: Codec<any, any>,
    exceptId: number,
  ) {
    this.base = base;
    this.end = end;
    this.codec = codec;
    this.exceptId = exceptId;
  }

  /** How many queues follow it. */
  get followers(): number {
    return this.#followers.length;
  }

  /** `follower` follows it, with `room` bytes left before its limits. */
  join(follower: RunFollower, room: number): void {
    this.#followers.push(follower);
    if (room < this.#room) this.#room = room;
  }

  /** A view of `base[start, end)` for a follower's write (see #view). */
  view(start: number, end: number): Uint8Array {
    const view = this.#view;
    if (
      view !== undefined && this.#viewStart === start &&
      view.byteLength === end - start
    ) return view;
    this.#viewStart = start;
    return this.#view = this.base.subarray(start, end);
  }

  /** `sleeper` has nothing to write until the run grows. */
  sleep(sleeper: RunSleeper): void {
    this.#sleepers.push(sleeper);
  }

  /**
   * Adds the frame `base[start, end)` for every follower, when the run is
   * open, the frame continues it and fits them all; wakes the sleepers.
   *
   * @returns Whether it was added (otherwise nothing changed).
   */
  extend(base: Uint8Array, start: number, end: number): boolean {
    const size = end - start;
    if (
      !this.open || base !== this.base || start !== this.end ||
      size > this.#room
    ) return false;
    this.#room -= size;
    this.end = end;
    this.frames++;
    const sleepers = this.#sleepers;
    if (sleepers.length > 0) {
      this.#sleepers = [];
      for (const sleeper of sleepers) sleeper.wake();
    }
    return true;
  }

  /**
   * No more frames (a follower left, the receivers changed, the segment was
   * let go): every follower stops following.
   */
  close(): void {
    if (!this.open) return;
    this.open = false;
    const followers = this.#followers;
    this.#followers = [];
    this.#sleepers = [];
    for (const follower of followers) follower.runEnded(this);
  }
}
