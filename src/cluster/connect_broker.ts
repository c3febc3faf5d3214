// Picks a Broker implementation from a URL's scheme, so an app can take
// its cluster address from a flag or an environment variable.
import type { Broker } from "./broker.ts";
import { NatsBroker, type NatsBrokerOptions } from "./nats_broker.ts";
import { RedisBroker, type RedisBrokerOptions } from "./redis_broker.ts";

/**
 * Options for {@linkcode connectBroker}: those of both brokers; each
 * broker reads the ones it knows.
 *
 * @example
 * ```ts
 * import type { ConnectBrokerOptions } from "@x/microsocket/cluster";
 *
 * const options: ConnectBrokerOptions = { reconnectWait: 500 };
 * console.log(options.reconnectWait);
 * ```
 */
export type ConnectBrokerOptions = NatsBrokerOptions & RedisBrokerOptions;

/**
 * Connects to the broker a URL names: `nats://` (or `tls://`) for
 * {@linkcode NatsBroker}, `redis://` (or `rediss://`) for
 * {@linkcode RedisBroker}.
 *
 * @param url The broker's address.
 * @param options Connection options.
 * @returns The connected broker.
 * @throws TypeError when the scheme is not one of those.
 * @throws Error when the first connection fails.
 *
 * @example Joining a cluster named on the command line (needs a server)
 * ```ts ignore
 * import { connectBroker } from "@x/microsocket/cluster";
 *
 * await using broker = await connectBroker(Deno.args[0] ?? "nats://127.0.0.1:4222");
 * console.log(broker.kind, broker.state);
 * ```
 */
export function connectBroker(
  url: string,
  options: ConnectBrokerOptions = {},
): Promise<Broker> {
  const scheme = /^([a-z]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case "nats":
    case "tls":
      return NatsBroker.connect(url, options);
    case "redis":
    case "rediss":
      return RedisBroker.connect(url, options);
    default:
      return Promise.reject(
        new TypeError(
          `Unsupported broker URL ${
            JSON.stringify(url)
          }: expected nats:// or redis://`,
        ),
      );
  }
}
