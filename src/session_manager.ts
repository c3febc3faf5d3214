// The seed's SessionM: sessions by id, send-by-id, broadcast, and rooms.
// A session leaves the manager and all its rooms the moment it starts
// closing, so a broadcast never targets a session that can't take it.
//
// A broadcast encodes its message once, into a segment shared by every
// receiver (one per room, one for the whole manager), and each receiver's
// queue references it: no per-receiver copy, and a turn's messages to a room
// leave each member in one write. See _shared_segment.ts.
import type { Session, SessionBroadcastOptions } from "./session.ts";
import type { Codec } from "./codec/codec.ts";
import { sessionHooks, type SessionObserver } from "./_session_hooks.ts";
import { SegmentWriter } from "./_shared_segment.ts";
import type { ClusterBridge } from "./cluster_bridge.ts";
import { managerHooks } from "./_manager_hooks.ts";
import { transcode } from "./_transcode.ts";
import {
  bounded,
  checkWaitOptions,
  type WaitOptions,
} from "./_flow_control.ts";

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
  readonly #rooms = new Map<string, Room<Data, In, Out>>();
  readonly #roomsOf = new Map<Session<Data, In, Out>, Set<string>>();
  readonly #everyone = new SegmentWriter();
  readonly #observer: SessionObserver = {
    closing: (session) => this.#remove(session as Session<Data, In, Out>),
  };
  // The cluster, when the server joined one; its codec encodes what leaves.
  #bridge: ClusterBridge | undefined;
  #codec: Codec<In, Out> | undefined;

  static {
    managerHooks.bridge = (of, bridge, codec) => {
      const manager = of as SessionManager;
      manager.#bridge = bridge;
      manager.#codec = codec;
      return {
        codec,
        deliverToRoom: (room, frames, exceptId, count = 1) =>
          manager.#deliverToRoom(room, frames, exceptId, count),
        deliverToSession: (id, frames, count = 1) => {
          const session = manager.#sessions.get(id);
          if (session === undefined) return false;
          const bytes = session.codec === codec
            ? frames
            : transcode(codec, session.codec, frames);
          return bytes !== undefined &&
            sessionHooks.sendShared(session, bytes, 0, bytes.byteLength, count);
        },
      };
    };
    managerHooks.bridgeOf = (manager) =>
      #bridge in manager ? manager.#bridge : undefined;
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
    sessionHooks.observe(session, this.#observer);
    sessionHooks.attach(session, this);
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
    if (session !== undefined) return session.send(message);
    // Not here: with a cluster, another node may own it.
    if (this.#bridge === undefined) return false;
    return this.#bridge.send(id, this.#codec!.encode(message));
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
    let writer = this.#everyone;
    let exceptId = -1;
    let filter: BroadcastOptions<Data, In, Out>["filter"];
    const bridge = options?.room !== undefined && options.local !== true &&
        options.filter === undefined
      ? this.#bridge
      : undefined;
    if (options !== undefined) {
      if (options.room !== undefined) {
        const room = this.#rooms.get(options.room);
        if (room === undefined) {
          // No member here; others may have some: one encoding, one publish.
          if (bridge !== undefined) {
            this.#publish(bridge, options.room, message, options.except);
          }
          return 0;
        }
        targets = room.members;
        writer = room.writer ??= new SegmentWriter();
      }
      const except = options.except;
      if (except !== undefined) {
        exceptId = typeof except === "number" ? except : except.id;
      }
      filter = options.filter;
    }
    // Encode lazily, once into the shared segment for the first codec met
    // (usually the only one); other codecs get their own encoding, once.
    let codec: Codec<In, Out> | undefined;
    let base: Uint8Array | undefined;
    let start = 0;
    let end = 0;
    let others: Map<Codec<In, Out>, Uint8Array> | undefined;
    const sendShared = sessionHooks.sendShared;
    let accepted = 0;
    for (const session of targets) {
      if (session.id === exceptId) continue;
      if (filter !== undefined && !filter(session)) continue;
      if (base === undefined) {
        codec = session.codec;
        writer.write(codec, message);
        base = writer.base;
        start = writer.start;
        end = writer.end;
      }
      if (session.codec === codec) {
        if (sendShared(session, base, start, end)) accepted++;
        continue;
      }
      others ??= new Map();
      let frame = others.get(session.codec);
      if (frame === undefined) {
        frame = session.codec.encode(message);
        others.set(session.codec, frame);
      }
      if (sendShared(session, frame, 0, frame.byteLength)) accepted++;
    }
    if (bridge !== undefined) {
      if (base !== undefined && codec === this.#codec) {
        // The bytes the local members got, published as they are.
        bridge.broadcast(
          options!.room!,
          base.subarray(start, end),
          exceptId === -1 ? undefined : exceptId,
        );
      } else {
        this.#publish(bridge, options!.room!, message, options!.except);
      }
    }
    return accepted;
  }

  #publish(
    bridge: ClusterBridge,
    room: string,
    message: Out,
    except: Session<Data, In, Out> | number | undefined,
  ): void {
    const exceptId = except === undefined
      ? undefined
      : typeof except === "number"
      ? except
      : except.id;
    bridge.broadcast(room, this.#codec!.encode(message), exceptId);
  }

  // Frames from another node, in the server codec's encoding, to this
  // server's members of a room: by reference, with their usual budgets.
  #deliverToRoom(
    room: string,
    frame: Uint8Array,
    exceptId: number | undefined,
    count: number,
  ): number {
    const entry = this.#rooms.get(room);
    if (entry === undefined) return 0;
    // Copied into the room's segment: a turn's frames then sit side by side
    // and leave each member in one range, as local broadcasts do.
    const writer = entry.writer ??= new SegmentWriter();
    writer.copy(frame);
    const { base, start, end } = writer;
    const codec = this.#codec;
    const sendShared = sessionHooks.sendShared;
    let accepted = 0;
    // Members of another server sharing this manager: re-encoded once per
    // codec (undefined: their codec can't take these frames).
    let others: Map<Codec<In, Out>, Uint8Array | undefined> | undefined;
    for (const session of entry.members) {
      if (session.id === exceptId) continue;
      if (session.codec === codec) {
        if (sendShared(session, base, start, end, count)) accepted++;
        continue;
      }
      others ??= new Map();
      let bytes = others.get(session.codec);
      if (bytes === undefined && !others.has(session.codec)) {
        bytes = transcode(codec!, session.codec, frame);
        others.set(session.codec, bytes);
      }
      if (
        bytes !== undefined &&
        sendShared(session, bytes, 0, bytes.byteLength, count)
      ) accepted++;
    }
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
    let entry = this.#rooms.get(room);
    if (entry === undefined) {
      entry = { members: new Set(), writer: undefined };
      this.#rooms.set(room, entry);
    }
    const members = entry.members;
    if (members.has(session)) return false;
    members.add(session);
    let rooms = this.#roomsOf.get(session);
    if (rooms === undefined) {
      rooms = new Set();
      this.#roomsOf.set(session, rooms);
    }
    rooms.add(room);
    this.#bridge?.joined(session, room);
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
    const members = this.#rooms.get(room)?.members;
    if (members === undefined || !members.delete(session)) return false;
    if (members.size === 0) this.#rooms.delete(room);
    const rooms = this.#roomsOf.get(session)!;
    rooms.delete(room);
    if (rooms.size === 0) this.#roomsOf.delete(session);
    this.#bridge?.left(session, room);
    return true;
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
    const rooms = this.#roomsOf.get(session);
    return rooms === undefined ? NO_ROOMS : new Set(rooms);
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
      const members = this.#rooms.get(room)!.members;
      members.delete(session);
      if (members.size === 0) this.#rooms.delete(room);
      this.#bridge?.left(session, room);
    }
  }
}

// A room's members, and the segment its broadcasts are encoded into (made
// on its first broadcast).
interface Room<Data, In, Out> {
  members: Set<Session<Data, In, Out>>;
  writer: SegmentWriter | undefined;
}

const NO_MEMBERS: ReadonlySet<never> = new Set();
const NO_ROOMS: ReadonlySet<string> = new Set();
