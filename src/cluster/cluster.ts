// A server's cluster: the ClusterBridge that `listen({ cluster })` takes,
// built on a ClusterNode. Attached, it hands the server's manager rooms
// that wrap its local ones (cluster_rooms.ts): joins become the node's
// interest-based subscriptions and presence entries, room broadcasts and
// unknown-id sends become publishes, and what the broker delivers is queued
// on the server's sessions.
import type { ClusterBridge, ClusterLink } from "../cluster_bridge.ts";
import type { Rooms } from "../rooms.ts";
import type { Session } from "../session/session.ts";
import type { Broker, BrokerStats } from "./broker.ts";
import { defaultOnError } from "./_broker_core.ts";
import {
  ClusterNode,
  type ClusterNodeStats,
  type ClusterPresenceOptions,
} from "./cluster_node.ts";
import { connectBroker, type ConnectBrokerOptions } from "./connect_broker.ts";
import { ClusterRooms } from "./cluster_rooms.ts";
import type { Presence, PresenceEntry } from "./presence.ts";
import type { RecoveryBackplane } from "../recovery/backplane.ts";
import type { RoomHistory } from "./history/history.ts";
import { ClusterBackplane } from "./cluster_backplane.ts";

/**
 * Options for {@linkcode Cluster}.
 *
 * @typeParam Meta The public data presence replicates about each member.
 * @typeParam Data The type of `Session.data` on this server.
 *
 * @example Nicks in presence
 * ```ts
 * import { type ClusterOptions, MemoryBrokerHub } from "@x/microsocket/cluster";
 *
 * const options: ClusterOptions<{ nick: string }, { nick: string }> = {
 *   broker: new MemoryBrokerHub().connect(),
 *   meta: (session) => ({ nick: session.data.nick }),
 *   presence: { nodeTimeout: 5000 },
 * };
 * await options.broker.close();
 * ```
 */
// deno-lint-ignore no-explicit-any
export interface ClusterOptions<Meta, Data = any> {
  /** The broker connection (closed with the cluster). */
  broker: Broker;
  /**
   * The public part of a member, replicated by presence for each room it
   * joins (JSON, at most `presence.maxMetaBytes`). Without it, rooms are
   * shared but presence has no entries for this server's sessions.
   */
  // deno-lint-ignore no-explicit-any
  meta?: (session: Session<Data, any, any>, room: string) => Meta;
  /**
   * This node's number, 1 to 2^20 − 1, unique in the cluster: the top of
   * every session id made here.
   *
   * @default {random}
   */
  nodeId?: number;
  /**
   * The first token of every subject, so several apps can share a broker.
   *
   * @default {"microsocket"}
   */
  prefix?: string;
  /** Presence timing and events (join, leave, update; any node). */
  presence?: ClusterPresenceOptions<Meta>;
  /**
   * Room history and session records for recovery across the cluster
   * (closed with the cluster): a server with the `recovery` option then
   * resumes a session whose node died on any node, with every room
   * broadcast and direct message it missed, from this engine
   * ({@linkcode connectHistory}). Its record `window` must be at least the
   * server's recovery window.
   */
  history?: RoomHistory;
  /**
   * Errors nobody can catch: a `meta` or event callback that threw, a
   * malformed message.
   *
   * @default {console.error}
   */
  onError?: (error: unknown) => void;
}

/**
 * Options for {@linkcode connectCluster}: the broker URL and its options,
 * and everything {@linkcode ClusterOptions} takes but the broker.
 *
 * @typeParam Meta The public data presence replicates about each member.
 * @typeParam Data The type of `Session.data` on this server.
 *
 * @example
 * ```ts
 * import type { ConnectClusterOptions } from "@x/microsocket/cluster";
 *
 * const options: ConnectClusterOptions<{ nick: string }> = {
 *   url: "nats://127.0.0.1:4222",
 *   meta: (session) => ({ nick: String(session.id) }),
 * };
 * console.log(options.url);
 * ```
 */
// deno-lint-ignore no-explicit-any
export interface ConnectClusterOptions<Meta, Data = any>
  extends Omit<ClusterOptions<Meta, Data>, "broker"> {
  /** `nats://host:port` or `redis://host:port` (see `connectBroker`). */
  url: string;
  /** Options of the broker client. */
  brokerOptions?: ConnectBrokerOptions;
}

/**
 * Counters of a {@linkcode Cluster}: its node's and its broker's.
 *
 * @example
 * ```ts
 * import type { ClusterStats } from "@x/microsocket/cluster";
 *
 * const lost = (stats: ClusterStats): number => stats.node.dropped;
 * console.log(typeof lost);
 * ```
 */
export interface ClusterStats {
  /** Room and direct messages of the node. */
  node: ClusterNodeStats;
  /** The broker connection. */
  broker: BrokerStats;
}

