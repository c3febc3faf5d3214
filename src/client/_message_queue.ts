// The messages waiting for each `for await` loop over a client, and how a
// loop hears that the client ended.
import { CloseReason } from "../close_reason.ts";
import type { RefusedError, SessionClosedError } from "../errors.ts";

// The close reasons that end a `for await` loop with an error: failures and
// policies, not the ends someone chose.
export const FAILURES: ReadonlySet<string> = new Set<string>([
  CloseReason.Reset,
  CloseReason.Error,
  CloseReason.DecodeError,
  CloseReason.FrameTooLarge,
  CloseReason.SlowConsumer,
  CloseReason.Flood,
  CloseReason.Unauthorized,
  CloseReason.AuthTimeout,
  CloseReason.IdleTimeout,
  CloseReason.HeartbeatTimeout,
  CloseReason.FrameTimeout,
]);

/** How many messages an iterating loop may fall behind before reading waits. */
const ITERATOR_HIGH_WATER = 256;

// The messages waiting for one `for await` loop over a client.
export class MessageQueue<In> implements AsyncIterator<In> {
  readonly #owner: Set<MessageQueue<In>>;
  #items: In[] = [];
  #head = 0;
  #ended = false;
  // Why the client ended, when a loop should hear of it (once).
  #error: RefusedError | SessionClosedError | undefined;
  // Pending next() calls, oldest first (for-await makes one at a time).
  #waiting: PromiseWithResolvers<IteratorResult<In>>[] = [];
  #roomWaiters: (() => void)[] = [];

  constructor(owner: Set<MessageQueue<In>>) {
    this.#owner = owner;
  }

  push(message: In): Promise<void> | undefined {
    const waiting = this.#waiting.shift();
    if (waiting !== undefined) {
      waiting.resolve({ done: false, value: message });
      return undefined;
    }
    this.#items.push(message);
    if (this.#items.length - this.#head < ITERATOR_HIGH_WATER) return undefined;
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  end(error?: RefusedError | SessionClosedError): void {
    this.#ended = true;
    this.#error = error;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const { resolve, reject } of waiting) {
      const error = this.#takeError();
      if (error === undefined) resolve({ done: true, value: undefined });
      else reject(error);
    }
  }

  next(): Promise<IteratorResult<In>> {
    if (this.#head < this.#items.length) {
      const value = this.#items[this.#head]!;
      this.#items[this.#head++] = undefined as In;
      if (this.#head === this.#items.length) {
        this.#items = [];
        this.#head = 0;
      }
      this.#release();
      return Promise.resolve({ done: false, value });
    }
    if (this.#ended) {
      const error = this.#takeError();
      return error === undefined
        ? Promise.resolve({ done: true, value: undefined })
        : Promise.reject(error);
    }
    const waiting = Promise.withResolvers<IteratorResult<In>>();
    this.#waiting.push(waiting);
    return waiting.promise;
  }

  #takeError(): RefusedError | SessionClosedError | undefined {
    const error = this.#error;
    this.#error = undefined;
    return error;
  }

  return(): Promise<IteratorResult<In>> {
    this.#owner.delete(this);
    this.#items = [];
    this.#head = 0;
    this.end();
    this.#error = undefined;
    this.#release();
    return Promise.resolve({ done: true, value: undefined });
  }

  #release(): void {
    if (this.#items.length - this.#head >= ITERATOR_HIGH_WATER) return;
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const wake of waiters) wake();
  }
}
