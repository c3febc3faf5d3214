// Package-internal: the cluster part of recovery (issue 17), one instance per
// node, between a server's recovery and the cluster's history engine
// (history/history.ts). It follows the design note there:
//
// - open(): a resumable session is registered with the engine: its inbox
//   is subscribed (and `ready`) before the head is read, so a direct
//   message appended after `since` is never missed; its session record
//   (rooms with join positions, data, a hash of its resume token, epoch)
//   is written for any node to read.
// - join()/leave(): the room's live channel is subscribed once per node
//   while it has members (interest-based), `ready` before the head that
//   becomes the join position; the record is rewritten. Record writes of
//   one session are serialised, so the last one written is the newest.
// - Live entries reach a member in position order, once: each member
//   keeps the last position it was given and drops what is not above it
//   (or not above its join position in that room).
// - resume(): read the record → compare the token's hash → claim (atomic,
//   rotates the token: a token resumes once, even when two nodes race) →
//   subscribe the rooms and inbox, buffering → replay everything after the
//   client's position → deliver the replay, then the buffered live entries
//   above the replay's head, then live. A gap (history trimmed, epoch
//   changed, position from the future) gives `recovered: false` and nothing
//   of the gap; the record is deleted, so the old token is dead too.
//
// What a member is given is an entry (position and bytes): the server
// sends its bytes and, to a recovery client, its position (the preamble's
// reserved `pos` record), which the client sends back when it resumes.
import type {
  GapReason,
  HistoryEntry,
  HistoryPosition,
  LiveEntry,
  LiveSubscription,
  ReplayRoom,
  RoomHistory,
  SessionRecord,
} from "./history/history.ts";
import { assertSessionId, roomToken } from "./history/history.ts";
import { newToken, sameToken } from "../recovery/_tokens.ts";

/**
 * The `history` option of a cluster node's recovery: the engine that keeps
 * room history and session records, shared by every node.
 */
export interface ClusterHistoryOptions {
  /** The engine (its bounds: count, bytes, age, are the engine's own). */
  engine: RoomHistory;
  /**
   * How long a session whose node died can resume elsewhere: records of
   * attached sessions are rewritten every third of it, so one outlives its
   * node by at least two thirds of the window. Give the engine the same
   * `window` (its record lifetime), in milliseconds.
   *
   * @default {30000}
   */
  window?: number;
}

const KEYS = new Set(["engine", "window"]);

/**
 * Throws unless `value` is a valid {@linkcode ClusterHistoryOptions}: an
 * unknown or misplaced key is a TypeError naming it.
 */
export function checkHistoryOptions(value: unknown): ClusterHistoryOptions {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("history must be an object");
  }
  for (const key of Object.keys(value)) {
    if (!KEYS.has(key)) {
      throw new TypeError(
        key === "maxMessages" || key === "maxBytes" || key === "maxAge"
          ? `history.${key} is not an option here: the engine's bounds are set when it is connected`
          : `Unknown option history.${key}`,
      );
    }
  }
  const options = value as ClusterHistoryOptions;
  const engine = options.engine as Partial<RoomHistory> | undefined;
  if (
    typeof engine !== "object" || engine === null ||
    typeof engine.appendRoom !== "function" ||
    typeof engine.replay !== "function" || typeof engine.sessions !== "object"
  ) {
    throw new TypeError("history.engine must be a RoomHistory");
  }
  if (
    options.window !== undefined &&
    (!Number.isSafeInteger(options.window) || options.window < 1)
  ) {
    throw new RangeError("history.window must be an integer of at least 1");
  }
  return options;
}

/**
 * How long a resume waits for an engine that doesn't answer (restarting)
 * before it fails; the client then tries again, within its window.
 */
const PATIENCE = 10_000;

/** Receives a member's entries, in position order, once each. */
export type EntrySink = (entry: HistoryEntry) => void;

/** What {@linkcode ClusterRecovery.open} gives a new session. */
export interface OpenedSession {
  /** The resume token (given to the client only; the engine keeps a hash). */
  readonly token: string;
  /** The epoch its positions belong to. */
  readonly epoch: string;
  /** Its position to start from (the head when it began). */
  readonly position: number;
}

