// Rooms behind one interface, as socket.io's Adapter puts them: who is in
// which room, the delivery of a room broadcast, session ids, and what
// reaches ids that are not open here. A SessionManager delegates to one and
// never asks whether it is clustered: LocalRooms (this file) is the
// default, and a cluster (`@x/microsocket/cluster`) wraps the manager's
// LocalRooms, so that membership is stored once, here, on every node.
import type { Codec } from "./codec/codec.ts";
import type { Session } from "./session/session.ts";
import { SegmentWriter } from "./_shared_segment.ts";
import { fanOut, fanOutFrames } from "./_fan_out.ts";

/**
 * A room as {@linkcode Rooms.get} shows it: its members on this server.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example
 * ```ts
 * import { LocalRooms, type LocalRoom } from "@x/microsocket";
 *
 * const room: LocalRoom<unknown, string, string> | undefined =
 *   new LocalRooms<unknown, string, string>().get("lobby");
 * console.log(room?.members.size ?? 0); // 0
 * ```
 */
export interface LocalRoom<Data, In, Out> {
  /** Its members here (the live set: read it, never change it). */
  readonly members: ReadonlySet<Session<Data, In, Out>>;
}

/**
 * Where a {@linkcode SessionManager}'s rooms live and how its messages reach
 * sessions that are not open in it. The manager calls it for every room
 * operation and unknown id, and draws its session ids from it.
 * {@linkcode LocalRooms} is the default; a cluster's implementation wraps
 * the manager's `LocalRooms` (see `SessionManager.useRooms`).
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example Rooms that log joins, over the local ones
 * ```ts
 * import { LocalRooms, type Rooms, SessionManager } from "@x/microsocket";
 *
 * const sessions = new SessionManager<unknown, string, string>();
 * sessions.useRooms((local: LocalRooms<unknown, string, string>) => {
 *   const logged: Rooms<unknown, string, string> = {
 *     nextId: () => local.nextId(),
 *     get: (room) => local.get(room),
 *     roomsOf: (session) => local.roomsOf(session),
 *     names: () => local.names(),
 *     join: (session, room) => {
 *       console.log(`${session.id} joins ${room}`);
 *       return local.join(session, room);
 *     },
 *     leave: (session, room) => local.leave(session, room),
 *     leaveAll: (session) => local.leaveAll(session),
 *     broadcast: (room, message, exceptId, filter) =>
 *       local.broadcast(room, message, exceptId, filter),
 *     send: () => false,
 *   };
 *   return logged;
 * });
 * ```
 */
export interface Rooms<Data, In, Out> {
  /**
   * A new session id, unique among the ids these rooms reach (the manager,
   * or the whole cluster): every server sharing the manager uses it.
   *
   * @returns A safe integer above 0.
   */
  nextId(): number;
  /**
   * A room with members here.
   *
   * @param room The room's name.
   * @returns The room, or `undefined` when it has no member here.
   */
  get(room: string): LocalRoom<Data, In, Out> | undefined;
  /**
   * The rooms a session is in (the live set: read it, never change it).
   *
   * @param session A session.
   * @returns Its rooms, or `undefined` when in none.
   */
  roomsOf(session: Session<Data, In, Out>): ReadonlySet<string> | undefined;
  /**
   * The names of the rooms with members here, in creation order.
   *
   * @returns An iterator of names.
   */
  names(): IterableIterator<string>;
  /**
   * Puts an open session of the manager in a room.
   *
   * @param session The session.
   * @param room The room's name.
   * @returns `false` when it was a member already.
   */
  join(session: Session<Data, In, Out>, room: string): boolean;
  /**
   * Takes a session out of a room.
   *
   * @param session The session.
   * @param room The room's name.
   * @returns `false` when it was not a member.
   */
  leave(session: Session<Data, In, Out>, room: string): boolean;
  /**
   * Takes a closing session out of all its rooms.
   *
   * @param session The session.
   */
  leaveAll(session: Session<Data, In, Out>): void;
  /**
   * Queues a message on a room's members: encoded once, shared by
   * reference, never waiting for a peer.
   *
   * @param room The room's name.
   * @param message The message.
   * @param exceptId A session id to leave out; -1 for none.
   * @param filter Only the members it accepts (they are all here: a
   * filtered broadcast stays on this server).
   * @param local Only the members here, even when there are others.
   * @returns How many sessions here accepted it.
   * @throws {TypeError} When the codec cannot encode the message.
   */
  broadcast(
    room: string,
    message: Out,
    exceptId: number,
    filter: ((session: Session<Data, In, Out>) => boolean) | undefined,
    local?: boolean,
  ): number;
  /**
   * Sends to a session id that is not open in the manager.
   *
   * @param id The session id.
   * @param message The message.
   * @returns Whether it left (delivery elsewhere is not confirmed);
   * `false` when nobody else can have this id.
   */
  send(id: number, message: Out): boolean;
  /**
   * Whether direct messages to a session open here must go through
   * {@linkcode Rooms.send} too (a cluster that keeps them for recovery);
   * absent means never.
   *
   * @param id The session id.
   * @returns `true` to route them through `send`.
   */
  relays?(id: number): boolean;
}

