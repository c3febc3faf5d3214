// Package-internal: appends that keep the order they were made in when
// some of them must be sent again (a restarted server forgot Redis's
// script; JetStream didn't answer during a restart), used by the Redis and
// JetStream engines. One engine connection pipelines its appends; when one
// fails in a way worth retrying, the appends in flight then settle first,
// the engine recovers (loads the script, waits for the server), and every
// failed append is sent again in its FIRST order, ahead of the appends
// made meanwhile, which wait their turn. Retrying each failure as it
// arrives would let later appends overtake it: a room's order would break,
// which recovery can't allow. An append that can't be sent within
// `giveUp` ms of its first failure is rejected with its last error.

/** How an engine's appends are retried; see the file comment. */
export interface OrderedAppendsOptions {
  /** Whether the append may be sent again (it was not applied, or is idempotent). */
  retryable(error: unknown): boolean;
  /** Runs once per failure round, before the failed appends go again. */
  recover(): Promise<void>;
  /** Milliseconds after its first failure an append is given up. */
  giveUp: number;
}

interface Round {
  readonly waiting: { seq: number; go: () => void }[];
  recovered: boolean;
}

/** Package-internal: see the file comment. */
export class OrderedAppends {
  readonly #options: OrderedAppendsOptions;
  #seq = 0;
  readonly #inFlight = new Set<number>();
  #round: Round | undefined;
  // Appends not settled yet (in flight, waiting, or being sent again), and
  // who waits for none to be left.
  #pending = 0;
  #idle: (() => void)[] = [];

  constructor(options: OrderedAppendsOptions) {
    this.#options = options;
  }

  /** Sends `send()` in its turn; see the file comment. */
  async run<T>(send: () => Promise<T>): Promise<T> {
    this.#pending++;
    try {
      return await this.#run(send);
    } finally {
      if (--this.#pending === 0 && this.#idle.length > 0) {
        const idle = this.#idle;
        this.#idle = [];
        for (const resolve of idle) resolve();
      }
    }
  }

  /**
   * Resolves once no append is left unsettled (an engine closing lets the
   * appends already made finish first; it bounds the wait itself).
   */
  idle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #run<T>(send: () => Promise<T>): Promise<T> {
    const seq = ++this.#seq;
    let waited = false;
    let firstFailure = 0;
    for (;;) {
      if (!waited && this.#round !== undefined) await this.#wait(seq);
      waited = false;
      this.#inFlight.add(seq);
      let result: T;
      try {
        result = await send();
      } catch (error) {
        const now = Date.now();
        firstFailure ||= now;
        if (
          !this.#options.retryable(error) ||
          now - firstFailure > this.#options.giveUp
        ) {
          this.#settle(seq);
          throw error;
        }
        this.#start();
        const turn = this.#wait(seq);
        this.#settle(seq);
        await turn;
        waited = true;
        continue;
      }
      this.#settle(seq);
      return result;
    }
  }

  /**
   * The connection dropped: appends made from now on wait until `until`
   * settles and the ones in flight have settled (and been sent again).
   */
  pause(until: Promise<void>): void {
    if (this.#round !== undefined) return;
    const round: Round = { waiting: [], recovered: false };
    this.#round = round;
    const done = () => {
      round.recovered = true;
      this.#release();
    };
    until.then(done, done);
  }

  #wait(seq: number): Promise<void> {
    return new Promise((go) => this.#round!.waiting.push({ seq, go }));
  }

  #start(): void {
    if (this.#round !== undefined) return;
    const round: Round = { waiting: [], recovered: false };
    this.#round = round;
    const done = () => {
      round.recovered = true;
      this.#release();
    };
    this.#options.recover().then(done, done);
  }

  #settle(seq: number): void {
    this.#inFlight.delete(seq);
    this.#release();
  }

  #release(): void {
    const round = this.#round;
    if (round === undefined || !round.recovered || this.#inFlight.size > 0) {
      return;
    }
    this.#round = undefined;
    round.waiting.sort((a, b) => a.seq - b.seq);
    for (const { go } of round.waiting) go();
  }
}
