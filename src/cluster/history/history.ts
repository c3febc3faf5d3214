// The contract between cluster recovery and the engine that keeps room
// history: NATS JetStream (jetstream_history.ts), Redis Streams
// (redis_history.ts), or one process's memory (memory_history.ts, tests).
//
// Design note: how a resume on ANY node uses this
// -----------------------------------------------
// Every room broadcast and every direct message (send-by-id) is appended to
// the engine, which gives it a POSITION on one GLOBAL sequence shared by
// all rooms and all session inboxes, and an EPOCH naming that sequence. A
// session needs one number, the position of the last entry it received,
// however many rooms it is in: its rooms' entries and its direct messages
// all lie on the same line, so "everything after p" is one question with
// one ordered answer, and a replay never interleaves two rooms differently
// from how they were delivered live.
//
// A node that resumes session `id` with token `t` and client position `p`:
//   1. record = await history.sessions.get(id)      (any node wrote it)
//   2. check hash(t) === record.tokenHash; then claim(id, hash(t), next):
//      an atomic compare-and-replace that rotates the token, so a token
//      works once even when two nodes race with it
//   3. result = await history.replay({ epoch, after: p, rooms: record.rooms,
//      inbox: { session: id, since: record.since } })   (rooms with their
//      join positions; the inbox from the session's start)
//   4. result.ok: send result.entries (already in global order), then live
//      entries with position > result.head, dropping those <= head (live
//      entries arrive in position order on each node); otherwise start a
//      fresh session with `recovered: false`. Nothing of a gap is sent.
// Subscribe to the session's rooms and inbox (subscribeRoom/subscribeDirect)
// BEFORE step 3, await each subscription's `ready`, and buffer, so nothing
// between head and the first live entry is lost. A live entry whose
// `previous` is above the last position seen in its room (after head) says
// one was lost on the way (a node cut by the broker): resume it the same way.
//
// Positions of what a node sends itself: its local members get its own
// broadcasts at once, without a position; the node learns it from the
// append's answer or from its own live entry (it is subscribed to its
// rooms), and a session's position is the last it was sent of either. A
// session in quiet rooms keeps an old position: JetStream answers a position
// older than the stream's first message with a Gap, Redis one older than
// `idleTtl` for a room whose stream expired; keep positions fresh (e.g. send
// the client the head now and then when idle, once its live entries up to
// that head are delivered).
//
// Never a partial replay: replay() returns every entry after `p` for the
// requested rooms (from each room's join position) and the inbox, or a
// typed Gap. An engine may answer Gap conservatively only where it says so
// (JetStream: a position older than the stream's first message); it never
// answers entries when one is missing.
//
// Live delivery stays interest-based: a node subscribes to the live channel
// of a room only while it has members there (subscribeRoom), exactly like
// ClusterNode's subscriptions today, and every live entry carries its
// position and epoch (and the previous position of the same room, so a
// node can see a live entry it missed).

/** Why a replay can't be answered; see {@linkcode Gap}. */
export type GapReason = "epoch" | "trimmed" | "future";

/**
 * A replay that can't be answered exactly, so nothing of it is sent.
 *
 * - `"epoch"`: the engine's sequence is not the one the position belongs
 *   to (the stream was lost: broker restarted without its data, stream
 *   deleted).
 * - `"trimmed"`: an entry after the position was removed by a bound
 *   (count, bytes, age), or more entries than a room's bound are missing.
 * - `"future"`: the position is ahead of anything the engine gave out.
 */
export interface Gap {
  /** Why. */
  readonly reason: GapReason;
  /** Which room or inbox and which numbers, for logs. */
  readonly detail: string;
}

/** Where the engine's sequence stands: its epoch and its last position. */
export interface HistoryPosition {
  /** Names the sequence; changes when the stream is lost. */
  readonly epoch: string;
  /** The last position given out (0 before the first). */
  readonly position: number;
}

/** One stored room broadcast or direct message. */
export interface HistoryEntry {
  /** Its place on the global sequence. */
  readonly position: number;
  /** The room it was broadcast to, or `undefined` for a direct message. */
  readonly room: string | undefined;
  /** The session it was sent to, or `undefined` for a room broadcast. */
  readonly session: number | undefined;
  /** The frame, as appended. */
  readonly bytes: Uint8Array;
}

/** An entry as it arrives live on a node. */
export interface LiveEntry extends HistoryEntry {
  /** The epoch of `position`. */
  readonly epoch: string;
  /**
   * The position of the entry before it in the same room (or inbox), 0 for
   * none: a node that last saw another position there missed one.
   */
  readonly previous: number;
}

