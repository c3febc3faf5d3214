// Package-internal: hands live entries on in position order (the JetStream
// engine's live path). The stream republishes the appends of different
// connections concurrently, so two of them can reach a node in the wrong
// order (seen: 72 before 70), and a member given 72 would take 70 for a
// duplicate. An entry that follows the last one handed on (no position
// between) goes at once; one after a gap waits, up to `windowMs`, for the
// positions before it (a gap is usually another room's entry, which never
// comes here).

/** Package-internal: see the file comment. */
export class PositionOrder<T> {
  readonly #windowMs: number;
  readonly #hand: (item: T) => void;
  readonly #waiting: { position: number; item: T; since: number }[] = [];
  #last = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * @param windowMs How long an entry after a gap waits.
   * @param hand Where entries go, in position order.
   */
  constructor(windowMs: number, hand: (item: T) => void) {
    this.#windowMs = windowMs;
    this.#hand = hand;
  }

  /** Takes the entry at `position`. */
  push(position: number, item: T): void {
    const waiting = this.#waiting;
    if (
      waiting.length === 0 && (this.#last === 0 || position === this.#last + 1)
    ) {
      this.#last = position;
      this.#hand(item);
      return;
    }
    let at = waiting.length;
    while (at > 0 && waiting[at - 1]!.position > position) at--;
    waiting.splice(at, 0, { position, item, since: performance.now() });
    this.#release();
  }

  /** A new sequence (a new epoch) numbers from 1 again: what waits goes. */
  reset(): void {
    if (this.#last === 0 && this.#waiting.length === 0) return;
    this.#last = 0;
    const waiting = this.#waiting.splice(0);
    this.#stopTimer();
    for (const { item } of waiting) this.#hand(item);
  }

  /** Drops what waits and stops the timer. */
  close(): void {
    this.#closed = true;
    this.#waiting.length = 0;
    this.#stopTimer();
  }

  #release(): void {
    const waiting = this.#waiting;
    const now = performance.now();
    while (waiting.length > 0) {
      const first = waiting[0]!;
      if (
        first.position !== this.#last + 1 &&
        now - first.since < this.#windowMs
      ) break;
      waiting.shift();
      if (first.position > this.#last) this.#last = first.position;
      this.#hand(first.item);
    }
    this.#stopTimer();
    if (waiting.length > 0 && !this.#closed) {
      const wait = this.#windowMs - (now - waiting[0]!.since);
      this.#timer = setTimeout(() => this.#release(), Math.max(0, wait));
    }
  }

  #stopTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
