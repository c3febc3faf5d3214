// The Broker on Redis (npm:redis, node-redis v5). Two connections: one
// publishes, one subscribes (a RESP2 connection in subscribed mode can't
// publish). Sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7+) when the server
// has it, so a Redis Cluster routes a channel to one shard instead of
// broadcasting every message to every shard; plain PUBLISH/SUBSCRIBE on
// older servers. node-redis rejects a bare Uint8Array payload from inside a
// timer (uncaught, kills the process), so payloads are wrapped as Buffers
// over the same memory, never copied.
import { Buffer } from "node:buffer";
import type {
  Broker,
  BrokerHandler,
  BrokerOptions,
  BrokerState,
  BrokerStats,
  BrokerSubscription,
} from "./broker.ts";
import { BrokerCore } from "./_broker_core.ts";
import {
  closeRedisPair,
  connectRedisPair,
  type RedisClient,
} from "./_redis_pair.ts";

type Listener = (message: Buffer, channel: Buffer) => void;

/**
 * Options for {@linkcode RedisBroker.connect}.
 *
 * @example
 * ```ts
 * import type { RedisBrokerOptions } from "@x/microsocket/cluster";
 *
 * const options: RedisBrokerOptions = { sharded: false, reconnectWait: 500 };
 * console.log(options.sharded);
 * ```
 */
export interface RedisBrokerOptions extends BrokerOptions {
  /**
   * Use sharded pub/sub (SSUBSCRIBE/SPUBLISH). `undefined` asks the server
   * (Redis 7 and later have it).
   *
   * @default {undefined}
   */
  sharded?: boolean;
  /**
   * Milliseconds between reconnect attempts.
   *
   * @default {250}
   */
  reconnectWait?: number;
  /**
   * Milliseconds between pings that detect a dead link.
   *
   * @default {5000}
   */
  pingInterval?: number;
  /**
   * Milliseconds the first connection may take.
   *
   * @default {5000}
   */
  timeout?: number;
}

/**
 * A {@linkcode Broker} on a Redis server. Exact subjects only (pattern
 * subscriptions can't be sharded).
 *
 * @example Connecting (needs a Redis server)
 * ```ts ignore
 * import { RedisBroker } from "@x/microsocket/cluster";
 *
 * await using broker = await RedisBroker.connect("redis://127.0.0.1:6379");
 * broker.subscribe("news", (bytes) => console.log(bytes));
 * broker.publish("news", new Uint8Array([1, 2, 3]));
 * ```
 */
export class RedisBroker implements Broker {
  /** Always `"redis"`. */
  readonly kind = "redis";
  /** Whether this connection uses sharded pub/sub. */
  readonly sharded: boolean;
  #pub: RedisClient;
  #sub: RedisClient;
  #core: BrokerCore;
  #listeners = new Map<string, Listener>();
  #inFlight = 0;
  #maxInFlight: number;
  #reportedOutage = false;

  /**
   * Connects to a Redis server.
   *
   * @param url `redis://[user:password@]host:port[/db]`.
   * @param options Connection options.
   * @returns The connected broker.
   * @throws Error when the first connection fails.
   */
  static async connect(
    url: string,
    options: RedisBrokerOptions = {},
  ): Promise<RedisBroker> {
    const wait = options.reconnectWait ?? 250;
    const timeout = options.timeout ?? 5000;
    // Until the broker exists, connect() reports failures by rejecting.
    let onError: (error: unknown) => void = () => {};
    const { pub, sub, ready } = await connectRedisPair(url, {
      timeout,
      reconnectWait: wait,
      failWhileOffline: true,
      pingInterval: options.pingInterval ?? 5000,
    }, (error) => onError(error));
    try {
      let sharded = options.sharded;
      if (sharded === undefined) {
        // An ACL may forbid INFO: then plain pub/sub, which every server has.
        const info = await pub.info("server").catch(() => "");
        const major = Number(/redis_version:(\d+)/.exec(info)?.[1] ?? 0);
        sharded = major >= 7;
      }
      ready();
      const broker = new RedisBroker(pub, sub, sharded, options);
      onError = (error) => broker.#onClientError(error);
      return broker;
    } catch (error) {
      pub.destroy();
      sub.destroy();
      throw error;
    }
  }

