// An in-process Broker: several cluster nodes in one process talk through a
// MemoryBrokerHub as if it were a NATS or Redis server. For tests (of this
// library and of apps using it), including outages: stop() and start() the
// hub, or cut() one connection, to see what a node does without its broker.
import type {
  Broker,
  BrokerHandler,
  BrokerOptions,
  BrokerState,
  BrokerStats,
  BrokerSubscription,
} from "./broker.ts";
import { BrokerCore } from "./_broker_core.ts";

/**
 * The "server" of in-memory brokers: connections made with
 * {@linkcode MemoryBrokerHub.connect} exchange messages through it.
 * Delivery is asynchronous (a microtask later) and ordered, like a real
 * broker's; each published payload is copied once.
 *
 * @example Two connections, one outage
 * ```ts
 * import { MemoryBrokerHub } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub();
 * await using a = hub.connect();
 * hub.stop();
 * assert.equal(a.state, "reconnecting");
 * assert.equal(a.publish("x", new Uint8Array(1)), false);
 * hub.start();
 * assert.equal(a.state, "connected");
 * ```
 */
export class MemoryBrokerHub {
  #connections = new Set<MemoryBroker>();
  #running = true;
  #queue: Array<[MemoryBroker, string, Uint8Array]> = [];
  #scheduled = false;

  /** Whether the hub is up (see {@linkcode MemoryBrokerHub.stop}). */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Opens a connection to this hub.
   *
   * @param options Broker options.
   * @returns A connected broker (or "reconnecting" while the hub is stopped).
   */
  connect(options: BrokerOptions = {}): MemoryBroker {
    const broker = new MemoryBroker(this, options, this.#running);
    this.#connections.add(broker);
    return broker;
  }

  /**
   * Takes the hub down: every connection goes "disconnected" then
   * "reconnecting", messages in flight are lost, publishes are dropped.
   */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#queue.length = 0;
    for (const connection of this.#connections) connection._down();
  }

  /** Brings the hub back; connections reconnect and keep their subscriptions. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const connection of this.#connections) connection._up();
  }

  /**
   * Cuts one connection (as a broker cuts a slow consumer); it reconnects
   * after `downMs` milliseconds.
   *
   * @param broker A connection of this hub.
   * @param downMs How long it stays down.
   * @returns A promise that resolves once it is back.
   */
  async cut(broker: MemoryBroker, downMs = 0): Promise<void> {
    broker._down();
    await new Promise((resolve) => setTimeout(resolve, downMs));
    if (this.#running) broker._up();
  }

  /** @internal */
  _forget(broker: MemoryBroker): void {
    this.#connections.delete(broker);
  }

  /** @internal */
  _publish(subject: string, bytes: Uint8Array): void {
    const copy = bytes.slice();
    for (const connection of this.#connections) {
      if (connection._wants(subject)) {
        this.#queue.push([connection, subject, copy]);
      }
    }
    if (!this.#scheduled && this.#queue.length > 0) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    for (const [connection, subject, bytes] of queue) {
      connection._deliver(subject, bytes);
    }
  }
}

/**
 * A {@linkcode Broker} connection to a {@linkcode MemoryBrokerHub}. Supports
 * exact subjects only, like the other brokers. Create it with
 * {@linkcode MemoryBrokerHub.connect}.
 *
 * @example Round trip
 * ```ts
 * import { MemoryBrokerHub } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub();
 * await using broker = hub.connect();
 * const got = Promise.withResolvers<number>();
 * broker.subscribe("a.b", (bytes) => got.resolve(bytes[0]!));
 * broker.publish("a.b", new Uint8Array([7]));
 * assert.equal(await got.promise, 7);
 * ```
 */
export class MemoryBroker implements Broker {
  /** Always `"memory"`. */
  readonly kind = "memory";
  #hub: MemoryBrokerHub;
  #core: BrokerCore;
  #wired = new Set<string>();

  /**
   * Use {@linkcode MemoryBrokerHub.connect} instead.
   *
   * @param hub The hub.
   * @param options Broker options.
   * @param up Whether the hub is running.
   */
  constructor(hub: MemoryBrokerHub, options: BrokerOptions, up: boolean) {
    this.#hub = hub;
    this.#core = new BrokerCore(
      {
        subscribe: (subject) => this.#wired.add(subject),
        unsubscribe: (subject) => this.#wired.delete(subject),
      },
      options.onError,
      up ? "connected" : "reconnecting",
    );
  }

  /** The connection state. */
  get state(): BrokerState {
    return this.#core.state;
  }

  /**
   * Publishes a copy of `bytes` to the hub.
   *
   * @param subject An exact subject.
   * @param bytes The payload.
   * @returns `false` when dropped (hub stopped, connection cut or closed).
   */
  publish(subject: string, bytes: Uint8Array): boolean {
    if (!this.#core.admit(subject, bytes)) return false;
    this.#core.sent(bytes);
    this.#hub._publish(subject, bytes);
    return true;
  }

  /**
   * Subscribes to an exact subject.
   *
   * @param subject An exact subject.
   * @param handler Receives each message.
   * @returns The subscription.
   */
  subscribe(subject: string, handler: BrokerHandler): BrokerSubscription {
    return this.#core.add(subject, handler);
  }

  /**
   * Listens to state changes.
   *
   * @param listener Receives each new state.
   * @returns A function removing the listener.
   */
  onStateChange(listener: (state: BrokerState) => void): () => void {
    return this.#core.listen(listener);
  }

  /**
   * The counters.
   *
   * @returns A snapshot.
   */
  stats(): BrokerStats {
    return this.#core.stats();
  }

  /** Leaves the hub; idempotent. */
  close(): Promise<void> {
    this.#core.shut();
    this.#wired.clear();
    this.#hub._forget(this);
    return Promise.resolve();
  }

  /** Same as {@linkcode MemoryBroker.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal */
  _wants(subject: string): boolean {
    return this.#core.state === "connected" && this.#wired.has(subject);
  }

  /** @internal */
  _deliver(subject: string, bytes: Uint8Array): void {
    if (this.#core.state !== "connected" || !this.#wired.has(subject)) return;
    this.#core.dispatch(subject, bytes);
  }

  /** @internal */
  _down(): void {
    if (this.#core.closed) return;
    this.#core.setState("disconnected");
    this.#core.setState("reconnecting");
  }

  /** @internal */
  _up(): void {
    if (this.#core.closed) return;
    this.#core.setState("connected");
  }
}
