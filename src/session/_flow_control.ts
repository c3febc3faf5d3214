// Package-internal: who holds back whom. A session's input is read only as
// fast as the sessions it sends to can take it.
//
// Every session's read loop runs with its own Flow as the "producer" in an
// AsyncLocalStorage context, so whatever its handlers send — synchronously or
// after an await, through send(), send-by-id, broadcast or the Router — is
// attributed to it. When a send leaves a target above its high-water mark,
// the target holds the producer back: the producer stops reading (TCP then
// slows its peer down) until every target holding it has drained to half its
// high-water mark, or has been cut. A target that holds producers back for
// longer than its drainTimeout is cut as a slow consumer, which releases
// them. Sends made outside any session (timers, other event sources) hold
// nobody back; they wait with `drained()` if they want to.
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
  // Producers this session holds back, and since when.
  #holding: Set<Flow> | undefined;
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

  /** Whether this session holds some producer back. */
  get holding(): boolean {
    return this.#holding !== undefined;
  }

  /** This target, above its high-water mark, holds `producer` back. */
  hold(producer: Flow): void {
    if (!producer.owner.isOpen()) return;
    const blockers = producer.#blockers ??= new Set();
    if (blockers.has(this)) return;
    blockers.add(this);
    if (this.#holding === undefined) {
      this.#holding = new Set();
      this.#since = performance.now();
      if (this.owner.drainTimeout > 0) watch(this);
    }
    this.#holding.add(producer);
  }

  /** This target drained (or closed): the producers it held go on. */
  release(): void {
    const holding = this.#holding;
    if (holding === undefined) return;
    this.#holding = undefined;
    unwatch(this);
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

  /** Milliseconds this session has held producers back, as of `now`. */
  heldFor(now: number): number {
    return this.#holding === undefined ? 0 : now - this.#since;
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