/**
 * A server's membership in a cluster, given to `listen({ cluster })`.
 *
 * - Session ids are made by the node: unique across the cluster.
 * - A room broadcast (`server.sessions.broadcast(msg, { room })`, unless
 *   `local` or `filter` is set) is delivered to the local members, encoded
 *   once, then published once; nodes without members of the room are not
 *   subscribed to it and receive nothing. The broadcasts a node makes to a
 *   room in one turn (the handlers of one batch of reads) share one broker
 *   message, sent in a microtask right after them, and reach each remote
 *   member as one write range: a burst costs the broker and the other nodes
 *   about what one message costs.
 * - `server.sessions.send(id, msg)` for a session of another node is
 *   encoded once and published to that node.
 * - With `meta`, every session in a room has a presence entry: the room's
 *   members on all nodes are {@linkcode Cluster.members} (local, instant;
 *   no query waits for replies), with join/leave events on every node. A
 *   node that dies or loses the broker leaves everyone's view within
 *   `presence.nodeTimeout`.
 * - Frames from other nodes are queued on local sessions by reference, with
 *   their usual byte budgets and overflow policies. Remote senders are not
 *   paced by a slow local reader (only local senders are); that reader is
 *   cut by its budget or drain timeout as usual, and a node that can't keep
 *   up with the broker is cut by the broker, reconnects and resynchronises
 *   (its members miss what was published meanwhile).
 * - Broker down: local delivery goes on; publishes are dropped and counted
 *   ({@linkcode Cluster.stats}); subscriptions and presence come back with
 *   the broker.
 *
 * Every node of a cluster must use the same codec: frames cross nodes as
 * the sender's codec encoded them.
 *
 * @typeParam Meta The public data presence replicates about each member.
 * @typeParam Data The type of `Session.data` on this server.
 *
 * @example Two servers, one room
 * ```ts
 * import { listen } from "@x/microsocket";
 * import { Cluster, MemoryBrokerHub } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub(); // or: await connectCluster({ url: "nats://…" })
 * await using a = new Cluster({ broker: hub.connect(), meta: (s) => ({ id: s.id }) });
 * await using b = new Cluster({ broker: hub.connect(), meta: (s) => ({ id: s.id }) });
 * const serve = (cluster: Cluster<{ id: number }>) => {
 *   const server = listen({
 *     hostname: "127.0.0.1",
 *     port: 0,
 *     cluster,
 *     onOpen: (session) => void server.sessions.join(session, "lobby"),
 *   });
 *   return server;
 * };
 * const serverA = serve(a);
 * const serverB = serve(b);
 * using ann = await Deno.connect({ port: serverA.addr.port });
 * using bob = await Deno.connect({ port: serverB.addr.port });
 * for (let i = 0; i < 200 && a.members("lobby").length < 2; i++) {
 *   await new Promise((r) => setTimeout(r, 10));
 * }
 * serverA.sessions.broadcast("hi", { room: "lobby" }); // reaches bob on B
 * const buffer = new Uint8Array(8);
 * const n = await bob.read(buffer);
 * assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), "hi\n");
 * await serverA.close();
 * await serverB.close();
 * ```
 */
