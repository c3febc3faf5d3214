// Package-internal: one interval timer per tick length drives the liveness
// checks (idle, heartbeat, frame timeouts) of every session that uses that
// tick, instead of a timer per session. The timer runs only while someone is
// watched, so a process with no live session keeps no timer.

/** Something checked on every tick. */
export interface Watched {
  /**
   * Called once per tick.
   *
   * @param elapsed Whole milliseconds since this item was added or last
   * ticked, capped so that a stalled event loop (time spent on other work)
   * never counts as more than one and a half ticks against anyone.
   */
  onTick(elapsed: number): void;
}

// Whole milliseconds: what sessions add up stays a small integer, stored in
// place, where a fraction would make every session's counters boxed heap
// numbers (issue 19 §4). Rounding the clock, not each difference, keeps the
// sum of a session's ticks exact to the millisecond.
function now(): number {
  return Math.round(performance.now());
}

/** A shared ticker; see {@linkcode livenessClock}. */
export class LivenessClock {
  readonly #interval: number;
  // Items ticked at least once: they all share one elapsed time, so an idle
  // item costs a set entry, not a time of its own (a boxed number, and a new
  // one on every tick, for each of a million quiet sessions).
  readonly #watched = new Set<Watched>();
  // Items added since the last tick, with when: their first tick counts
  // only from then.
  readonly #added = new Map<Watched, number>();
  #lastTick = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(interval: number) {
    this.#interval = interval;
  }

  /** Starts watching `item`. */
  add(item: Watched): void {
    const at = now();
    this.#added.set(item, at);
    if (this.#timer === undefined) {
      this.#lastTick = at;
      this.#timer = setInterval(() => this.#tick(), this.#interval);
    }
  }

  /** Stops watching `item`; the timer stops with the last one. */
  delete(item: Watched): void {
    if (!this.#watched.delete(item)) this.#added.delete(item);
    if (
      this.#watched.size === 0 && this.#added.size === 0 &&
      this.#timer !== undefined
    ) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #tick(): void {
    const at = now();
    const cap = Math.round(this.#interval * 1.5);
    const elapsed = Math.min(at - this.#lastTick, cap);
    this.#lastTick = at;
    for (const item of this.#watched) item.onTick(elapsed);
    // Live iteration: an item deleted by another's tick is skipped; one
    // added meanwhile is ticked with what little time it has.
    for (const [item, since] of this.#added) {
      this.#added.delete(item);
      this.#watched.add(item);
      item.onTick(Math.min(at - since, cap));
    }
  }
}

const clocks = new Map<number, LivenessClock>();

/** The shared clock ticking every `interval` milliseconds. */
export function livenessClock(interval: number): LivenessClock {
  let clock = clocks.get(interval);
  if (clock === undefined) {
    clock = new LivenessClock(interval);
    clocks.set(interval, clock);
  }
  return clock;
}
