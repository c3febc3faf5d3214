// The seed's SessionM: sessions by id, send-by-id, broadcast, and rooms.
// A session leaves the manager and all its rooms the moment it starts
// closing, so a broadcast never targets a session that can't take it.
import type { Session } from "./session.ts";
import { onClosing } from "./_closing.ts";

/**
 * Whom a broadcast reaches: everyone (the default), the members of a room,
 * minus `except`, and only those `filter` accepts.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example Everyone in a room but the sender, and only the grown-ups
 * ```ts
 * import { type BroadcastOptions, listen, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Member = { age: number };
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   data: (): Member => ({ age: 0 }),
 * });
 * function toAdults(sender: Session<Member, string, string>) {
 *   const options: BroadcastOptions<Member, string, string> = {
 *     room: "lobby",
 *     except: sender,
 *     filter: (session) => session.data.age >= 18,
 *   };
 *   return server.sessions.broadcast("hello", options);
 * }
 * assert.equal(typeof toAdults, "function");
 * ```
 */
export interface BroadcastOptions<Data, In, Out> {
  /** Only the members of this room. */
  room?: string;
  /** Leave out this session (or session id), typically the sender. */
  except?: Session<Data, In, Out> | number;
  /** Only sessions for which this returns `true`. */
  filter?: (session: Session<Data, In, Out>) => boolean;
}

/**
 * The sessions of a server, by id, with rooms.
 *
 * `listen()` creates one per server (`server.sessions`) and adds each session
 * as it opens. A session that starts closing removes itself from the manager
 * and from every room; a room with no members left disappears.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example A chat room in three calls
 * ```ts
 * import { listen, lines } from "@x/microsocket";
 *
 * const server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: lines(),
 *   onOpen: (session): void => {
 *     server.sessions.join(session, "lobby");
 *   },
 *   onMessage: (session, line): void => {
 *     server.sessions.broadcast(line, { room: "lobby", except: session });
 *   },
 * });
 * await server.close();
 * ```
 */
