// Package-internal: who holds back whom, and how long a peer may keep
// anyone waiting. A session's input is read only as fast as the sessions it
// sends to can take it.
//
// Every session's read loop runs with its own Flow as the "producer" in an
// AsyncLocalStorage context, so whatever its handlers send — synchronously or
// after an await, through send(), send-by-id, broadcast or the Router — is
// attributed to it. When a send leaves a target above its high-water mark,
// the target holds the producer back: the producer stops reading (TCP then
// slows its peer down) until every target holding it has drained to half its
// high-water mark, or has been cut.
//
// Others wait on a target too: callers of drained() and flush() (timers and
// other producers outside any handler), and, under the "close" overflow
// policy, a send the budget refused. Whatever waits, one clock runs from the
// moment the target first keeps someone waiting until it drains to half its
// high-water mark; a target whose clock reaches its drainTimeout is cut as a
// slow consumer, which releases everyone. So no wait for room on a peer
// outlasts drainTimeout (flush() waits for every byte, so only its part over
// the high-water mark counts); a caller may bound its own wait further with a
// timeout or a signal, see `bounded()`.
//
// AsyncLocalStorage (a Deno built-in, not a dependency) is the only way to
// follow a handler across its awaits; entering it costs once per session.
import { AsyncLocalStorage } from "node:async_hooks";

/** What a Flow needs from its session. */
export interface FlowOwner {
  /** Whether the session is still open (a closed one holds nobody back). */
  isOpen(): boolean;
  /** How long it may hold producers back, in milliseconds; 0: forever. */
  readonly drainTimeout: number;
  /** Cuts the session as a slow consumer. */
  cut(): void;
}

/** One session's side of flow control; see the file comment. */
export class Flow {
  readonly owner: FlowOwner;
  /** Times this session's reading paused for flow control (metrics). */
  pauses = 0;
  /** How long those pauses lasted in all, in milliseconds (metrics). */
  pausedMs = 0;
  // Producers this session holds back; whether anyone (producers, waiters)
  // is kept waiting, and since when.
  #holding: Set<Flow> | undefined;
  #held = false;
  #since = 0;
  // Targets holding this session back, and the wait for them.
  #blockers: Set<Flow> | undefined;
  #resume: PromiseWithResolvers<void> | undefined;

  constructor(owner: FlowOwner) {
    this.owner = owner;
  }

  /** Whether some target holds this session back. */
  get blocked(): boolean {
    return this.#blockers !== undefined && this.#blockers.size > 0;
  }

  /**
   * Whether a target other than this session itself holds it back: then
   * its peer's silence is our doing, not the peer's.
   */
  get blockedByOthers(): boolean {
    const blockers = this.#blockers;
    if (blockers === undefined) return false;
    return blockers.size > (blockers.has(this) ? 1 : 0);
  }

  /**
   * Whether this session keeps someone waiting (a producer, a drained() or
   * flush() caller, a refused send): its drainTimeout clock runs.
   */
  get holding(): boolean {
    return this.#held;
  }

