// The Rooms a clustered server's manager uses (what Cluster.attach returns):
// the manager's own LocalRooms, wrapped. Membership stays there, stored
// once; this adds what a cluster needs beyond it: the node's subscription
// to a room while the room has local members (derived from the local
// membership, one localJoin per room, not a count per member), presence
// entries, publishes, cluster-wide ids, and sends to other nodes.
import type { Codec } from "../codec/codec.ts";
import type { Session } from "../session/session.ts";
import type { LocalRoom, LocalRooms, Rooms } from "../rooms.ts";
import { ClusterNode } from "./cluster_node.ts";
import type { ClusterBackplane } from "./cluster_backplane.ts";

// deno-lint-ignore no-explicit-any
type AnySession = Session<any, any, any>;

/** What a {@linkcode ClusterRooms} needs from its Cluster. */
export interface ClusterRoomsOptions<Meta> {
  /** The node: ids, subscriptions, publishes, presence. */
  node: ClusterNode<Meta>;
  /** The server's local rooms, wrapped. */
  // deno-lint-ignore no-explicit-any
  local: LocalRooms<any, any, any>;
  /** The codec frames cross nodes in. */
  // deno-lint-ignore no-explicit-any
  codec: Codec<any, any>;
  /** The presence entry of a member, if the cluster tracks presence. */
  meta: ((session: AnySession, room: string) => Meta) | undefined;
  /** Where errors nobody can catch go. */
  onError: (error: unknown) => void;
  /**
   * With `history`: the resumable sessions fed from the engine (room
   * broadcasts and direct messages reach them through it, with positions,
   * and never through the broker).
   */
  backplane?: ClusterBackplane;
}

/**
 * A clustered server's rooms; see the file comment. Made by
 * `Cluster.attach`, not by hand.
 *
 * @typeParam Meta The public data presence replicates about each member.
 *
 * @example What a clustered server's manager uses
 * ```ts
 * import { listen } from "@x/microsocket";
 * import { Cluster, MemoryBrokerHub } from "@x/microsocket/cluster";
 *
 * await using cluster = new Cluster({ broker: new MemoryBrokerHub().connect() });
 * const server = listen({ hostname: "127.0.0.1", port: 0, cluster });
 * console.log(server.sessions.nextId() > 2 ** 33); // true: a cluster id
 * await server.close();
 * ```
 */
// deno-lint-ignore no-explicit-any
export class ClusterRooms<Meta> implements Rooms<any, any, any> {
  readonly #node: ClusterNode<Meta>;
  // deno-lint-ignore no-explicit-any
  readonly #local: LocalRooms<any, any, any>;
  // deno-lint-ignore no-explicit-any
  readonly #codec: Codec<any, any>;
  readonly #meta: ((session: AnySession, room: string) => Meta) | undefined;
  readonly #onError: (error: unknown) => void;
  readonly #backplane: ClusterBackplane | undefined;
  // Leaves out the sessions the engine feeds (only while there are some).
  readonly #unfed = (session: AnySession): boolean =>
    !this.#backplane!.has(session.id);

  /**
   * Wraps a server's local rooms; rooms that already have members are
   * subscribed to (and their members tracked) at once.
   *
   * @param options The node, the local rooms, the codec and `meta`.
   */
  constructor(options: ClusterRoomsOptions<Meta>) {
    this.#node = options.node;
    this.#local = options.local;
    this.#codec = options.codec;
    this.#meta = options.meta;
    this.#onError = options.onError;
    this.#backplane = options.backplane;
    for (const room of this.#local.names()) {
      for (const session of this.#local.get(room)!.members) {
        this.#joined(session, room);
      }
    }
  }

  /**
   * A session id unique across the cluster.
   *
   * @returns The id.
   */
  nextId(): number {
    return this.#node.nextSessionId();
  }

  /**
   * A room with members on this server.
   *
   * @param room The room.
   * @returns The room, or `undefined`.
   */
  get(room: string): LocalRoom<unknown, unknown, unknown> | undefined {
    return this.#local.get(room);
  }

  /**
   * The rooms a session of this server is in.
   *
   * @param session The session.
   * @returns Its rooms, or `undefined`.
   */
  roomsOf(session: AnySession): ReadonlySet<string> | undefined {
    return this.#local.roomsOf(session);
  }

  /**
   * The rooms with members on this server.
   *
   * @returns Their names.
   */
  names(): IterableIterator<string> {
    return this.#local.names();
  }