export class SessionManager<Data = unknown, In = unknown, Out = In>
  implements Iterable<Session<Data, In, Out>> {
  readonly #sessions = new Map<number, Session<Data, In, Out>>();
  readonly #rooms = new Map<string, Set<Session<Data, In, Out>>>();
  readonly #roomsOf = new Map<Session<Data, In, Out>, Set<string>>();
  readonly #forget = (session: object) =>
    this.#remove(session as Session<Data, In, Out>);

  /** How many sessions are open. */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Finds a session by id.
   *
   * @param id A session id.
   * @returns The open session, or `undefined`.
   */
  get(id: number): Session<Data, In, Out> | undefined {
    return this.#sessions.get(id);
  }

  /**
   * Tells whether a session with this id is open here.
   *
   * @param id A session id.
   * @returns `true` when present.
   */
  has(id: number): boolean {
    return this.#sessions.has(id);
  }

  /**
   * Adds an open session (`listen()` does this for you). It removes itself
   * when it starts closing.
   *
   * @param session An open session.
   * @returns `true` when added; `false` when it is not open or already here.
   */
  set(session: Session<Data, In, Out>): boolean {
    if (session.state !== "open" || this.#sessions.has(session.id)) {
      return false;
    }
    this.#sessions.set(session.id, session);
    onClosing(session, this.#forget);
    return true;
  }

  /**
   * Closes the session with this id (the seed's `DelSessionById`), which
   * also removes it from the manager and its rooms.
   *
   * @param id A session id.
   * @param reason The close reason.
   * @returns `true` when a session was found and is closing.
   */
  delete(id: number, reason?: string): boolean {
    const session = this.#sessions.get(id);
    if (session === undefined) return false;
    session.close(reason);
    return true;
  }

  /**
   * Sends to one session by id (the seed's `WriteByid`).
   *
   * @param id A session id.
   * @param message The message.
   * @returns `true` when queued; `false` for an unknown, closing or closed
   * id, or when the session's overflow policy refused it.
   */
  send(id: number, message: Out): boolean {
    return this.#sessions.get(id)?.send(message) ?? false;
  }

  /**
   * Sends one message to many sessions. The message is encoded once and the
   * same bytes are queued on every target; nothing waits for any peer, so a
   * stuck peer can't slow the others down (its own budget deals with it).
   *
   * @param message The message.
   * @param options Room, exception and filter; see
   * {@linkcode BroadcastOptions}.
   * @returns How many sessions accepted it.
   * @throws {TypeError} When the codec cannot encode the message.
   */
  broadcast(
    message: Out,
    options?: BroadcastOptions<Data, In, Out>,
  ): number {
    let targets: Iterable<Session<Data, In, Out>> = this.#sessions.values();
    let exceptId = -1;
    let filter: BroadcastOptions<Data, In, Out>["filter"];
    if (options !== undefined) {
      if (options.room !== undefined) {
        const room = this.#rooms.get(options.room);
        if (room === undefined) return 0;
        targets = room;
      }
      const except = options.except;
      if (except !== undefined) {
        exceptId = typeof except === "number" ? except : except.id;
      }
      filter = options.filter;
    }
    // Encode lazily and once per codec: usually exactly once.
    let codec: unknown;
    let frame: Uint8Array | undefined;
    let accepted = 0;
    for (const session of targets) {
      if (session.id === exceptId) continue;
      if (filter !== undefined && !filter(session)) continue;
      if (session.codec !== codec) {
        codec = session.codec;
        frame = session.codec.encode(message);
      }
      if (session.sendFrame(frame!)) accepted++;
    }
    return accepted;
  }

  /**
   * Puts a session in a room, creating the room if needed.
   *
   * @param session An open session of this manager.
   * @param room The room's name.
   * @returns `true` when it joined; `false` when it was already a member or
   * is not an open session of this manager.
   */
  join(session: Session<Data, In, Out>, room: string): boolean {
    if (this.#sessions.get(session.id) !== session) return false;
    let members = this.#rooms.get(room);
    if (members === undefined) {
      members = new Set();
      this.#rooms.set(room, members);
    }
    if (members.has(session)) return false;
    members.add(session);
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
   * @param session A session.
   * @param room The room's name.
   * @returns `true` when it was a member.
   */
  leave(session: Session<Data, In, Out>, room: string): boolean {
    const members = this.#rooms.get(room);
    if (members === undefined || !members.delete(session)) return false;
    if (members.size === 0) this.#rooms.delete(room);
    const rooms = this.#roomsOf.get(session)!;
    rooms.delete(room);
    if (rooms.size === 0) this.#roomsOf.delete(session);
    return true;
  }

  /**
   * The members of a room.
   *
   * @param room The room's name.
   * @returns A live read-only view; empty for an unknown room.
   */
  members(room: string): ReadonlySet<Session<Data, In, Out>> {
    return this.#rooms.get(room) ?? NO_MEMBERS;
  }

  /**
   * The rooms a session is in.
   *
   * @param session A session.
   * @returns A live read-only view; empty when in none.
   */
  roomsOf(session: Session<Data, In, Out>): ReadonlySet<string> {
    return this.#roomsOf.get(session) ?? NO_ROOMS;
  }

  /**
   * The names of the rooms that have members.
   *
   * @returns The room names, in creation order.
   */
  rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /**
   * Iterates the open sessions in the order they were added.
   *
   * @returns An iterator of sessions.
   */
  [Symbol.iterator](): IterableIterator<Session<Data, In, Out>> {
    return this.#sessions.values();
  }

  #remove(session: Session<Data, In, Out>): void {
    if (this.#sessions.get(session.id) === session) {
      this.#sessions.delete(session.id);
    }
    const rooms = this.#roomsOf.get(session);
    if (rooms === undefined) return;
    this.#roomsOf.delete(session);
    for (const room of rooms) {
      const members = this.#rooms.get(room)!;
      members.delete(session);
      if (members.size === 0) this.#rooms.delete(room);
    }
  }
}

const NO_MEMBERS: ReadonlySet<never> = new Set();
const NO_ROOMS: ReadonlySet<string> = new Set();
