// Package-internal: one interval timer per tick length drives the liveness
// checks (idle, heartbeat, frame timeouts) of every session that uses that
// tick, instead of a timer per session. The timer runs only while someone is
// watched, so a process with no live session keeps no timer.

/** Something checked on every tick. */
export interface Watched {
  /**
   * Called once per tick.
   *
   * @param elapsed Milliseconds since the previous tick, capped so that a
   * stalled event loop (time spent on other work) never counts as more than
   * one and a half ticks against anyone.
   */
  tick(elapsed: number): void;
}

/** A shared ticker; see {@linkcode livenessClock}. */
export class LivenessClock {
  readonly #interval: number;
  readonly #watched = new Set<Watched>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #last = 0;

  constructor(interval: number) {
    this.#interval = interval;
  }

  /** Starts watching `item`. */
  add(item: Watched): void {
    this.#watched.add(item);
    if (this.#timer === undefined) {
      this.#last = performance.now();
      this.#timer = setInterval(() => this.#tick(), this.#interval);
    }
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
    const elapsed = Math.min(now - this.#last, this.#interval * 1.5);
    this.#last = now;
    for (const item of this.#watched) item.tick(elapsed);
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