// deno-lint-ignore no-explicit-any
export class Cluster<Meta = unknown, Data = any>
  implements ClusterBridge, AsyncDisposable {
  /** The node: ids, subscriptions, publishes, presence. */
  readonly node: ClusterNode<Meta>;
  // deno-lint-ignore no-explicit-any
  #meta: ((session: Session<Data, any, any>, room: string) => Meta) | undefined;
  #onError: (error: unknown) => void;
  // The server's rooms while attached (the membership is theirs).
  #rooms: ClusterRooms<Meta> | undefined;
  #link: ClusterLink | undefined;
  readonly #backplane: ClusterBackplane | undefined;

  /**
   * Joins the cluster over an open broker connection.
   *
   * @param options The broker, presence meta and node options.
   * @throws {TypeError} When `meta` is not a function or a node option is
   * invalid.
   * @throws {RangeError} When `nodeId` is out of range.
   */
  constructor(options: ClusterOptions<Meta, Data>) {
    if (options.meta !== undefined && typeof options.meta !== "function") {
      throw new TypeError("meta must be a function");
    }
    this.#meta = options.meta;
    const sink = options.onError ?? defaultOnError;
    this.#onError = (error) => {
      try {
        sink(error);
      } catch {
        // nowhere left to report it
      }
    };
    const history = options.history;
    if (history !== undefined) {
      const engine = history as Partial<RoomHistory> | null;
      if (
        typeof engine !== "object" || engine === null ||
        typeof engine.appendRoom !== "function" ||
        typeof engine.replay !== "function" ||
        typeof engine.sessions !== "object" ||
        typeof engine.window !== "number"
      ) {
        throw new TypeError(
          "history must be a RoomHistory (see connectHistory())",
        );
      }
      this.#backplane = new ClusterBackplane(history, this.#onError);
    }
    const backplane = this.#backplane;
    this.node = new ClusterNode<Meta>({
      broker: options.broker,
      deliverToRoom: (room, frames, exceptId, count) =>
        this.#rooms?.deliver(room, frames, exceptId, count),
      // A session the engine feeds gets its direct messages from its inbox.
      deliverToSession: (id, frames, count) =>
        backplane?.has(id) !== true &&
        (this.#link?.deliverToSession(id, frames, count) ?? false),
      onError: this.#onError,
      ...(options.nodeId !== undefined && { nodeId: options.nodeId }),
      ...(options.prefix !== undefined && { prefix: options.prefix }),
      ...(options.presence !== undefined && { presence: options.presence }),
    });
  }

  /** Replicated presence: who is in which room on every node. */
  get presence(): Presence<Meta> {
    return this.node.presence;
  }

  /**
   * The members of a room on every node, as presence knows them here
   * (local and instant: nothing waits for other nodes).
   *
   * @param room The room.
   * @returns Their entries, in no particular order.
   */
  members(room: string): PresenceEntry<Meta>[] {
    return this.node.presence.list(room);
  }

  /**
   * Re-reads `meta` for a local session in each of its rooms and
   * replicates what changed (e.g. after a rename); with `history`, also
   * rewrites the session's record, so a node that resumes it after this
   * one died gets its data as it is now (otherwise as of at most a third
   * of the record window ago).
   *
   * @param session A session of this node's server.
   * @returns How many presence entries were updated.
   */
  // deno-lint-ignore no-explicit-any
  update(session: Session<Data, any, any>): number {
    this.#backplane?.touch(session.id);
    return this.#rooms?.update(session) ?? 0;
  }

  /**
   * The node's and the broker's counters.
   *
   * @returns A snapshot.
   */
  stats(): ClusterStats {
    return { node: this.node.stats(), broker: this.node.broker.stats() };
  }

  /**
   * Leaves the cluster (presence says goodbye, so other nodes drop this
   * node's members at once) and closes the broker. Close the server first.
   * Idempotent.
   */
  async close(): Promise<void> {
    this.#backplane?.close();
    await this.node.close();
    await this.#backplane?.engine.close();
  }

  /**
   * With `history`: recovery across the cluster, for `listen()` (see
   * {@linkcode ClusterBridge}); `undefined` without.
   */
  get recovery(): RecoveryBackplane | undefined {
    return this.#backplane;
  }

  /** Same as {@linkcode Cluster.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Called by `listen()`; see {@linkcode ClusterBridge.attach}.
   *
   * @param link The server's codec, local rooms and delivery by id.
   * @returns The rooms the server's manager uses: its local ones, wrapped.
   * @throws {TypeError} When it already serves a server.
   */
  // deno-lint-ignore no-explicit-any
  attach(link: ClusterLink): Rooms<any, any, any> {
    if (this.#link !== undefined) {
      throw new TypeError("This cluster already serves a server");
    }
    this.#rooms = new ClusterRooms<Meta>({
      node: this.node,
      local: link.local,
      codec: link.codec,
      meta: this.#meta,
      onError: this.#onError,
      ...(this.#backplane !== undefined && { backplane: this.#backplane }),
    });
    this.#link = link;
    return this.#rooms;
  }

  /** Called by the server once shut down. */
  detach(): void {
    this.#rooms?.release();
    this.#rooms = undefined;
    this.#link = undefined;
  }
}

/**
 * Connects to a broker by URL (`nats://` or `redis://`) and joins the
 * cluster; give the result to `listen({ cluster })`.
 *
 * @typeParam Meta The public data presence replicates about each member.
 * @typeParam Data The type of `Session.data` on this server.
 * @param options The URL, presence meta and node options.
 * @returns The cluster, connected.
 * @throws {TypeError} For an unsupported URL scheme.
 *
 * @example
 * ```ts ignore
 * import { listen } from "@x/microsocket";
 * import { connectCluster } from "@x/microsocket/cluster";
 *
 * const cluster = await connectCluster<{ nick: string }, { nick: string }>({
 *   url: "nats://127.0.0.1:4222",
 *   meta: (session) => ({ nick: session.data.nick }),
 * });
 * const server = listen({ port: 9000, cluster, reusePort: true });
 * // …
 * await server.shutdown();
 * await cluster.close();
 * ```
 */
// deno-lint-ignore no-explicit-any
export async function connectCluster<Meta = unknown, Data = any>(
  options: ConnectClusterOptions<Meta, Data>,
): Promise<Cluster<Meta, Data>> {
  const { url, brokerOptions, ...rest } = options;
  const broker = await connectBroker(url, {
    ...(rest.onError !== undefined && { onError: rest.onError }),
    ...brokerOptions,
  });
  try {
    return new Cluster<Meta, Data>({ ...rest, broker });
  } catch (error) {
    await broker.close();
    throw error;
  }
}
