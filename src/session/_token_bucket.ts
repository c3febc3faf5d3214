// Package-internal: a token bucket for per-session rate limits. It refills
// continuously at `rate` tokens per second up to `burst`, and may go into
// debt: a message is let through or not as a whole, and the debt tells how
// long the sender must now pause.

/** A token bucket; see the file comment. */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;

  /**
   * @param rate Tokens per second (> 0).
   * @param burst The most tokens the bucket holds (≥ 1).
   * @param now The current time in milliseconds.
   */
  constructor(rate: number, burst: number, now: number) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = now;
  }

  /**
   * Takes `count` tokens.
   *
   * @returns 0 when there were enough; otherwise how many milliseconds the
   * bucket needs to refill to zero (the tokens are taken anyway: debt).
   */
  take(count: number, now: number): number {
    let tokens = this.#tokens + (now - this.#last) * this.#rate / 1000;
    if (tokens > this.#burst) tokens = this.#burst;
    this.#last = now;
    tokens -= count;
    this.#tokens = tokens;
    return tokens >= 0 ? 0 : -tokens * 1000 / this.#rate;
  }

  /** Whether a take of `count` would go into debt, without taking. */
  wouldWait(count: number, now: number): number {
    let tokens = this.#tokens + (now - this.#last) * this.#rate / 1000;
    if (tokens > this.#burst) tokens = this.#burst;
    tokens -= count;
    return tokens >= 0 ? 0 : -tokens * 1000 / this.#rate;
  }
}