  /**
   * Joins locally; the room's first local member subscribes the node, and
   * every member gets a presence entry.
   *
   * @param session The session.
   * @param room The room.
   * @returns `false` when it was a member already.
   */
  join(session: AnySession, room: string): boolean {
    if (!this.#local.join(session, room)) return false;
    this.#joined(session, room);
    const backplane = this.#backplane;
    if (backplane?.has(session.id)) backplane.join(session.id, room);
    return true;
  }

  /**
   * Leaves locally; the presence entry goes, and the room's last local
   * member unsubscribes the node.
   *
   * @param session The session.
   * @param room The room.
   * @returns `false` when it was not a member.
   */
  leave(session: AnySession, room: string): boolean {
    if (!this.#local.leave(session, room)) return false;
    this.#left(session, room);
    const backplane = this.#backplane;
    if (backplane?.has(session.id)) backplane.leave(session.id, room);
    return true;
  }

  /**
   * A closing session leaves all its rooms.
   *
   * @param session The session.
   */
  leaveAll(session: AnySession): void {
    const rooms = this.#local.roomsOf(session);
    if (rooms === undefined) return;
    // A closing session's record keeps its rooms (the server's recovery
    // ends or keeps the record, as the reason says). The set outlives
    // leaveAll (let go, not emptied).
    this.#local.leaveAll(session);
    for (const room of rooms) this.#left(session, room);
  }

  /**
   * Delivers to the local members, then (unless `local` or a `filter`)
   * publishes once: the bytes the local members got when they are in the
   * cluster's codec, else the message encoded once with it. With history,
   * it is also appended to the engine, which feeds the resumable members
   * on every node (this one too: they are left out here).
   *
   * @param room The room.
   * @param message The message.
   * @param exceptId A session id to leave out; -1 for none.
   * @param filter Only the local members it accepts; nothing published.
   * @param local Only the local members.
   * @returns How many local sessions accepted it.
   */
  broadcast(
    room: string,
    message: unknown,
    exceptId: number,
    filter: ((session: AnySession) => boolean) | undefined,
    local?: boolean,
  ): number {
    if (local === true || filter !== undefined) {
      // It can't run elsewhere: every member here gets it directly.
      return this.#local.broadcast(room, message, exceptId, filter);
    }
    const backplane = this.#backplane;
    const fed = backplane !== undefined && backplane.size > 0;
    const accepted = this.#local.broadcast(
      room,
      message,
      exceptId,
      fed ? this.#unfed : undefined,
    );
    const frame = this.#local.encoded(this.#codec) ??
      this.#codec.encode(message);
    try {
      this.#node.publish(room, frame, exceptId === -1 ? undefined : exceptId);
    } catch (error) {
      this.#onError(error);
    }
    backplane?.broadcast(room, frame, exceptId);
    return accepted;
  }

  /**
   * Publishes to the node that made `id`, encoded once.
   *
   * @param id A session id not open here.
   * @param message The message.
   * @returns Whether it was published (`false` for this node's own ids).
   */
  send(id: number, message: unknown): boolean {
    const backplane = this.#backplane;
    const here = ClusterNode.nodeOf(id) === this.#node.nodeId;
    if (backplane === undefined) {
      if (here) return false;
      return this.#node.sendTo(id, this.#codec.encode(message));
    }
    // With history, a direct message goes to the session's inbox in the
    // engine (whichever node serves it gets it from there, and a session
    // whose node died gets it when it resumes), and through the broker to
    // the node that made the id, for a session that isn't resumable.
    const frame = this.#codec.encode(message);
    backplane.send(id, frame);
    if (!here) this.#node.sendTo(id, frame);
    return true;
  }

  /**
   * Whether direct messages to a session open here go through these rooms
   * (the engine feeds it) rather than straight to it.
   *
   * @param id The session id.
   * @returns `true` for a resumable session fed from the engine.
   */
  relays(id: number): boolean {
    return this.#backplane?.has(id) === true;
  }

  /**
   * Frames from another node to this server's members of a room.
   *
   * @param room The room.
   * @param frames `count` encoded frames, back to back.
   * @param exceptId A session id to leave out.
   * @param count How many frames.
   */
  deliver(
    room: string,
    frames: Uint8Array,
    exceptId: number | undefined,
    count: number,
  ): void {
    const backplane = this.#backplane;
    this.#local.deliver(
      room,
      this.#codec,
      frames,
      exceptId ?? -1,
      count,
      backplane !== undefined && backplane.size > 0 ? this.#unfed : undefined,
    );
  }

  /**
   * Re-reads `meta` for a local session in each of its rooms and
   * replicates what changed.
   *
   * @param session The session.
   * @returns How many entries were updated.
   */
  update(session: AnySession): number {
    const rooms = this.#local.roomsOf(session);
    if (rooms === undefined || this.#meta === undefined) return 0;
    let count = 0;
    for (const room of rooms) {
      try {
        const meta = this.#meta(session, room);
        if (this.#node.presence.update(room, session.id, meta)) count++;
      } catch (error) {
        this.#onError(error);
      }
    }
    return count;
  }

  /**
   * The server is gone: its remaining members leave presence and the node
   * its rooms (the local rooms keep them, unclustered).
   */
  release(): void {
    for (const room of this.#local.names()) {
      for (const session of this.#local.get(room)!.members) {
        this.#node.presence.untrack(room, session.id);
      }
      this.#node.localLeave(room);
    }
  }

  #joined(session: AnySession, room: string): void {
    if (this.#local.get(room)!.members.size === 1) {
      try {
        this.#node.localJoin(room);
      } catch (error) {
        // A room name the broker can't carry: local only.
        this.#onError(error);
        return;
      }
    } else if (this.#node.localCount(room) === 0) {
      return; // refused when its first member joined: local only
    }
    if (this.#meta === undefined) return;
    try {
      this.#node.presence.track(room, session.id, this.#meta(session, room));
    } catch (error) {
      this.#onError(error);
    }
  }

  #left(session: AnySession, room: string): void {
    this.#node.presence.untrack(room, session.id);
    if (this.#local.get(room) === undefined) this.#node.localLeave(room);
  }
}
