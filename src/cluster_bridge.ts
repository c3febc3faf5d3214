// The seam between a server and a cluster, in the core so that the core
// stays free of broker clients: `listen({ cluster })` takes anything that
// implements ClusterBridge (the `./cluster` entry point's Cluster does). The
// bridge gets the manager's local rooms and returns the Rooms the manager
// uses from then on (rooms.ts): the manager itself never branches on being
// clustered.
import type { Codec } from "./codec/codec.ts";
import type { LocalRooms, Rooms } from "./rooms.ts";
import type { RecoveryBackplane } from "./recovery/backplane.ts";

/**
 * What a server gives its {@linkcode ClusterBridge}: the codec every frame
 * crossing nodes is encoded with, its manager's local rooms (the one copy
 * of the membership, and delivery into a room), and delivery of encoded
 * frames to a session by id, with the usual byte budgets, overflow policies
 * and coalescing (frames are queued by reference, never copied).
 *
 * @example A bridge that records what the server gave it
 * ```ts
 * import type { ClusterLink } from "@x/microsocket";
 *
 * let link: ClusterLink | undefined;
 * function attach(given: ClusterLink): void {
 *   link = given;
 * }
 * console.log(typeof attach, link);
 * ```
 */
export interface ClusterLink {
  /** The server's codec: frames crossing nodes are in its encoding. */
  // deno-lint-ignore no-explicit-any
  readonly codec: Codec<any, any>;
  /**
   * The manager's local rooms: the membership (the bridge wraps them and
   * keeps no copy), and {@linkcode LocalRooms.deliver} for frames from
   * other nodes.
   */
  // deno-lint-ignore no-explicit-any
  readonly local: LocalRooms<any, any, any>;
  /**
   * Queues encoded frames on one session of this server's manager.
   *
   * @param id The session id.
   * @param frames One or more encoded frames, back to back; kept by
   * reference, never modified.
   * @param count How many frames `frames` holds (for the counters).
   * @returns `false` when no such session is open here or it refused.
   */
  deliverToSession(id: number, frames: Uint8Array, count?: number): boolean;
}

/**
 * A server's connection to a cluster of servers (the `cluster` option of
 * `listen()`). The core calls it; `@x/microsocket/cluster` implements it
 * over NATS or Redis, so the core has no dependency on a broker client.
 *
 * `listen()` calls {@linkcode ClusterBridge.attach} with the manager's local
 * rooms and puts the manager's rooms behind the {@linkcode Rooms} it
 * returns (`SessionManager.useRooms`), so that:
 * - session ids come from {@linkcode Rooms.nextId}, unique across the
 *   cluster (for every server sharing the manager);
 * - joins and leaves (and a closing session leaving its rooms) go through
 *   it;
 * - `sessions.broadcast(message, { room })` goes through
 *   {@linkcode Rooms.broadcast}, which delivers to the local members and
 *   carries the message to the other nodes; with a `filter` (it can't run
 *   elsewhere) or `local: true` it stays on this server, and broadcasts
 *   without a room always do;
 * - `sessions.send(id, message)` for an id not open here goes to
 *   {@linkcode Rooms.send}.
 *
 * When the server has shut down, {@linkcode ClusterBridge.detach} is called
 * and the manager's rooms are local again.
 *
 * @example The smallest bridge: a cluster of one, with ids from 1000
 * ```ts
 * import { type ClusterBridge, listen } from "@x/microsocket";
 *
 * let next = 1000;
 * const alone: ClusterBridge = {
 *   attach: ({ local }) => ({
 *     nextId: () => next++,
 *     get: (room) => local.get(room),
 *     roomsOf: (session) => local.roomsOf(session),
 *     names: () => local.names(),
 *     join: (session, room) => local.join(session, room),
 *     leave: (session, room) => local.leave(session, room),
 *     leaveAll: (session) => local.leaveAll(session),
 *     broadcast: (room, message, exceptId, filter) =>
 *       local.broadcast(room, message, exceptId, filter),
 *     send: () => false,
 *   }),
 *   detach: () => {},
 * };
 * await using server = listen({ hostname: "127.0.0.1", port: 0, cluster: alone });
 * ```
 */
export interface ClusterBridge {
  /**
   * Called once, when the server starts.
   *
   * @param link The server's codec, local rooms and delivery by id.
   * @returns The rooms the server's manager uses from now on (wrapping
   * `link.local`).
   * @throws {TypeError} When the bridge already serves a server.
   */
  // deno-lint-ignore no-explicit-any
  attach(link: ClusterLink): Rooms<any, any, any>;
  /** Called once, when the server has shut down. */
  detach(): void;
  /**
   * Recovery across the cluster, if the bridge offers it: a server with
   * the `recovery` option keeps its resumable sessions there too, so that
   * they resume on any node (without it, only on their own). A bridge that
   * offers it to a server without `recovery` is refused by `listen()`.
   */
  readonly recovery?: RecoveryBackplane | undefined;
}
