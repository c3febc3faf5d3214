// Package-internal: one interval timer per tick length drives the liveness
// checks (idle, heartbeat, frame timeouts) of every session that uses that
// tick, instead of a timer per session. The timer runs only while someone is
// watched, so a process with no live session keeps no timer.

/** Something checked on every tick. */
export interface Watched {
  /**
   * Called once per tick.
   *
   * @param elapsed Milliseconds since this item was added or last ticked,
   * capped so that a stalled event loop (time spent on other work) never
   * counts as more than one and a half ticks against anyone.
   */
  tick(elapsed: number): void;
}

/** A shared ticker; see {@linkcode livenessClock}. */
export class LivenessClock {
  readonly #interval: number;
  // Each item with the time it last ticked (or was added): an item added
  // just before a tick is charged only the time it has actually been
  // watched, never a whole tick.
  readonly #watched = new Map<Watched, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(interval: number) {
    this.#interval = interval;
  }

  /** Starts watching `item`. */
  add(item: Watched): void {
    this.#watched.set(item, performance.now());
    this.#timer ??= setInterval(() => this.#tick(), this.#interval);
  }

  /** Stops watching `item`; the timer stops with the last one. */
  delete(item: Watched): void {
    this.#watched.delete(item);
    if (this.#watched.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #tick(): void {
    const now = performance.now();
    const cap = this.#interval * 1.5;
    for (const [item, last] of this.#watched) {
      this.#watched.set(item, now);
      item.tick(Math.min(now - last, cap));
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