/** A resume request, as a client sends it. */
export interface ResumeRequest {
  /** The session id. */
  readonly id: number;
  /** Its current resume token. */
  readonly token: string;
  /** The epoch of `position`. */
  readonly epoch: string;
  /** The last position it received. */
  readonly position: number;
}

/** Why a resume starts a fresh session. */
export type ResumeRefusal = "unknown_session" | "bad_token" | GapReason;

/** What {@linkcode ClusterRecovery.resume} answers. */
export type ResumeResult =
  | {
    readonly recovered: true;
    /** The next token (the one given is spent). */
    readonly token: string;
    /** The session's data, as last written. */
    readonly data: unknown;
    /** Its rooms. */
    readonly rooms: readonly string[];
    /** How many entries were replayed. */
    readonly replayed: number;
  }
  | { readonly recovered: false; readonly reason: ResumeRefusal };

interface Member {
  readonly id: number;
  readonly sink: EntrySink;
  // Rooms and the head when the member joined (entries up to it are not its).
  readonly rooms: Map<string, number>;
  since: number;
  data: unknown;
  // Reads the session's data whenever its record is written (see watch()).
  read: (() => unknown) | undefined;
  tokenHash: string;
  epoch: string;
  // The last position given to the sink.
  last: number;
  // Everything up to this position was given (a replay's or the open's
  // head): a live entry missed at or below it is no loss.
  complete: number;
  // Live entries held back while a replay runs.
  buffer: LiveEntry[] | undefined;
  // A live entry was missed while a replay ran: replay again after it.
  again: boolean;
  inbox: LiveSubscription | undefined;
  // The last inbox position seen live (0: not known yet).
  inboxLast: number;
  writes: Promise<void>;
  gone: boolean;
}

interface Room {
  readonly subscription: LiveSubscription;
  readonly members: Set<Member>;
  // The last position of the room seen live here (0: not known yet).
  last: number;
}

/**
 * Package-internal: one node's cluster recovery; see the file comment.
 *
 * @example A session opened on one node resumes on another
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClusterRecovery } from "./cluster_recovery.ts";
 * import { MemoryHistoryStore } from "./history/memory_history.ts";
 *
 * const store = new MemoryHistoryStore({
 *   maxMessages: 100,
 *   maxBytes: 1 << 20,
 *   maxAge: 60_000,
 *   window: 60_000,
 * });
 * const a = new ClusterRecovery({ engine: store.connect() }, console.error);
 * const b = new ClusterRecovery({ engine: store.connect() }, console.error);
 * let last = 0;
 * const opened = await a.open(1, { nick: "ann" }, (e) => (last = e.position));
 * await a.join(1, "lobby");
 * a.close(); // node A dies
 * await b.broadcast("lobby", new TextEncoder().encode("missed"));
 * const got: string[] = [];
 * const result = await b.resume(
 *   { id: 1, token: opened.token, epoch: opened.epoch, position: last },
 *   (entry) => got.push(new TextDecoder().decode(entry.bytes)),
 * );
 * assert.equal(result.recovered, true);
 * assert.deepEqual(got, ["missed"]);
 * b.close();
 * ```
 */
export class ClusterRecovery {
  readonly #engine: RoomHistory;
  readonly #onError: (error: unknown) => void;
  readonly #onLost: (id: number) => void;
  readonly #members = new Map<number, Member>();
  readonly #rooms = new Map<string, Room>();
  readonly #window: number;
  #refresher: ReturnType<typeof setInterval> | undefined;
  #repairs = 0;
  #closed = false;

  /**
   * @param onLost Called when a session of this node was resumed by
   * another (its record's token was rotated there: a connection this node
   * still took for alive was not); it is forgotten here, and its server
   * should close it.
   */
  constructor(
    options: ClusterHistoryOptions,
    onError: (error: unknown) => void,
    onLost: (id: number) => void = () => {},
  ) {
    this.#onLost = onLost;
    this.#engine = checkHistoryOptions(options).engine;
    this.#window = options.window ?? 30_000;
    this.#onError = onError;
  }

