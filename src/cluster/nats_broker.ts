// The Broker on NATS (npm:@nats-io/transport-node v3). NATS forwards a
// subject only to connections subscribed to it, which is what makes
// interest-based rooms cost nothing on nodes without members. The client
// reconnects and resubscribes by itself; this wrapper drops publishes while
// it is away instead of letting the client buffer them.
import {
  connect,
  type NatsConnection,
  type Subscription,
} from "npm:@nats-io/transport-node@^3.4.0";
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
 * Options for {@linkcode NatsBroker.connect}.
 *
 * @example
 * ```ts
 * import type { NatsBrokerOptions } from "@x/microsocket/cluster";
 *
 * const options: NatsBrokerOptions = { reconnectWait: 500, noEcho: true };
 * console.log(options.reconnectWait);
 * ```
 */
export interface NatsBrokerOptions extends BrokerOptions {
  /**
   * Milliseconds between reconnect attempts.
   *
   * @default {250}
   */
  reconnectWait?: number;
  /**
   * Milliseconds between client pings; two missed pongs mark the
   * connection stale and start a reconnect.
   *
   * @default {10000}
   */
  pingInterval?: number;
  /**
   * Don't receive this connection's own publishes (the server filters
   * them, saving the bytes). The cluster layer ignores its own echoes
   * anyway; turn it off only to share one connection between two nodes.
   *
   * @default {true}
   */
  noEcho?: boolean;
  /**
   * Milliseconds the first connection may take.
   *
   * @default {5000}
   */
  timeout?: number;
}

/**
 * A {@linkcode Broker} on a NATS server. Exact subjects only (NATS
 * wildcards are not exposed, so that every broker behaves alike).
 *
 * Limit: while connected, the NATS client keeps what its socket can't take
 * yet in its own outbound buffer, which has no limit this wrapper can set
 * (`maxInFlight` is ignored); only a server that stalls for long (it slows
 * down fast publishers) would let it grow.
 *
 * @example Connecting (needs a NATS server)
 * ```ts ignore
 * import { NatsBroker } from "@x/microsocket/cluster";
 *
 * await using broker = await NatsBroker.connect("nats://127.0.0.1:4222");
 * broker.subscribe("news", (bytes) => console.log(bytes));
 * broker.publish("news", new Uint8Array([1, 2, 3]));
 * ```
 */
export class NatsBroker implements Broker {
  /** Always `"nats"`. */
  readonly kind = "nats";
  #nc: NatsConnection;
  #core: BrokerCore;
  #wire = new Map<string, Subscription>();
  #watching: Promise<void>;

  /**
   * Connects to a NATS server.
   *
   * @param url `nats://host:port` (several separated by commas).
   * @param options Connection options.
   * @returns The connected broker.
   * @throws Error when the first connection fails.
   */
  static async connect(
    url: string,
    options: NatsBrokerOptions = {},
  ): Promise<NatsBroker> {
    const servers = url.split(",").map((s) => s.trim()).filter(Boolean);
    const nc = await connect({
      servers,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectWait ?? 250,
      reconnectJitter: 50,
      pingInterval: options.pingInterval ?? 10_000,
      maxPingOut: 2,
      noEcho: options.noEcho ?? true,
      timeout: options.timeout ?? 5000,
      name: "microsocket",
    });
    return new NatsBroker(nc, options);
  }

  private constructor(nc: NatsConnection, options: BrokerOptions) {
    this.#nc = nc;
    this.#core = new BrokerCore(
      {
        subscribe: (subject) => this.#wireSubscribe(subject),
        unsubscribe: (subject) => {
          const sub = this.#wire.get(subject);
          this.#wire.delete(subject);
          sub?.unsubscribe();
        },
      },
      options.onError,
      "connected",
    );
    this.#watching = this.#watch();
  }

  async #watch(): Promise<void> {
    try {
      for await (const status of this.#nc.status()) {
        switch (status.type) {
          case "disconnect":
          case "staleConnection":
            this.#core.setState("disconnected");
            break;
          case "reconnecting":
            this.#core.setState("reconnecting");
            break;
          case "reconnect":
            this.#core.setState("connected");
            break;
          case "error":
            this.#core.onError(status.error);
            break;
          case "slowConsumer":
            this.#core.onError(
              new Error(
                `NATS slow consumer on ${status.sub.getSubject()}: ${status.pending} pending`,
              ),
            );
            break;
          case "close":
            this.#core.setState("disconnected");
            return;
        }
      }
    } catch (error) {
      this.#core.onError(error);
    }
  }

  #wireSubscribe(subject: string): void {
    const sub = this.#nc.subscribe(subject, {
      callback: (error, msg) => {
        if (error !== null) {
          this.#core.onError(error);
          return;
        }
        this.#core.dispatch(subject, msg.data);
      },
    });
    this.#wire.set(subject, sub);
  }

  /** The connection state. */
  get state(): BrokerState {
    return this.#core.state;
  }

  /**
   * Publishes bytes; dropped (and counted) while not connected. Don't
   * modify `bytes` afterwards: the client may hold them until its next
   * flush.
   *
   * @param subject An exact subject.
   * @param bytes The payload.
   * @returns `false` when dropped.
   */
  publish(subject: string, bytes: Uint8Array): boolean {
    if (!this.#core.admit(subject, bytes)) return false;
    try {
      this.#nc.publish(subject, bytes);
    } catch (error) {
      this.#core.counters.dropped++;
      this.#core.onError(error);
      return false;
    }
    this.#core.sent(bytes);
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

  /** Closes the connection; idempotent. */
  async close(): Promise<void> {
    if (this.#core.closed) return await this.#watching;
    this.#core.shut();
    this.#wire.clear();
    try {
      await this.#nc.close();
    } catch (error) {
      this.#core.onError(error);
    }
    await this.#watching;
  }

  /** Same as {@linkcode NatsBroker.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
