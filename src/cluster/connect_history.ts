// Picks a RoomHistory engine from a URL's scheme, as connectBroker picks a
// broker: an app names its cluster's NATS or Redis server once.
import type { RoomHistory } from "./history/history.ts";
import {
  JetStreamHistory,
  type JetStreamHistoryOptions,
} from "./history/jetstream_history.ts";
import {
  RedisHistory,
  type RedisHistoryOptions,
} from "./history/redis_history.ts";

/**
 * Options for {@linkcode connectHistory}: those of the engine the URL
 * names. Both take `maxMessages` and `maxAge` (per room and per inbox) and
 * `window` (how long a session record outlives its last write); Redis
 * bounds bytes per room (`maxBytes`), JetStream 2.9 only per stream
 * (`maxStreamBytes`). An option of the other engine is a TypeError naming
 * it.
 *
 * @example
 * ```ts
 * import type { ConnectHistoryOptions } from "@x/microsocket/cluster";
 *
 * const options: ConnectHistoryOptions = {
 *   maxMessages: 1000,
 *   maxAge: 120_000,
 *   maxBytes: 1 << 20,
 *   window: 120_000,
 * };
 * console.log(options.window);
 * ```
 */
export type ConnectHistoryOptions =
  | JetStreamHistoryOptions
  | RedisHistoryOptions;

/**
 * Connects the engine that keeps a cluster's room history and session
 * records (the `history` option of a Cluster): `nats://` for NATS
 * JetStream (nats-server with `-js`: one stream, file storage), `redis://`
 * for Redis 7 Streams (a stream per room and per inbox).
 *
 * @param url The server's address.
 * @param options The engine's bounds and window.
 * @returns The connected engine.
 * @throws TypeError for another scheme, or an option of the other engine.
 *
 * @example Recovery across a cluster (needs nats-server -js)
 * ```ts ignore
 * import { listen } from "@x/microsocket";
 * import { connectCluster, connectHistory } from "@x/microsocket/cluster";
 *
 * const history = await connectHistory("nats://127.0.0.1:4222", {
 *   maxMessages: 1000,
 *   maxAge: 120_000,
 *   maxStreamBytes: 256 << 20,
 *   window: 120_000,
 * });
 * const cluster = await connectCluster({ url: "nats://127.0.0.1:4222", history });
 * const server = listen({ port: 9000, cluster, recovery: { window: 120_000 } });
 * ```
 */
export function connectHistory(
  url: string,
  options: ConnectHistoryOptions,
): Promise<RoomHistory> {
  const scheme = /^([a-z]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case "nats":
    case "tls":
      return JetStreamHistory.connect(url, options as JetStreamHistoryOptions);
    case "redis":
    case "rediss":
      if ("maxStreamBytes" in options) {
        return Promise.reject(
          new TypeError(
            "maxStreamBytes is a JetStream option: Redis bounds bytes per room with maxBytes",
          ),
        );
      }
      return RedisHistory.connect(url, options as RedisHistoryOptions);
    default:
      return Promise.reject(
        new TypeError(
          `Unsupported history URL ${
            JSON.stringify(url)
          }: expected nats:// or redis://`,
        ),
      );
  }
}
