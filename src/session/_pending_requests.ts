// Package-internal: one session's requests waiting for their replies, each
// with its timeout and abort signal. Every way out (reply, timeout, abort,
// close) clears the timer and the listener, so nothing outlives a request.
import { RequestTimeoutError } from "../errors.ts";
import {
  LatencyHistogram,
  type LatencyTapped,
  latencyTaps,
} from "./_latency_histogram.ts";

interface Pending<In> {
  resolve(reply: In): void;
  reject(error: unknown): void;
  forget(): void;
}

/** Requests by id; see the file comment. */
export class PendingRequests<In> {
  readonly #pending = new Map<number, Pending<In>>();
  #nextId = 1;
  /** Requests that timed out (metrics). */
  timeouts = 0;
  /** How long answered requests took (metrics). */
  readonly latency: LatencyHistogram = new LatencyHistogram();
  // The session's host, asked at each answer (it may change) for taps.
  readonly #life: { readonly host: LatencyTapped | undefined };
  // Someone waiting for the next request to start (see added()).
  #added: PromiseWithResolvers<void> | undefined;

  constructor(life: { readonly host: LatencyTapped | undefined }) {
    this.#life = life;
  }

  /** How many requests wait. */
  get size(): number {
    return this.#pending.size;
  }

  /** Resolves when the next request starts. */
  added(): Promise<void> {
    return (this.#added ??= Promise.withResolvers()).promise;
  }

  /**
   * Registers a request.
   *
   * @returns Its id and the promise of its reply.
   */
  add(
    timeout: number,
    signal: AbortSignal | undefined,
  ): { id: number; reply: Promise<In> } {
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<In>();
    const started = performance.now();
    const settle = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      this.#pending.delete(id);
    };
    const abort = (): void => {
      settle();
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      settle();
      this.timeouts++;
      reject(new RequestTimeoutError(timeout));
    }, timeout);
    signal?.addEventListener("abort", abort, { once: true });
    this.#pending.set(id, {
      resolve: (reply) => {
        settle();
        const seconds = (performance.now() - started) / 1000;
        this.latency.observe(seconds);
        const taps = this.#life.host?.[latencyTaps];
        if (taps !== undefined) { for (const tap of taps) tap(seconds); }
        resolve(reply);
      },
      reject(error) {
        settle();
        reject(error);
      },
      forget: settle,
    });
    const added = this.#added;
    if (added !== undefined) {
      this.#added = undefined;
      added.resolve();
    }
    return { id, reply: promise };
  }

  /**
   * Takes a reply to request `id`.
   *
   * @returns `true` when `id` is one of ours (waiting, or already given up:
   * a late reply is dropped); `false` when it never was.
   */
  resolve(id: number, reply: In): boolean {
    if (id >= this.#nextId || id < 1) return false;
    this.#pending.get(id)?.resolve(reply);
    return true;
  }

  /**
   * Drops request `id` without settling it, for a request that never left
   * (its message was refused): the caller throws instead.
   */
  forget(id: number): void {
    this.#pending.get(id)?.forget();
  }

  /** Fails one request, or every waiting one when `id` is omitted. */
  reject(error: unknown, id?: number): void {
    if (id !== undefined) {
      this.#pending.get(id)?.reject(error);
      return;
    }
    for (const pending of [...this.#pending.values()]) pending.reject(error);
  }
}