  private constructor(
    pub: RedisClient,
    sub: RedisClient,
    sharded: boolean,
    options: BrokerOptions,
  ) {
    this.#pub = pub;
    this.#sub = sub;
    this.sharded = sharded;
    this.#maxInFlight = options.maxInFlight ?? 50_000;
    this.#core = new BrokerCore(
      {
        subscribe: (subject) => this.#wireSubscribe(subject),
        unsubscribe: (subject) => this.#wireUnsubscribe(subject),
      },
      options.onError,
      "connected",
    );
    for (const client of [pub, sub]) {
      client.on("end", () => this.#update());
      client.on("reconnecting", () => this.#update());
      client.on("ready", () => this.#update());
    }
  }

  #onClientError(error: unknown): void {
    // A dead server makes every reconnect attempt fail: report the first
    // failure of an outage, not one per attempt.
    if (this.#core.state === "connected" || !this.#reportedOutage) {
      this.#reportedOutage = this.#core.state !== "connected";
      this.#core.onError(error);
    }
    this.#update();
  }

  #update(): void {
    if (this.#core.closed) return;
    if (this.#pub.isReady && this.#sub.isReady) {
      this.#reportedOutage = false;
      this.#core.setState("connected");
    } else if (this.#core.state === "connected") {
      this.#core.setState("disconnected");
      this.#core.setState("reconnecting");
    }
  }

  #wireSubscribe(subject: string): void {
    const core = this.#core;
    const listener: Listener = (message) => core.dispatch(subject, message);
    this.#listeners.set(subject, listener);
    // Queued while offline; node-redis also replays every listener on reconnect.
    const done = this.sharded
      ? this.#sub.sSubscribe(subject, listener, true)
      : this.#sub.subscribe(subject, listener, true);
    done.catch((error: unknown) => core.onError(error));
  }

  #wireUnsubscribe(subject: string): void {
    const listener = this.#listeners.get(subject);
    this.#listeners.delete(subject);
    if (listener === undefined) return;
    const done = this.sharded
      ? this.#sub.sUnsubscribe(subject, listener, true)
      : this.#sub.unsubscribe(subject, listener, true);
    done.catch((error: unknown) => this.#core.onError(error));
  }

  /** The connection state: connected while both connections are ready. */
  get state(): BrokerState {
    return this.#core.state;
  }

  /**
   * Publishes bytes; dropped (and counted) while not connected or while
   * `maxInFlight` publishes await the server's reply. Don't modify `bytes`
   * afterwards: the client writes them later in the same turn or the next.
   *
   * @param subject An exact subject.
   * @param bytes The payload.
   * @returns `false` when dropped.
   */
  publish(subject: string, bytes: Uint8Array): boolean {
    const core = this.#core;
    if (!core.admit(subject, bytes)) return false;
    if (this.#inFlight >= this.#maxInFlight) {
      core.counters.dropped++;
      return false;
    }
    const payload = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    let done: Promise<unknown>;
    try {
      done = this.sharded
        ? this.#pub.sPublish(subject, payload)
        : this.#pub.publish(subject, payload);
    } catch (error) {
      core.counters.dropped++;
      core.onError(error);
      return false;
    }
    this.#inFlight++;
    core.sent(bytes);
    done.then(
      () => this.#inFlight--,
      () => {
        // Lost with the connection: the outage itself is reported once.
        this.#inFlight--;
        core.lost(bytes);
      },
    );
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

  /** Closes both connections; idempotent. */
  async close(): Promise<void> {
    if (this.#core.closed) return;
    this.#core.shut();
    this.#listeners.clear();
    await closeRedisPair([this.#sub, this.#pub]);
  }

  /** Same as {@linkcode RedisBroker.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