/** A room a resuming session was in, and from where it gets its entries. */
export interface ReplayRoom {
  /** The room. */
  readonly room: string;
  /**
   * The head position when the session joined: entries up to it were
   * before its time.
   */
  readonly joined: number;
}

/** What a resuming session asks for. */
export interface ReplayRequest {
  /** The epoch of `after`. */
  readonly epoch: string;
  /** The last position the session received. */
  readonly after: number;
  /** Its rooms, with their join positions. */
  readonly rooms: readonly ReplayRoom[];
  /** Its inbox, for its direct messages; `undefined` for none. */
  readonly inbox?: ReplayInbox | undefined;
}

/** A resuming session's inbox. */
export interface ReplayInbox {
  /** The session id. */
  readonly session: number;
  /**
   * The head position when the session began: entries up to it were sent
   * to an earlier session with the same id (a node with a fixed id that
   * restarted), never to this one.
   */
  readonly since: number;
}

/** The answer to a {@linkcode ReplayRequest}. */
export type ReplayResult =
  | {
    readonly ok: true;
    /** Every missed entry, in position order. */
    readonly entries: HistoryEntry[];
    /** Live entries at or below this position are in `entries` already. */
    readonly head: number;
  }
  | { readonly ok: false; readonly gap: Gap };

/** Receives live entries. Must not throw or block. */
export type LiveHandler = (entry: LiveEntry) => void;

/** A live subscription; see {@linkcode RoomHistory.subscribeRoom}. */
export interface LiveSubscription {
  /**
   * Settles once the broker has the subscription: entries appended after
   * that reach it. Await it before asking replay() for the head a resume
   * continues from. Rejects if the broker refused it.
   */
  readonly ready: Promise<void>;
  /** Stops it; idempotent. */
  unsubscribe(): void;
}

/** The state a resume needs, kept in the engine for any node to read. */
export interface SessionRecord {
  /** The session id (cluster-wide). */
  readonly id: number;
  /** Its rooms and their join positions. */
  readonly rooms: readonly ReplayRoom[];
  /** The head position when it began (its inbox's `since`). */
  readonly since: number;
  /** The application's session data (must survive JSON). */
  readonly data: unknown;
  /** A hash of the current resume token (never the token itself). */
  readonly tokenHash: string;
  /** The epoch its positions belong to. */
  readonly epoch: string;
}

/**
 * Session records, kept for `window` ms after their last write. Any node
 * reads them, so a session whose node died resumes on another.
 */
export interface SessionRecords {
  /** Writes (or replaces) a record; it expires `window` ms from now. */
  put(record: SessionRecord): Promise<void>;
  /** The record, or `undefined` when absent or expired. */
  get(id: number): Promise<SessionRecord | undefined>;
  /**
   * Atomically replaces the record if its token hash is `tokenHash`
   * (rotating the token: a token resumes once, even when two nodes race).
   *
   * @returns The record replaced, or `undefined` (absent, expired or
   * another token), in which case nothing changed.
   */
  claim(
    id: number,
    tokenHash: string,
    next: SessionRecord,
  ): Promise<SessionRecord | undefined>;
  /** Removes a record (the session ended for good); idempotent. */
  delete(id: number): Promise<void>;
}

/** Counters of a history engine, for the bench and metrics. */
export interface HistoryStats {
  /** Entries appended. */
  appended: number;
  /** Live entries received. */
  received: number;
  /** Replays answered with entries. */
  replayed: number;
  /** Replays answered with a gap. */
  gaps: number;
}

/**
 * Room history and session records in a cluster's engine; see the file's
 * design note.
 */
export interface RoomHistory extends AsyncDisposable {
  /** `"jetstream"`, `"redis"` or `"memory"`. */
  readonly kind: string;
  /** Milliseconds a session record lives after its last write. */
  readonly window: number;
  /** Session records in the same engine. */
  readonly sessions: SessionRecords;
  /**
   * Appends a room broadcast; its live entry reaches every node
   * subscribed to the room (this one too, if subscribed).
   *
   * @returns Its position, once stored.
   */
  appendRoom(room: string, bytes: Uint8Array): Promise<HistoryPosition>;
  /** Appends a direct message to a session's inbox. */
  appendDirect(session: number, bytes: Uint8Array): Promise<HistoryPosition>;
  /** Live entries of a room, while this node has members there. */
  subscribeRoom(room: string, handler: LiveHandler): LiveSubscription;
  /** Live entries of a session's inbox, while the session is here. */
  subscribeDirect(session: number, handler: LiveHandler): LiveSubscription;
  /** The epoch and last position (a join position, a new session's start). */
  head(): Promise<HistoryPosition>;
  /** Every entry after a position, or a Gap; never part of them. */
  replay(request: ReplayRequest): Promise<ReplayResult>;
  /** The counters. */
  stats(): HistoryStats;
  /** Closes the engine's connections; idempotent. */
  close(): Promise<void>;
}

