/**
 * microsocket's cluster layer: several servers (processes, machines) that
 * share rooms, send-by-id and presence over a broker they already run,
 * NATS or Redis.
 *
 * - {@linkcode Broker}: publish/subscribe on exact subjects, bytes in and
 *   out, a connection state; {@linkcode NatsBroker}, {@linkcode RedisBroker}
 *   (sharded pub/sub on Redis 7+), {@linkcode MemoryBroker} for tests, and
 *   {@linkcode connectBroker} to pick one from a URL.
 * - {@linkcode ClusterNode}: cluster-unique session ids, room broadcasts
 *   that cost one publish (at most: a turn's broadcasts to a room share
 *   one) and reach only nodes with members, send-by-id to
 *   any node, and {@linkcode Presence}: who is in which room on every node,
 *   replicated without a central owner, with join/leave events, a node
 *   dropped after `nodeTimeout` of silence, resynchronisation on return.
 *
 * Broker outages are survived: local traffic goes on, cross-node messages
 * are dropped and counted (never queued without bound), subscriptions and
 * presence come back with the broker.
 *
 * Flow control across nodes: a node hands what it receives for a room to
 * its local sessions with their usual byte budgets and overflow policies,
 * so a slow client is handled on its node as if the sender were local. A
 * node that can't read from the broker as fast as a room produces is cut by
 * the broker (NATS slow consumer, Redis `client-output-buffer-limit
 * pubsub`): it reconnects, resubscribes and resynchronises presence, and its
 * members miss the room messages published while it was cut. A room is
 * thus as fast as its senders and the broker allow; its slowest node loses
 * messages rather than slowing the others.
 *
 * This entry point depends on `npm:@nats-io/transport-node` and
 * `npm:redis`; the core (`@x/microsocket`) has no dependencies.
 *
 * @example Three nodes in one process, over an in-memory broker
 * ```ts
 * import { ClusterNode, MemoryBrokerHub } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub(); // or: await connectBroker("nats://127.0.0.1:4222")
 * const inbox: string[] = [];
 * const nodes = ["a", "b", "c"].map((name) =>
 *   new ClusterNode<{ nick: string }>({
 *     broker: hub.connect(),
 *     deliverToRoom: (room, frame) => inbox.push(`${name} ${room} ${frame.length}`),
 *     deliverToSession: () => true,
 *   })
 * );
 * const [a, b, c] = nodes as [ClusterNode<{ nick: string }>, ClusterNode<{ nick: string }>, ClusterNode<{ nick: string }>];
 * const ann = a.nextSessionId();
 * a.localJoin("lobby");
 * a.presence.track("lobby", ann, { nick: "ann" });
 * b.localJoin("lobby");
 * // c has no member in the lobby: it never receives the lobby's traffic.
 * b.broadcast("lobby", new Uint8Array(3));
 * for (let i = 0; i < 200 && (inbox.length < 2 || c.presence.count("lobby") < 1); i++) {
 *   await new Promise((r) => setTimeout(r, 10));
 * }
 * assert.deepEqual(inbox.sort(), ["a lobby 3", "b lobby 3"]);
 * assert.equal(c.presence.list("lobby")[0]?.meta.nick, "ann");
 * for (const node of nodes) await node.close();
 * ```
 *
 * @module
 */
export * from "./src/cluster/broker.ts";
export * from "./src/cluster/memory_broker.ts";
export * from "./src/cluster/nats_broker.ts";
export * from "./src/cluster/redis_broker.ts";
export * from "./src/cluster/connect_broker.ts";
export * from "./src/cluster/presence.ts";
export * from "./src/cluster/cluster_node.ts";
export * from "./src/cluster/cluster.ts";
export * from "./src/cluster/cluster_metrics.ts";
export * from "./src/cluster/connect_history.ts";
export type {
  Gap,
  GapReason,
  HistoryEntry,
  HistoryLimits,
  HistoryPosition,
  HistoryStats,
  LiveEntry,
  LiveHandler,
  LiveSubscription,
  ReplayInbox,
  ReplayRequest,
  ReplayResult,
  ReplayRoom,
  RoomHistory,
  SessionRecord,
  SessionRecords,
} from "./src/cluster/history/history.ts";
export type { JetStreamHistoryOptions } from "./src/cluster/history/jetstream_history.ts";
export type { RedisHistoryOptions } from "./src/cluster/history/redis_history.ts";