  /** The engine. */
  get engine(): RoomHistory {
    return this.#engine;
  }

  /** Rooms this node is subscribed to (it has members there). */
  get rooms(): number {
    return this.#rooms.size;
  }

  /**
   * Registers a new resumable session of this node and writes its record.
   *
   * @param sink Where its entries go, in position order.
   */
  async open(
    id: number,
    data: unknown,
    sink: EntrySink,
  ): Promise<OpenedSession> {
    assertSessionId(id);
    if (this.#members.has(id)) throw new TypeError(`Session ${id} is open`);
    const token = newToken();
    const member: Member = {
      id,
      sink,
      rooms: new Map(),
      since: 0,
      data,
      read: undefined,
      tokenHash: await hashToken(token),
      epoch: "",
      last: 0,
      complete: 0,
      buffer: undefined,
      again: false,
      inbox: undefined,
      inboxLast: 0,
      writes: Promise.resolve(),
      gone: false,
    };
    this.#register(member);
    try {
      member.inbox = this.#engine.subscribeDirect(
        id,
        (entry) => this.#direct(member, entry),
      );
      await member.inbox.ready;
      const head = await this.#engine.head();
      member.since = member.last = member.complete = head.position;
      member.inboxLast = Math.max(member.inboxLast, head.position);
      member.epoch = head.epoch;
      await this.#write(member, true);
      return { token, epoch: head.epoch, position: head.position };
    } catch (error) {
      this.#forget(member);
      throw error;
    }
  }

  /** A session of this node joins a room (its record is rewritten). */
  async join(id: number, room: string): Promise<void> {
    const member = this.#member(id);
    if (member.rooms.has(room)) return;
    roomToken(room);
    // Not a member yet: nothing of the room is given before its join
    // position is known.
    member.rooms.set(room, Number.MAX_SAFE_INTEGER);
    await this.#subscribe(member, room);
    const head = await this.#engine.head();
    if (member.gone || !member.rooms.has(room)) return;
    member.rooms.set(room, Math.max(head.position, member.last));
    // A new subscription: its first entry after the head is checked too.
    const live = this.#rooms.get(room);
    if (live !== undefined && live.last === 0) live.last = head.position;
    await this.#write(member);
  }

  /** A session of this node leaves a room (its record is rewritten). */
  async leave(id: number, room: string): Promise<void> {
    const member = this.#member(id);
    if (!member.rooms.delete(room)) return;
    this.#unsubscribe(member, room);
    await this.#write(member);
  }

  /** Replaces a session's data in its record (JSON). */
  async update(id: number, data: unknown): Promise<void> {
    const member = this.#member(id);
    member.data = data;
    await this.#write(member);
  }

  /**
   * From now on a session's record takes its data from `read` each time it
   * is written (joins, leaves, the periodic rewrite), so that a node that
   * resumes it gets the data as it was at most a third of the window ago.
   */
  watch(id: number, read: () => unknown): void {
    this.#member(id).read = read;
  }

  /** Rewrites a session's record now (its data changed). */
  async rewrite(id: number): Promise<void> {
    const member = this.#members.get(id);
    if (member !== undefined) await this.#write(member);
  }

  /** Whether a session of this node is registered here. */
  has(id: number): boolean {
    return this.#members.has(id);
  }

  /**
   * A session of this node resumes on this node (its connection dropped,
   * its client came back): checks `token` and rotates it in the record, so
   * that the spent one resumes nowhere. After the session's pending record
   * writes, so they can't bring the old token back.
   *
   * @returns The next token, or `undefined` when `token` is not the
   * session's (or another node resumed it meanwhile: it is lost here).
   */
  async renew(id: number, token: string): Promise<string | undefined> {
    const member = this.#members.get(id);
    if (member === undefined) return undefined;
    const presented = await hashToken(token);
    const next = newToken();
    const nextHash = await hashToken(next);
    const renewal = member.writes.then(async () => {
      if (member.gone || !sameToken(presented, member.tokenHash)) {
        return undefined;
      }
      const record = { ...this.#record(member), tokenHash: nextHash };
      const replaced = await this.#engine.sessions.claim(
        id,
        member.tokenHash,
        record,
      );
      if (replaced === undefined) {
        if (!member.gone) {
          this.#forget(member);
          this.#onLost(id);
        }
        return undefined;
      }
      member.tokenHash = nextHash;
      return next;
    });
    member.writes = renewal.then(() => {}, () => {});
    return await renewal;
  }