/** Per room (or inbox) bounds, where the engine can apply them per room. */
export interface HistoryLimits {
  /** Entries kept per room and per inbox. */
  maxMessages: number;
  /** Milliseconds an entry is kept. */
  maxAge: number;
}

const PLAIN = /^[A-Za-z0-9-][A-Za-z0-9_-]{0,99}$/;
const utf8 = new TextEncoder();

/**
 * The subject/key token of a room: plain names as they are, anything else
 * hex-encoded behind `_` (as ClusterNode names room subjects).
 */
export function roomToken(room: string): string {
  if (typeof room !== "string") {
    throw new TypeError("The room must be a string");
  }
  if (PLAIN.test(room)) return room;
  const bytes = utf8.encode(room);
  if (bytes.length > 100) {
    throw new RangeError("Room names are limited to 100 UTF-8 bytes");
  }
  let hex = "_";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** Throws unless `id` is a session id (a positive safe integer). */
export function assertSessionId(id: number): void {
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new TypeError(`Invalid session id: ${id}`);
  }
}

/** Throws unless `value` is a whole number of at least `min`. */
export function assertLimit(name: string, value: number, min = 1): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer of at least ${min}`);
  }
}

/** Throws unless a replay request is well formed. */
export function assertRequest(request: ReplayRequest): void {
  if (typeof request.epoch !== "string") {
    throw new TypeError("The epoch must be a string");
  }
  if (!Number.isSafeInteger(request.after) || request.after < 0) {
    throw new TypeError(`Invalid position: ${request.after}`);
  }
  for (const { room, joined } of request.rooms) {
    roomToken(room);
    if (!Number.isSafeInteger(joined) || joined < 0) {
      throw new TypeError(`Invalid join position: ${joined}`);
    }
  }
  if (request.inbox !== undefined) {
    assertSessionId(request.inbox.session);
    if (!Number.isSafeInteger(request.inbox.since) || request.inbox.since < 0) {
      throw new TypeError(`Invalid inbox position: ${request.inbox.since}`);
    }
  }
}

/** Merges per-channel lists (each in position order) into one. */
export function mergeEntries(lists: HistoryEntry[][]): HistoryEntry[] {
  const all = lists.flat();
  all.sort((a, b) => a.position - b.position);
  return all;
}

/** Builds a gap result. */
export function gap(reason: GapReason, detail: string): ReplayResult {
  return { ok: false, gap: { reason, detail } };
}

/** A record checked after JSON parsing; `undefined` when malformed. */
export function readRecord(text: string): SessionRecord | undefined {
  try {
    const r = JSON.parse(text);
    if (
      typeof r !== "object" || r === null || !Number.isSafeInteger(r.id) ||
      !Array.isArray(r.rooms) || typeof r.tokenHash !== "string" ||
      !Number.isSafeInteger(r.since) ||
      typeof r.epoch !== "string"
    ) return undefined;
    return r as SessionRecord;
  } catch {
    return undefined;
  }
}

/** Throws unless a record can be stored. */
export function assertRecord(record: SessionRecord): void {
  assertSessionId(record.id);
  if (typeof record.tokenHash !== "string" || record.tokenHash === "") {
    throw new TypeError("The record needs a token hash");
  }
  if (typeof record.epoch !== "string") {
    throw new TypeError("The record needs an epoch");
  }
  if (!Number.isSafeInteger(record.since) || record.since < 0) {
    throw new TypeError(`Invalid start position: ${record.since}`);
  }
  for (const { room, joined } of record.rooms) {
    roomToken(room);
    if (!Number.isSafeInteger(joined) || joined < 0) {
      throw new TypeError(`Invalid join position: ${joined}`);
    }
  }
}

/** Where an entry is from, for a gap's detail. */
export function describe(room: string | undefined, session?: number): string {
  return room !== undefined
    ? `room ${JSON.stringify(room)}`
    : `inbox ${session}`;
}
