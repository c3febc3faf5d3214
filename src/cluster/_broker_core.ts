// What every Broker implementation shares: the subject table (one wire
// subscription per subject however many handlers), handler dispatch that
// never lets an exception escape into a client's timers, state listeners,
// and counters (messages and payload bytes, each counted here once for
// every implementation). Implementations own one BrokerCore and plug in the wire.
import type {
  BrokerHandler,
  BrokerState,
  BrokerStats,
  BrokerSubscription,
} from "./broker.ts";

const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** Throws a TypeError unless `subject` is a valid exact subject. */
export function assertSubject(subject: string): void {
  if (
    typeof subject !== "string" || subject.length > 512 ||
    !SUBJECT.test(subject)
  ) {
    throw new TypeError(`Invalid subject: ${JSON.stringify(subject)}`);
  }
}

/** The default error sink: errors that nobody can catch are logged. */
export function defaultOnError(error: unknown): void {
  console.error("microsocket cluster broker:", error);
}

/** How an implementation puts subscriptions on the wire. */
export interface Wire {
  /** First handler for `subject`: subscribe on the wire. */
  subscribe(subject: string): void;
  /** Last handler gone: unsubscribe on the wire. */
  unsubscribe(subject: string): void;
}

class Entry implements BrokerSubscription {
  readonly subject: string;
  readonly handler: BrokerHandler;
  #core: BrokerCore;
  active = true;
  constructor(core: BrokerCore, subject: string, handler: BrokerHandler) {
    this.#core = core;
    this.subject = subject;
    this.handler = handler;
  }
  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    this.#core.remove(this);
  }
}

/** Subject table, dispatch, state and counters for one broker connection. */
export class BrokerCore {
  readonly counters: BrokerStats = {
    published: 0,
    received: 0,
    publishedBytes: 0,
    receivedBytes: 0,
    dropped: 0,
    disconnects: 0,
  };
  state: BrokerState;
  closed = false;
  readonly onError: (error: unknown) => void;
  #wire: Wire;
  #subjects = new Map<string, Set<Entry>>();
  #listeners = new Set<(state: BrokerState) => void>();

  constructor(
    wire: Wire,
    onError: ((error: unknown) => void) | undefined,
    initial: BrokerState,
  ) {
    this.#wire = wire;
    this.state = initial;
    const sink = onError ?? defaultOnError;
    // The error sink itself must not throw into a timer either.
    this.onError = (error) => {
      try {
        sink(error);
      } catch {
        // nowhere left to report it
      }
    };
  }

  /** The subjects with at least one handler. */
  subjects(): IterableIterator<string> {
    return this.#subjects.keys();
  }

  add(subject: string, handler: BrokerHandler): BrokerSubscription {
    assertSubject(subject);
    if (typeof handler !== "function") {
      throw new TypeError("The handler must be a function");
    }
    const entry = new Entry(this, subject, handler);
    if (this.closed) {
      entry.active = false;
      return entry;
    }
    let entries = this.#subjects.get(subject);
    if (entries === undefined) {
      entries = new Set();
      this.#subjects.set(subject, entries);
      entries.add(entry);
      try {
        this.#wire.subscribe(subject);
      } catch (error) {
        this.onError(error);
      }
    } else {
      entries.add(entry);
    }
    return entry;
  }

  remove(entry: Entry): void {
    const entries = this.#subjects.get(entry.subject);
    if (entries === undefined || !entries.delete(entry)) return;
    if (entries.size > 0) return;
    this.#subjects.delete(entry.subject);
    if (this.closed) return;
    try {
      this.#wire.unsubscribe(entry.subject);
    } catch (error) {
      this.onError(error);
    }
  }

  /** Hands a received message to every handler of its subject. */
  dispatch(subject: string, bytes: Uint8Array): void {
    const entries = this.#subjects.get(subject);
    if (entries === undefined) return;
    this.counters.received++;
    this.counters.receivedBytes += bytes.byteLength;
    // Clients hand out Node Buffers; handlers get plain Uint8Array views
    // (same memory, no copy) so the contract is the same for every broker.
    if (Object.getPrototypeOf(bytes) !== Uint8Array.prototype) {
      bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    for (const entry of entries) {
      if (!entry.active) continue;
      try {
        entry.handler(bytes, subject);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  /** Checks a publish's arguments; counts it dropped if not connected. */
  admit(subject: string, bytes: Uint8Array): boolean {
    assertSubject(subject);
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError("The payload must be a Uint8Array");
    }
    if (this.state !== "connected" || this.closed) {
      this.counters.dropped++;
      return false;
    }
    return true;
  }

  /** Counts a publish handed to the client: one message, its bytes. */
  sent(bytes: Uint8Array): void {
    this.counters.published++;
    this.counters.publishedBytes += bytes.byteLength;
  }

  /** A publish counted by {@linkcode sent} was lost after all: a drop. */
  lost(bytes: Uint8Array): void {
    this.counters.published--;
    this.counters.publishedBytes -= bytes.byteLength;
    this.counters.dropped++;
  }

  setState(state: BrokerState): void {
    if (state === this.state) return;
    if (this.state === "connected") this.counters.disconnects++;
    this.state = state;
    for (const listener of [...this.#listeners]) {
      try {
        listener(state);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  listen(listener: (state: BrokerState) => void): () => void {
    if (typeof listener !== "function") {
      throw new TypeError("The listener must be a function");
    }
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Marks closed, drops every handler, and announces "disconnected". */
  shut(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entries of this.#subjects.values()) {
      for (const entry of entries) entry.active = false;
    }
    this.#subjects.clear();
    this.setState("disconnected");
    this.#listeners.clear();
  }

  stats(): BrokerStats {
    return { ...this.counters };
  }
}
