// The contract between the cluster layer and a message broker: publish and
// subscribe on exact subjects, bytes in and out, and a connection state that
// the cluster watches to resynchronise after an outage. NATS, Redis and the
// in-memory broker implement it; anything else can.

/**
 * The state of a broker connection.
 *
 * - `"connected"`: publishes go out and subscriptions receive.
 * - `"disconnected"`: the link is down (or the broker was closed); publishes
 *   are dropped and counted.
 * - `"reconnecting"`: the client is trying again; publishes are still dropped.
 *
 * @example Reacting to an outage
 * ```ts
 * import type { BrokerState } from "@x/microsocket/cluster";
 *
 * function describe(state: BrokerState): string {
 *   return state === "connected" ? "up" : "down";
 * }
 * console.log(describe("reconnecting"));
 * ```
 */
export type BrokerState = "connected" | "disconnected" | "reconnecting";

/**
 * Receives the bytes published on a subject.
 *
 * The bytes may be a view into a larger buffer owned by the client: read
 * them, keep them, but never modify them (other handlers may share them).
 * A handler that throws is reported to the broker's `onError`; it never
 * reaches the client's timers.
 *
 * @example A handler that decodes text
 * ```ts
 * import type { BrokerHandler } from "@x/microsocket/cluster";
 *
 * const decoder = new TextDecoder();
 * const handler: BrokerHandler = (bytes, subject) => {
 *   console.log(subject, decoder.decode(bytes));
 * };
 * handler(new TextEncoder().encode("hi"), "greetings");
 * ```
 */
export type BrokerHandler = (bytes: Uint8Array, subject: string) => void;

/**
 * One subscription made with {@linkcode Broker.subscribe}.
 *
 * @example Unsubscribing
 * ```ts
 * import { MemoryBrokerHub } from "@x/microsocket/cluster";
 *
 * const hub = new MemoryBrokerHub();
 * await using broker = hub.connect();
 * const subscription = broker.subscribe("news", () => {});
 * subscription.unsubscribe();
 * subscription.unsubscribe(); // idempotent
 * ```
 */
export interface BrokerSubscription {
  /** The subject this subscription listens on. */
  readonly subject: string;
  /** Stops the handler; idempotent. */
  unsubscribe(): void;
}

/**
 * Counters of a broker connection, since it was created.
 *
 * @example Reading the counters
 * ```ts
 * import { MemoryBrokerHub } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub();
 * await using broker = hub.connect();
 * broker.publish("nobody-listens", new Uint8Array([1]));
 * assert.equal(broker.stats().published, 1);
 * ```
 */
export interface BrokerStats {
  /** Messages handed to the broker client. */
  published: number;
  /** Messages received from the broker (before fan-out to handlers). */
  received: number;
  /** Payload bytes of the messages counted in `published`. */
  publishedBytes: number;
  /** Payload bytes of the messages counted in `received`. */
  receivedBytes: number;
  /**
   * Publishes that never left: refused while not connected, over the
   * in-flight limit, or failed after leaving the process.
   */
  dropped: number;
  /** Times the connection went from connected to not connected. */
  disconnects: number;
}

/**
 * A connection to a message broker, as the cluster layer needs it.
 *
 * Subjects are exact strings of `A-Z a-z 0-9 . _ -` (no wildcards, so Redis
 * sharded pub/sub works and NATS and Redis behave alike). The connection
 * reconnects by itself and restores its subscriptions; while it is not
 * connected, {@linkcode Broker.publish} drops (and counts) instead of
 * queueing, so memory stays bounded however long the outage.
 *
 * Implementations: {@linkcode NatsBroker}, {@linkcode RedisBroker},
 * {@linkcode MemoryBroker} (tests, one process); {@linkcode connectBroker}
 * picks by URL.
 *
 * @example Publish and subscribe
 * ```ts
 * import { MemoryBrokerHub } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub();
 * await using a = hub.connect();
 * await using b = hub.connect();
 * const got = Promise.withResolvers<Uint8Array>();
 * b.subscribe("news", (bytes) => got.resolve(bytes));
 * a.publish("news", new Uint8Array([0, 255]));
 * assert.deepEqual(await got.promise, new Uint8Array([0, 255]));
 * ```
 */
export interface Broker extends AsyncDisposable {
  /** `"nats"`, `"redis"`, `"memory"`, … */
  readonly kind: string;
  /** The current connection state. */
  readonly state: BrokerState;
  /**
   * Publishes bytes on a subject. Never throws for a connection problem.
   *
   * @param subject An exact subject.
   * @param bytes The payload; the broker does not keep a reference once it
   * returns (it copies or writes it out).
   * @returns `true` when handed to the client; `false` when dropped
   * (not connected, closed, or over the in-flight limit).
   */
  publish(subject: string, bytes: Uint8Array): boolean;
  /**
   * Calls `handler` for every message on `subject`, across reconnects,
   * until unsubscribed or closed.
   *
   * @param subject An exact subject.
   * @param handler Receives each message.
   * @returns The subscription.
   */
  subscribe(subject: string, handler: BrokerHandler): BrokerSubscription;
  /**
   * Calls `listener` on every state change.
   *
   * @param listener Receives the new state.
   * @returns A function that removes the listener.
   */
  onStateChange(listener: (state: BrokerState) => void): () => void;
  /**
   * The connection's counters.
   *
   * @returns A snapshot of the counters.
   */
  stats(): BrokerStats;
  /**
   * Closes the connection; idempotent. Subscriptions end; later publishes
   * are dropped.
   */
  close(): Promise<void>;
}

/**
 * Options shared by the broker implementations.
 *
 * @example Reporting errors to a logger
 * ```ts
 * import type { BrokerOptions } from "@x/microsocket/cluster";
 *
 * const options: BrokerOptions = {
 *   onError: (error) => console.warn("broker:", error),
 *   maxInFlight: 10_000,
 * };
 * console.log(options.maxInFlight);
 * ```
 */
export interface BrokerOptions {
  /**
   * Receives errors that can't be thrown to anyone: a handler that threw,
   * a publish that failed after leaving, a client error event.
   *
   * @default {console.error}
   */
  onError?: (error: unknown) => void;
  /**
   * Publishes handed to the client but not yet confirmed written, beyond
   * which new publishes are dropped (Redis; NATS and memory write
   * synchronously into their own buffer and ignore it).
   *
   * @default {50000}
   */
  maxInFlight?: number;
}