  /** Appends a room broadcast; it reaches the room's members on every node. */
  broadcast(room: string, bytes: Uint8Array): Promise<HistoryPosition> {
    return this.#engine.appendRoom(room, bytes);
  }

  /** Appends a direct message to a resumable session, on any node. */
  send(id: number, bytes: Uint8Array): Promise<HistoryPosition> {
    return this.#engine.appendDirect(id, bytes);
  }

  /**
   * A session's connection dropped: stop giving it entries here. Its record
   * stays, so it resumes on any node (this one too) within the window.
   */
  detach(id: number): void {
    const member = this.#members.get(id);
    if (member !== undefined) this.#forget(member);
  }

  /** A session ended for good: forget it and delete its record. */
  async end(id: number): Promise<void> {
    const member = this.#members.get(id);
    if (member !== undefined) this.#forget(member);
    // After its last write, so a late one can't bring it back.
    await member?.writes;
    await this.#engine.sessions.delete(id);
  }

  /**
   * Resumes a session that was open on any node: see the file comment.
   *
   * @param sink Where its entries go: the replay, then live ones.
   */
  async resume(request: ResumeRequest, sink: EntrySink): Promise<ResumeResult> {
    assertSessionId(request.id);
    if (this.#members.has(request.id)) {
      // Still attached here: the old connection goes first (detach()).
      return { recovered: false, reason: "unknown_session" };
    }
    const sessions = this.#engine.sessions;
    // The engine may be restarting (a broker restart): its answers are
    // waited for, within PATIENCE, rather than taken for a refusal.
    const record = await this.#patient(() => sessions.get(request.id));
    if (record === undefined) {
      return { recovered: false, reason: "unknown_session" };
    }
    const presented = await hashToken(request.token);
    if (!sameToken(presented, record.tokenHash)) {
      return { recovered: false, reason: "bad_token" };
    }
    const token = newToken();
    const next: SessionRecord = {
      ...record,
      tokenHash: await hashToken(token),
    };
    let tried = false;
    const claimed = await this.#patient(async () => {
      if (tried) {
        // An attempt that failed may have been applied all the same.
        const now = await sessions.get(request.id);
        if (now !== undefined && now.tokenHash === next.tokenHash) return now;
      }
      tried = true;
      return await sessions.claim(request.id, presented, next);
    });
    if (claimed === undefined) {
      return { recovered: false, reason: "bad_token" };
    }
    if (request.epoch !== claimed.epoch) {
      await sessions.delete(request.id);
      return { recovered: false, reason: "epoch" };
    }
    if (this.#members.has(request.id)) {
      // A race with another resume here that the claim let through first.
      return { recovered: false, reason: "bad_token" };
    }
    const member: Member = {
      id: request.id,
      sink,
      rooms: new Map(claimed.rooms.map((r) => [r.room, r.joined])),
      since: claimed.since,
      data: claimed.data,
      read: undefined,
      tokenHash: next.tokenHash,
      epoch: claimed.epoch,
      last: request.position,
      complete: 0,
      buffer: [],
      again: false,
      inbox: undefined,
      inboxLast: 0,
      writes: Promise.resolve(),
      gone: false,
    };
    this.#register(member);
    try {
      member.inbox = this.#engine.subscribeDirect(
        member.id,
        (entry) => this.#direct(member, entry),
      );
      const ready = [member.inbox.ready];
      for (const room of member.rooms.keys()) {
        ready.push(this.#subscribe(member, room));
      }
      await Promise.all(ready);
      const result = await this.#patient(() =>
        this.#engine.replay({
          epoch: request.epoch,
          after: request.position,
          rooms: claimed.rooms,
          inbox: { session: member.id, since: claimed.since },
        })
      );
      if (!result.ok) {
        this.#forget(member);
        await sessions.delete(member.id);
        return { recovered: false, reason: result.gap.reason };
      }
      if (member.gone) return { recovered: false, reason: "unknown_session" };
      for (const entry of result.entries) this.#give(member, entry);
      member.inboxLast = Math.max(member.inboxLast, result.head);
      member.complete = result.head;
      this.#flush(member);
      return {
        recovered: true,
        token,
        data: claimed.data,
        rooms: [...member.rooms.keys()],
        replayed: result.entries.length,
      };
    } catch (error) {
      this.#forget(member);
      throw error;
    }
  }

  // Runs an engine operation again, with backoff, while it fails, for at
  // most PATIENCE ms.
  async #patient<T>(operation: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + PATIENCE;
    for (let wait = 50;; wait = Math.min(wait * 2, 1000)) {
      try {
        return await operation();
      } catch (error) {
        if (this.#closed || Date.now() + wait > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** Replays run because a live entry was missed here. */
  get repairs(): number {
    return this.#repairs;
  }

  /** The last position given to a session of this node. */
  position(id: number): number | undefined {
    return this.#members.get(id)?.last;
  }

  /** Stops every subscription here (the engine is the caller's). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const member of [...this.#members.values()]) this.#forget(member);
  }

  #register(member: Member): void {
    if (this.#closed) throw new TypeError("The cluster recovery is closed");
    this.#members.set(member.id, member);
    // Records expire `window` after their last write: keep the attached
    // sessions' alive, so that they outlive a node that dies.
    this.#refresher ??= setInterval(() => {
      for (const m of this.#members.values()) {
        if (m.buffer === undefined && m.epoch !== "") {
          this.#write(m).catch(this.#onError);
        }
      }
    }, Math.max(1, Math.floor(this.#window / 3)));
  }

  #member(id: number): Member {
    const member = this.#members.get(id);
    if (member === undefined) throw new TypeError(`No session ${id} here`);
    return member;
  }

  // Subscribes the node to a room for a member; settles when ready.
  #subscribe(member: Member, name: string): Promise<void> {
    let room = this.#rooms.get(name);
    if (room === undefined) {
      const members = new Set<Member>();
      const live: Room = {
        subscription: this.#engine.subscribeRoom(name, (entry) => {
          // One of the room's entries never arrived here (a node cut by the
          // broker): its members replay from where they are.
          const seen = live.last;
          const missed = seen !== 0 && entry.previous > seen;
          if (entry.position > seen) live.last = entry.position;
          for (const m of members) {
            // A member that joined after the missed entries needs none.
            if (missed && entry.previous > m.rooms.get(name)!) {
              this.#missed(m, seen, entry.previous);
            }
            this.#offer(m, entry, name);
          }
        }),
        members,
        last: 0,
      };
      room = live;
      this.#rooms.set(name, room);
    }
    room.members.add(member);
    return room.subscription.ready;
  }

  #unsubscribe(member: Member, name: string): void {
    const room = this.#rooms.get(name);
    if (room === undefined || !room.members.delete(member)) return;
    if (room.members.size === 0) {
      this.#rooms.delete(name);
      room.subscription.unsubscribe();
    }
  }

  #offer(member: Member, entry: LiveEntry, room: string | undefined): void {
    if (member.gone) return;
    if (room !== undefined) {
      const joined = member.rooms.get(room);
      if (joined === undefined || entry.position <= joined) return;
    }
    if (member.buffer !== undefined) member.buffer.push(entry);
    else this.#give(member, entry);
  }

  #direct(member: Member, entry: LiveEntry): void {
    if (member.gone) return;
    const seen = member.inboxLast;
    if (seen !== 0 && entry.previous > seen) {
      this.#missed(member, seen, entry.previous);
    }
    if (entry.position > member.inboxLast) member.inboxLast = entry.position;
    this.#offer(member, entry, undefined);
  }

  // Entries of one channel in (seen, previous] were missed here. The member
  // has them if a replay gave it everything up to `previous`. While a
  // replay runs, it replays again once it ends (the replay may have been
  // read before the missed entries were stored). Otherwise it can replay
  // them, in order, if it was given nothing beyond `seen` (of another
  // channel); else its order is broken: its record is deleted, so that no
  // node resumes it past the missed entries, and it is lost.
  #missed(member: Member, seen: number, previous: number): void {
    if (member.gone || previous <= member.complete) return;
    if (member.buffer !== undefined) member.again = true;
    else if (member.last <= seen) this.#repair(member);
    else this.#lose(member);
  }

  #lose(member: Member): void {
    this.#forget(member);
    this.#engine.sessions.delete(member.id).catch(this.#onError);
    this.#onLost(member.id);
  }

  // Replays what a member missed live, holding its live entries meanwhile.
  #repair(member: Member): void {
    member.again = false;
    member.buffer = [];
    this.#repairs++;
    this.#engine.replay({
      epoch: member.epoch,
      after: member.last,
      rooms: this.#record(member).rooms,
      inbox: { session: member.id, since: member.since },
    }).then((result) => {
      if (member.gone) return;
      if (!result.ok) {
        // Never a partial replay: the session can't go on.
        this.#lose(member);
        return;
      }
      for (const entry of result.entries) this.#give(member, entry);
      member.complete = Math.max(member.complete, result.head);
      this.#flush(member);
    }, (error) => {
      this.#onError(error);
      if (!member.gone) this.#lose(member);
    });
  }

  // Ends a replay: the live entries held meanwhile, then live again; or,
  // when one was missed meanwhile, another replay (from after the last
  // entry given: it covers everything held so far).
  #flush(member: Member): void {
    const buffered = member.buffer;
    if (buffered === undefined) return;
    if (member.again) {
      this.#repair(member);
      return;
    }
    member.buffer = undefined;
    buffered.sort((a, b) => a.position - b.position);
    for (const entry of buffered) this.#give(member, entry);
  }

  #give(member: Member, entry: HistoryEntry): void {
    if (entry.position <= member.last) return;
    member.last = entry.position;
    try {
      member.sink(entry);
    } catch (error) {
      this.#onError(error);
    }
  }

  #forget(member: Member): void {
    if (member.gone) return;
    member.gone = true;
    member.buffer = undefined;
    if (this.#members.get(member.id) === member) {
      this.#members.delete(member.id);
    }
    if (this.#members.size === 0) {
      clearInterval(this.#refresher);
      this.#refresher = undefined;
    }
    member.inbox?.unsubscribe();
    for (const room of member.rooms.keys()) this.#unsubscribe(member, room);
  }

  // Writes the member's record, after its earlier writes. Only the first
  // is a plain put: later ones replace it only if it still has this node's
  // token, so a node that missed that its client resumed elsewhere can't
  // bring an old token back; it learns it lost the session instead.
  #write(member: Member, first = false): Promise<void> {
    const sessions = this.#engine.sessions;
    const write = member.writes.then(async () => {
      if (member.gone) return;
      const record = this.#record(member);
      if (first) return await sessions.put(record);
      const replaced = await sessions.claim(
        member.id,
        member.tokenHash,
        record,
      );
      if (replaced === undefined && !member.gone) {
        this.#forget(member);
        this.#onLost(member.id);
      }
    });
    member.writes = write.catch(() => {});
    return write;
  }

  #record(member: Member): SessionRecord {
    const rooms: ReplayRoom[] = [];
    for (const [room, joined] of member.rooms) {
      if (joined !== Number.MAX_SAFE_INTEGER) rooms.push({ room, joined });
    }
    return {
      id: member.id,
      rooms,
      since: member.since,
      data: member.read !== undefined ? member.read() : member.data,
      tokenHash: member.tokenHash,
      epoch: member.epoch,
    };
  }
}

/** SHA-256 of a token, hex: what the engine keeps instead of the token. */
export async function hashToken(token: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(token),
  );
  let hex = "";
  for (const byte of new Uint8Array(digest)) {
    hex += byte.toString(16).padStart(2, "0");
  }
  return hex;
}
