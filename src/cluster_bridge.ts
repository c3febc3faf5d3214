// The seam between a server and a cluster, in the core so that the core
// stays free of broker clients: `listen({ cluster })` takes anything that
// implements ClusterBridge (the `./cluster` entry point's Cluster does), and
// hands it a ClusterLink to deliver frames that other nodes sent.
import type { Codec } from "./codec/codec.ts";
import type { Session } from "./session/session.ts";

/**
 * What a server gives its {@linkcode ClusterBridge}: the codec every frame
 * is encoded with, and delivery of already-encoded frames from other nodes
 * to this server's sessions, with their usual byte budgets, overflow
 * policies and coalescing (the frame is queued by reference, never copied).
 *
 * @example A bridge that records what the server gave it
 * ```ts
 * import type { ClusterLink } from "@x/microsocket";
 *
 * let link: ClusterLink | undefined;
 * function attach(given: ClusterLink): void {
 *   link = given;
 * }
 * attach({
 *   codec: { name: "none" } as ClusterLink["codec"],
 *   deliverToRoom: () => 0,
 *   deliverToSession: () => false,
 * });
 * console.log(link?.codec.name);
 * ```
 */
export interface ClusterLink {
  /** The server's codec: frames crossing nodes are in its encoding. */
  // deno-lint-ignore no-explicit-any
  readonly codec: Codec<any, any>;
  /**
   * Queues encoded frames on this server's members of `room`.
   *
   * @param room The room.
   * @param frames One or more encoded frames, back to back (taken or
   * refused as a whole by each member's budget); not modified.
   * @param exceptId A session id to leave out.
   * @param count How many frames `frames` holds (for the counters).
   * @returns How many sessions accepted them.
   */
  deliverToRoom(
    room: string,
    frames: Uint8Array,
    exceptId?: number,
    count?: number,
  ): number;
  /**
   * Queues encoded frames on one session of this server.
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
 * With a bridge:
 * - session ids come from {@linkcode ClusterBridge.nextSessionId}, unique
 *   across the cluster;
 * - `sessions.join` / `leave` (and a closing session leaving its rooms)
 *   call {@linkcode ClusterBridge.joined} / {@linkcode ClusterBridge.left};
 * - `sessions.broadcast(message, { room })` delivers to the local members,
 *   then hands the same encoded bytes to
 *   {@linkcode ClusterBridge.broadcast} once. Broadcasts without a room,
 *   with a `filter` (it can't run elsewhere) or with `local: true` stay on
 *   this server;
 * - `sessions.send(id, message)` for an id not open here encodes once and
 *   calls {@linkcode ClusterBridge.send}.
 *
 * @example The smallest bridge: a cluster of one
 * ```ts
 * import { type ClusterBridge, listen } from "@x/microsocket";
 *
 * let next = 1;
 * const alone: ClusterBridge = {
 *   attach: () => {},
 *   detach: () => {},
 *   nextSessionId: () => 1000 + next++,
 *   joined: () => {},
 *   left: () => {},
 *   broadcast: () => {},
 *   send: () => false,
 * };
 * await using server = listen({ hostname: "127.0.0.1", port: 0, cluster: alone });
 * ```
 */
export interface ClusterBridge {
  /**
   * Called once, when the server starts.
   *
   * @param link Delivery into the server's sessions.
   * @throws {TypeError} When the bridge already serves a server.
   */
  attach(link: ClusterLink): void;
  /** Called once, when the server has shut down. */
  detach(): void;
  /**
   * A new session id, unique across the cluster (a safe integer).
   *
   * @returns The id.
   */
  nextSessionId(): number;
  /**
   * A session of this server joined a room.
   *
   * @param session The session.
   * @param room The room.
   */
  // deno-lint-ignore no-explicit-any
  joined(session: Session<any, any, any>, room: string): void;
  /**
   * A session of this server left a room (or closed while in it).
   *
   * @param session The session.
   * @param room The room.
   */
  // deno-lint-ignore no-explicit-any
  left(session: Session<any, any, any>, room: string): void;
  /**
   * Carries a room broadcast, already delivered here, to the other nodes.
   *
   * @param room The room.
   * @param frame The encoded frame (valid during the call only).
   * @param exceptId A session id to leave out.
   */
  broadcast(room: string, frame: Uint8Array, exceptId?: number): void;
  /**
   * Carries a frame to a session that is not open on this server.
   *
   * @param id The session id.
   * @param frame The encoded frame (valid during the call only).
   * @returns Whether it left (delivery is not confirmed).
   */
  send(id: number, frame: Uint8Array): boolean;
}
