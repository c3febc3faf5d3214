// The seed's SessionM: sessions by id, send-by-id, broadcast, and rooms.
// A session leaves the manager and all its rooms the moment it starts
// closing, so a broadcast never targets a session that can't take it.
//
// Rooms, session ids and ids that are not open here belong to a Rooms
// implementation (rooms.ts): LocalRooms by default, a cluster's when the
// server joined one. The manager never asks which.
//
// A broadcast encodes its message once, into a segment shared by every
// receiver (one per room, one for the whole manager), and each receiver's
// queue references it: no per-receiver copy, and a turn's messages to a room
// leave each member in one write. See _shared_segment.ts.
import type { Session, SessionBroadcastOptions } from "./session/session.ts";
import { attach, observe, type SessionObserver } from "./session/_internals.ts";
import { SegmentWriter } from "./_shared_segment.ts";
import { fanOut } from "./_fan_out.ts";
import { type BroadcastMeter, broadcastMeter } from "./_meters.ts";
import { type LatencyTap, latencyTaps } from "./session/_latency_histogram.ts";
import { LocalRooms, type Rooms } from "./rooms.ts";
import {
  bounded,
  checkWaitOptions,
  type WaitOptions,
} from "./session/_flow_control.ts";

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
export interface BroadcastOptions<Data, In, Out>
  extends SessionBroadcastOptions<Data, In, Out> {
  /** Leave out this session (or session id), typically the sender. */
  except?: Session<Data, In, Out> | number;
  /**
   * With a cluster (`listen({ cluster })`), only this server's members of
   * the room; without one it changes nothing. Room broadcasts otherwise
   * reach the room's members on every node (unless `filter` is set: a
   * filter can't run on other nodes, so filtered broadcasts stay local).
   *
   * @default {false}
   */
  local?: boolean;
}

/**
 * Which sessions {@linkcode SessionManager.drained} waits for (as for
 * `broadcast`), and for how long at most.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example Room for the ticker's members, within a second
 * ```ts
 * import type { DrainedOptions } from "@x/microsocket";
 *
 * const options: DrainedOptions<unknown, string, string> = {
 *   room: "ticker",
 *   timeout: 1000,
 * };
 * ```
 */