  /** This target, above its high-water mark, holds `producer` back. */
  hold(producer: Flow): void {
    if (!producer.owner.isOpen() || !this.owner.isOpen()) return;
    const blockers = producer.#blockers ??= new Set();
    if (blockers.has(this)) return;
    blockers.add(this);
    (this.#holding ??= new Set()).add(producer);
    this.keepWaiting();
  }

  /**
   * This target, above its high-water mark, keeps someone other than a
   * producer waiting (a drained() or flush() caller, a refused send): starts
   * its drainTimeout clock unless it runs already.
   */
  keepWaiting(): void {
    if (this.#held || !this.owner.isOpen()) return;
    this.#held = true;
    // Whole milliseconds: a fraction would make this field a boxed heap
    // number in every session from then on (issue 19 §4).
    this.#since = Math.round(performance.now());
    if (this.owner.drainTimeout > 0) watch(this);
  }

  /** This target drained (or closed): whoever it kept waiting goes on. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    unwatch(this);
    const holding = this.#holding;
    if (holding === undefined) return;
    this.#holding = undefined;
    for (const producer of holding) producer.#unblockedBy(this);
  }

  /** Resolves once no target holds this session back. */
  unblocked(): Promise<void> {
    if (!this.blocked) return Promise.resolve();
    return (this.#resume ??= Promise.withResolvers()).promise;
  }

  /**
   * The session is closing: it holds nobody back and waits for nobody any
   * more.
   */
  end(): void {
    this.release();
    const blockers = this.#blockers;
    if (blockers !== undefined) {
      for (const target of blockers) target.#holding?.delete(this);
      blockers.clear();
    }
    this.#wake();
  }

  /** Milliseconds this session has kept someone waiting, as of `now`. */
  heldFor(now: number): number {
    return this.#held ? now - this.#since : 0;
  }

  #unblockedBy(target: Flow): void {
    const blockers = this.#blockers;
    if (blockers === undefined || !blockers.delete(target)) return;
    if (blockers.size === 0) this.#wake();
  }

  #wake(): void {
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.resolve();
  }
}

/** The producer whose handlers are running (or awaited) right now. */
export const producerContext: AsyncLocalStorage<Flow> = new AsyncLocalStorage<
  Flow
>();

// Targets holding producers back, checked against their drainTimeout by one
// timer that runs only while there are any.
const holders = new Set<Flow>();
let timer: ReturnType<typeof setInterval> | undefined;
const CHECK_EVERY = 50;

function watch(flow: Flow): void {
  holders.add(flow);
  timer ??= setInterval(check, CHECK_EVERY);
}

function unwatch(flow: Flow): void {
  holders.delete(flow);
  if (holders.size === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
}

function check(): void {
  const now = performance.now();
  for (const flow of holders) {
    if (flow.heldFor(now) >= flow.owner.drainTimeout) {
      // cut() closes the session, whose close releases its producers.
      holders.delete(flow);
      flow.owner.cut();
    }
  }
  if (holders.size === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
}

/**
 * How long a caller of `Session.drained()`, `Session.flush()` or
 * `SessionManager.drained()` is willing to wait: its own bound on top of the
 * peer's `drainTimeout` (which cuts a peer that keeps anyone waiting too
 * long). Past the timeout the promise rejects with a `TimeoutError`
 * `DOMException`; an aborted signal rejects it with the signal's reason.
 *
 * @example At most 100 ms for room, then skip this tick
 * ```ts
 * import { listen, type WaitOptions } from "@x/microsocket";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * const options: WaitOptions = { timeout: 100 };
 * try {
 *   await server.sessions.drained({ room: "ticker", ...options });
 *   server.sessions.broadcast("tick", { room: "ticker" });
 * } catch (error) {
 *   if (!(error instanceof DOMException && error.name === "TimeoutError")) {
 *     throw error;
 *   }
 * }
 * ```
 */
export interface WaitOptions {
  /** Give up after this many milliseconds (the promise rejects). */
  timeout?: number;
  /** Aborting it gives up (the promise rejects with its reason). */
  signal?: AbortSignal;
}

/**
 * `wait`, or a rejection once `options.timeout` passes (a `TimeoutError`
 * DOMException saying `what`) or `options.signal` aborts (its reason),
 * whichever comes first; `cancel` then withdraws the wait. Leaves no timer
 * or listener behind.
 */
export function bounded<T>(
  wait: Promise<T>,
  options: WaitOptions | undefined,
  what: string,
  cancel?: () => void,
): Promise<T> {
  if (options === undefined) return wait;
  checkWaitOptions(options);
  const { timeout, signal } = options;
  if (timeout === undefined && signal === undefined) return wait;
  if (signal?.aborted) {
    cancel?.();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = (error: unknown): void => {
      done();
      cancel?.();
      reject(error);
    };
    const onAbort = (): void => stop(signal!.reason);
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    if (timeout !== undefined) {
      timer = setTimeout(
        () =>
          stop(
            new DOMException(
              `${what} took more than ${timeout} ms`,
              "TimeoutError",
            ),
          ),
        timeout,
      );
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    wait.then((value) => {
      done();
      resolve(value);
    }, (error) => {
      done();
      reject(error);
    });
  });
}

/**
 * Throws on a wait option that isn't one (no silent options: a misspelt key
 * would leave a wait unbounded) or a timeout that is no duration.
 */
export function checkWaitOptions(options: WaitOptions): void {
  for (const key in options) {
    if (key !== "timeout" && key !== "signal") {
      throw new TypeError(`Unknown wait option: ${key}`);
    }
  }
  const { timeout, signal } = options;
  if (
    timeout !== undefined &&
    (typeof timeout !== "number" || !(timeout >= 0) || timeout === Infinity)
  ) {
    throw new RangeError(
      `timeout must be a finite number of milliseconds >= 0, got ${timeout}`,
    );
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError("signal must be an AbortSignal");
  }
}