/**
 * The rooms of one server (the default {@linkcode Rooms}): membership in
 * two maps (room → members, session → rooms), ids counted from 1, room
 * broadcasts encoded once into a segment per room, nothing beyond this
 * process. A room with no members left disappears.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example
 * ```ts
 * import { LocalRooms } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const rooms = new LocalRooms();
 * assert.equal(rooms.nextId(), 1);
 * assert.equal(rooms.nextId(), 2);
 * assert.deepEqual([...rooms.names()], []);
 * ```
 */
export class LocalRooms<Data = unknown, In = unknown, Out = In>
  implements Rooms<Data, In, Out> {
  readonly #rooms = new Map<string, Room<Data, In, Out>>();
  readonly #roomsOf = new Map<Session<Data, In, Out>, Set<string>>();
  #lastId = 0;
  // The room of the latest broadcast, whose segment holds its frame.
  #last: Room<Data, In, Out> | undefined;

  /**
   * The next id, from 1.
   *
   * @returns The id.
   */
  nextId(): number {
    return ++this.#lastId;
  }

  /**
   * A room with members.
   *
   * @param room The room's name.
   * @returns The room, or `undefined`.
   */
  get(room: string): LocalRoom<Data, In, Out> | undefined {
    return this.#rooms.get(room);
  }

  /**
   * The rooms a session is in (the live set).
   *
   * @param session A session.
   * @returns Its rooms, or `undefined` when in none.
   */
  roomsOf(session: Session<Data, In, Out>): ReadonlySet<string> | undefined {
    return this.#roomsOf.get(session);
  }

  /**
   * The names of the rooms with members.
   *
   * @returns An iterator of names, in creation order.
   */
  names(): IterableIterator<string> {
    return this.#rooms.keys();
  }

  /**
   * Puts a session in a room, creating the room if needed.
   *
   * @param session The session.
   * @param room The room's name.
   * @returns `false` when it was a member already.
   */
  join(session: Session<Data, In, Out>, room: string): boolean {
    let entry = this.#rooms.get(room);
    if (entry === undefined) {
      entry = { members: new Set(), writer: undefined };
      this.#rooms.set(room, entry);
    }
    const members = entry.members;
    if (members.has(session)) return false;
    members.add(session);
    // A broadcast run (src/session/_shared_run.ts) is for the members it
    // started with: one joining or leaving ends it.
    entry.writer?.endRun();
    let rooms = this.#roomsOf.get(session);
    if (rooms === undefined) {
      rooms = new Set();
      this.#roomsOf.set(session, rooms);
    }
    rooms.add(room);
    return true;
  }

  /**
   * Takes a session out of a room; the room disappears when it empties.
   *
   * @param session The session.
   * @param room The room's name.
   * @returns `false` when it was not a member.
   */
  leave(session: Session<Data, In, Out>, room: string): boolean {
    const entry = this.#rooms.get(room);
    if (entry === undefined || !entry.members.delete(session)) return false;
    entry.writer?.endRun();
    if (entry.members.size === 0) this.#rooms.delete(room);
    const rooms = this.#roomsOf.get(session)!;
    rooms.delete(room);
    if (rooms.size === 0) this.#roomsOf.delete(session);
    return true;
  }

  /**
   * Takes a session out of all its rooms. The set
   * {@linkcode LocalRooms.roomsOf} gave for it before still lists them
   * afterwards (it is let go, not emptied).
   *
   * @param session The session.
   */
  leaveAll(session: Session<Data, In, Out>): void {
    const rooms = this.#roomsOf.get(session);
    if (rooms === undefined) return;
    this.#roomsOf.delete(session);
    for (const room of rooms) {
      const entry = this.#rooms.get(room)!;
      entry.members.delete(session);
      entry.writer?.endRun();
      if (entry.members.size === 0) this.#rooms.delete(room);
    }
  }

  /**
   * Queues a message on the room's members, encoded once.
   *
   * @param room The room's name.
   * @param message The message.
   * @param exceptId A session id to leave out; -1 for none.
   * @param filter Only the members it accepts.
   * @returns How many accepted it.
   * @throws {TypeError} When the codec cannot encode the message.
   */
  broadcast(
    room: string,
    message: Out,
    exceptId: number,
    filter: ((session: Session<Data, In, Out>) => boolean) | undefined,
  ): number {
    const entry = this.#rooms.get(room);
    this.#last = entry;
    if (entry === undefined) return 0;
    const writer = entry.writer ??= new SegmentWriter();
    return fanOut(entry.members, writer, message, exceptId, filter);
  }

  /**
   * The frame the latest {@linkcode LocalRooms.broadcast} encoded for its
   * members, when it encoded one with `codec` (a cluster publishes it as it
   * is, rather than encoding the message again).
   *
   * @param codec The codec the frame must be in.
   * @returns The frame (valid until the next broadcast), or `undefined`.
   */
  // deno-lint-ignore no-explicit-any
  encoded(codec: Codec<any, any>): Uint8Array | undefined {
    const writer = this.#last?.writer;
    if (writer === undefined || writer.codec !== codec) return undefined;
    return writer.base.subarray(writer.start, writer.end);
  }

  /**
   * Queues frames that arrived encoded (from another cluster node) on a
   * room's members, by reference, with their usual byte budgets; members
   * with another codec get them re-encoded once per codec.
   *
   * @param room The room's name.
   * @param codec The codec the frames are in.
   * @param frames `count` frames back to back; not modified.
   * @param exceptId A session id to leave out; -1 for none.
   * @param count How many frames `frames` holds (for the counters).
   * @param filter Only the members it accepts.
   * @returns How many sessions accepted them.
   */
  deliver(
    room: string,
    // deno-lint-ignore no-explicit-any
    codec: Codec<any, any>,
    frames: Uint8Array,
    exceptId: number,
    count: number,
    filter?: (session: Session<Data, In, Out>) => boolean,
  ): number {
    const entry = this.#rooms.get(room);
    if (entry === undefined) return 0;
    const writer = entry.writer ??= new SegmentWriter();
    return fanOutFrames(
      entry.members,
      writer,
      codec,
      frames,
      exceptId,
      count,
      filter,
    );
  }

  /**
   * Nothing beyond this server: always `false`.
   *
   * @returns `false`.
   */
  send(): boolean {
    return false;
  }
}

// A room's members, and the segment its broadcasts are encoded into (made
// on its first broadcast).
interface Room<Data, In, Out> extends LocalRoom<Data, In, Out> {
  readonly members: Set<Session<Data, In, Out>>;
  writer: SegmentWriter | undefined;
}