export interface DrainedOptions<Data, In, Out>
  extends BroadcastOptions<Data, In, Out>, WaitOptions {}

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
  // Membership lives here, whatever #rooms is (a cluster wraps it).
  readonly #local = new LocalRooms<Data, In, Out>();
  #rooms: Rooms<Data, In, Out> = this.#local;
  readonly #everyone = new SegmentWriter();
  /** @ignore Package-internal: see _meters.ts. */
  readonly [broadcastMeter]: BroadcastMeter = { broadcasts: 0, deliveries: 0 };
  /** @ignore Package-internal: see _latency_histogram.ts. */
  [latencyTaps]: Set<LatencyTap> | undefined;
  readonly #observer: SessionObserver = {
    closing: (session) => this.#remove(session as Session<Data, In, Out>),
  };

  /**
   * Puts this manager's rooms behind another {@linkcode Rooms}, made from
   * its {@linkcode LocalRooms} (which keep the membership): what
   * `listen({ cluster })` does with the cluster's. Without `make`, back to
   * the local rooms.
   *
   * @param make Builds the rooms from the local ones.
   * @throws {TypeError} When other rooms are in place already (a manager
   * is in one cluster at most).
   *
   * @example Counting room broadcasts
   * ```ts
   * import { SessionManager } from "@x/microsocket";
   * import assert from "node:assert/strict";
   *
   * const sessions = new SessionManager<unknown, string, string>();
   * let count = 0;
   * sessions.useRooms((local) => ({
   *   nextId: () => local.nextId(),
   *   get: (room) => local.get(room),
   *   roomsOf: (session) => local.roomsOf(session),
   *   names: () => local.names(),
   *   join: (session, room) => local.join(session, room),
   *   leave: (session, room) => local.leave(session, room),
   *   leaveAll: (session) => local.leaveAll(session),
   *   broadcast: (room, message, exceptId, filter) => {
   *     count++;
   *     return local.broadcast(room, message, exceptId, filter);
   *   },
   *   send: () => false,
   * }));
   * sessions.broadcast("hi", { room: "lobby" });
   * assert.equal(count, 1);
   * sessions.useRooms(); // local again
   * ```
   */
  useRooms(
    make?: (local: LocalRooms<Data, In, Out>) => Rooms<Data, In, Out>,
  ): void {
    if (make === undefined) {
      this.#rooms = this.#local;
      return;
    }
    if (this.#rooms !== this.#local) {
      throw new TypeError("This manager's rooms are in a cluster already");
    }
    this.#rooms = make(this.#local);
  }

  /**
   * A new session id, unique in this manager, and across the cluster when
   * it is in one: for sessions made by hand (`listen()` and
   * `upgradeWebSocket()` take theirs here).
   *
   * @returns A safe integer above 0.
   *
   * @example
   * ```ts
   * import { SessionManager } from "@x/microsocket";
   *
   * const sessions = new SessionManager();
   * console.log(sessions.nextId()); // 1
   * ```
   */
  nextId(): number {
    return this.#rooms.nextId();
  }

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
    // The next broadcast to everyone reaches this one too.
    this.#everyone.endRun();
    observe(session, this.#observer);
    attach(session, this);
    return true;
  }

  /**
   * Closes the session with this id, which
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
   * Sends to one session by id.
   *
   * @param id A session id.
   * @param message The message.
   * @returns `true` when queued; `false` for an unknown, closing or closed
   * id, or when the session's overflow policy refused it.
   */
  send(id: number, message: Out): boolean {
    const session = this.#sessions.get(id);
    if (session !== undefined && this.#rooms.relays?.(id) !== true) {
      return session.send(message);
    }
    // Not here (another node of a cluster may own it), or a cluster keeps
    // its direct messages for recovery.
    return this.#rooms.send(id, message);
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
    const except = options?.except;
    const exceptId = except === undefined
      ? -1
      : typeof except === "number"
      ? except
      : except.id;
    const room = options?.room;
    const accepted = room === undefined
      ? fanOut(
        this.#sessions.values(),
        this.#everyone,
        message,
        exceptId,
        options?.filter,
      )
      : this.#rooms.broadcast(
        room,
        message,
        exceptId,
        options!.filter,
        options!.local === true,
      );
    const meter = this[broadcastMeter];
    meter.broadcasts++;
    meter.deliveries += accepted;
    return accepted;
  }

  /**
   * Waits until no target of a broadcast is over its high-water mark: for
   * producers outside any session's handlers (timers, other event sources),
   * which flow control does not pace on its own. See {@linkcode Session}.
   * A member that keeps it waiting for longer than its `drainTimeout` is
   * cut as a slow consumer, so the wait never outlasts the longest
   * `drainTimeout` of the members it waits for (unless that is `0`); a
   * `timeout` or `signal` bounds it further.
   *
   * @param options Which sessions to wait for (room, except, filter), as
   * for `broadcast`, and a timeout and an abort signal.
   * @returns A promise that resolves once they have room (closed sessions
   * count as having room).
   * @throws {DOMException} (rejects, name `"TimeoutError"`) When
   * `options.timeout` passes first.
   * @throws {unknown} (rejects) The signal's reason when `options.signal`
   * aborts first.
   *
   * @example A timer that keeps pace with its room
   * ```ts
   * import { listen } from "@x/microsocket";
   *
   * await using server = listen({ hostname: "127.0.0.1", port: 0 });
   * for (let i = 0; i < 3; i++) {
   *   await server.sessions.drained({ room: "ticker" });
   *   server.sessions.broadcast(`tick ${i}`, { room: "ticker" });
   * }
   * ```
   */
  drained(options?: DrainedOptions<Data, In, Out>): Promise<void> {
    const timeout = options?.timeout;
    const signal = options?.signal;
    if (timeout === undefined && signal === undefined) {
      return this.#drained(options, undefined);
    }
    const bound: WaitOptions = {};
    if (timeout !== undefined) bound.timeout = timeout;
    if (signal !== undefined) bound.signal = signal;
    checkWaitOptions(bound);
    // One timer for the whole wait; giving up withdraws every member's wait.
    const stop = new AbortController();
    return bounded(
      this.#drained(options, stop.signal),
      bound,
      "Waiting for the sessions to drain",
      () => stop.abort(),
    );
  }

  async #drained(
    options: DrainedOptions<Data, In, Out> | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const wait = signal === undefined ? undefined : { signal };
    for (;;) {
      let waiting: Promise<boolean>[] | undefined;
      let targets: Iterable<Session<Data, In, Out>> = this.#sessions.values();
      if (options?.room !== undefined) {
        const room = this.#rooms.get(options.room);
        if (room === undefined) return;
        targets = room.members;
      }
      const except = options?.except;
      const exceptId = except === undefined
        ? -1
        : typeof except === "number"
        ? except
        : except.id;
      for (const session of targets) {
        if (!session.backpressure || session.id === exceptId) continue;
        if (options?.filter !== undefined && !options.filter(session)) continue;
        (waiting ??= []).push(session.drained(wait));
      }
      if (waiting === undefined) return;
      await Promise.all(waiting);
    }
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
    return this.#rooms.join(session, room);
  }

  /**
   * Takes a session out of a room; the room disappears when it empties.
   *
   * @param session A session.
   * @param room The room's name.
   * @returns `true` when it was a member.
   */
  leave(session: Session<Data, In, Out>, room: string): boolean {
    return this.#rooms.leave(session, room);
  }

  /**
   * The members of a room.
   *
   * @param room The room's name.
   * @returns A snapshot of its members; empty for an unknown room. (A
   * snapshot, not the manager's own set: changing it changes nothing.)
   */
  members(room: string): ReadonlySet<Session<Data, In, Out>> {
    const members = this.#rooms.get(room)?.members;
    return members === undefined ? NO_MEMBERS : new Set(members);
  }

  /**
   * The rooms a session is in.
   *
   * @param session A session.
   * @returns A snapshot of its rooms; empty when in none.
   */
  roomsOf(session: Session<Data, In, Out>): ReadonlySet<string> {
    const rooms = this.#rooms.roomsOf(session);
    return rooms === undefined ? NO_ROOMS : new Set(rooms);
  }

  /**
   * The names of the rooms that have members.
   *
   * @returns The room names, in creation order.
   */
  rooms(): string[] {
    return [...this.#rooms.names()];
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
      this.#everyone.endRun();
    }
    this.#rooms.leaveAll(session);
  }
}

const NO_MEMBERS: ReadonlySet<never> = new Set();
const NO_ROOMS: ReadonlySet<string> = new Set();
