// Package-internal: the two node-redis connections a Redis user of the
// cluster needs (one for commands and publishing, one for subscriptions,
// which Redis dedicates to pub/sub), opened and closed the same way by the
// broker and the history engine.
import { createClient } from "npm:redis@^5.12.1";

/** One node-redis client. */
export type RedisClient = ReturnType<typeof createClient>;

/** How the pair connects. */
export interface RedisPairOptions {
  /** Connect timeout of each attempt, in ms. */
  timeout: number;
  /** The wait between reconnect attempts after the first connection, in ms. */
  reconnectWait: number;
  /** Commands fail at once while disconnected (no offline queue). */
  failWhileOffline?: boolean;
  /** node-redis's keep-alive PING interval, in ms. */
  pingInterval?: number;
}

/**
 * Opens both connections. The first connection fails fast (the promise
 * rejects, both clients are destroyed); once `ready()` is called, later
 * ones are retried forever. Errors go to `onError`, which the caller may
 * swap once it exists (node-redis throws from its socket events without a
 * listener).
 */
export async function connectRedisPair(
  url: string,
  options: RedisPairOptions,
  onError: (error: unknown) => void,
): Promise<{ pub: RedisClient; sub: RedisClient; ready(): void }> {
  let connected = false;
  const pub = createClient({
    url,
    ...(options.failWhileOffline && { disableOfflineQueue: true }),
    ...(options.pingInterval !== undefined &&
      { pingInterval: options.pingInterval }),
    socket: {
      connectTimeout: options.timeout,
      reconnectStrategy: (_retries: number, error: Error) =>
        connected ? options.reconnectWait : error,
    },
  });
  pub.on("error", onError);
  const sub = pub.duplicate({ disableOfflineQueue: false });
  sub.on("error", onError);
  try {
    await pub.connect();
    await sub.connect();
  } catch (error) {
    pub.destroy();
    sub.destroy();
    throw error;
  }
  return { pub, sub, ready: () => void (connected = true) };
}

/** Closes both connections, politely when they are up. */
export async function closeRedisPair(
  clients: readonly RedisClient[],
): Promise<void> {
  for (const client of clients) {
    try {
      if (client.isReady) await client.close();
      else client.destroy();
    } catch {
      client.destroy();
    }
  }
}
