// RoomHistory in one process's memory: the reference the engine contract
// tests hold the real engines to, and a history for single-process tests.
// Bounds are per room and per inbox (count, bytes, age), and every channel
// remembers the highest position it ever removed, so gap detection is exact
// (the same rule as Redis's max-deleted-entry-id).
import {
  assertLimit,
  assertRecord,
  assertRequest,
  assertSessionId,
  describe,
  gap,
  type HistoryEntry,
  type HistoryLimits,
  type HistoryPosition,
  type HistoryStats,
  type LiveHandler,
  type LiveSubscription,
  mergeEntries,
  type ReplayRequest,
  type ReplayResult,
  type RoomHistory,
  roomToken,
  type SessionRecord,
  type SessionRecords,
} from "./history.ts";

/** Options of a {@linkcode MemoryHistoryStore}. */
export interface MemoryHistoryOptions extends HistoryLimits {
  /** Bytes kept per room and per inbox. */
  maxBytes: number;
  /** Milliseconds a session record lives after its last write. */
  window: number;
  /** The clock (tests move it). */
  now?: () => number;
}

interface Stored extends HistoryEntry {
  readonly time: number;
}

interface Channel {
  entries: Stored[];
  bytes: number;
  maxDeleted: number;
  handlers: Set<LiveHandler>;
}

/** The shared state of one in-memory "engine"; connect nodes to it. */
export class MemoryHistoryStore {
  readonly options: Required<MemoryHistoryOptions>;
  epoch = crypto.randomUUID();
  position = 0;
  channels = new Map<string, Channel>();
  records = new Map<number, { text: string; expires: number }>();

  constructor(options: MemoryHistoryOptions) {
    assertLimit("maxMessages", options.maxMessages);
    assertLimit("maxBytes", options.maxBytes);
    assertLimit("maxAge", options.maxAge);
    assertLimit("window", options.window);
    this.options = { now: Date.now, ...options };
  }

  /** The stream is lost (a broker restarted without its data). */
  lose(): void {
    this.epoch = crypto.randomUUID();
    this.position = 0;
    for (const channel of this.channels.values()) {
      channel.entries = [];
      channel.bytes = 0;
      channel.maxDeleted = 0;
    }
    this.records.clear();
  }

  /** A node's handle on the store. */
  connect(): MemoryHistory {
    return new MemoryHistory(this);
  }

  channel(key: string): Channel {
    let channel = this.channels.get(key);
    if (channel === undefined) {
      channel = { entries: [], bytes: 0, maxDeleted: 0, handlers: new Set() };
      this.channels.set(key, channel);
    }
    return channel;
  }

  trim(channel: Channel): void {
    const { maxMessages, maxBytes, maxAge, now } = this.options;
    const oldest = now() - maxAge;
    const entries = channel.entries;
    let drop = 0;
    let bytes = channel.bytes;
    while (
      drop < entries.length &&
      (entries.length - drop > maxMessages || bytes > maxBytes ||
        entries[drop]!.time <= oldest)
    ) {
      bytes -= entries[drop]!.bytes.length;
      channel.maxDeleted = entries[drop]!.position;
      drop++;
    }
    if (drop > 0) entries.splice(0, drop);
    channel.bytes = bytes;
  }
}

/** A node's {@linkcode RoomHistory} on a {@linkcode MemoryHistoryStore}. */
export class MemoryHistory implements RoomHistory {
  readonly kind = "memory";
  /** Milliseconds a session record lives after its last write. */
  get window(): number {
    return this.#store.options.window;
  }
  readonly sessions: SessionRecords;
  #store: MemoryHistoryStore;
  #closed = false;
  #stats: HistoryStats = { appended: 0, received: 0, replayed: 0, gaps: 0 };

  constructor(store: MemoryHistoryStore) {
    this.#store = store;
    this.sessions = new MemoryRecords(store);
  }

  appendRoom(room: string, bytes: Uint8Array): Promise<HistoryPosition> {
    return Promise.resolve(
      this.#append(`r.${roomToken(room)}`, room, undefined, bytes),
    );
  }

  appendDirect(session: number, bytes: Uint8Array): Promise<HistoryPosition> {
    assertSessionId(session);
    return Promise.resolve(
      this.#append(`d.${session}`, undefined, session, bytes),
    );
  }

  #append(
    key: string,
    room: string | undefined,
    session: number | undefined,
    bytes: Uint8Array,
  ): HistoryPosition {
    if (this.#closed) throw new Error("The history is closed");
    const store = this.#store;
    const channel = store.channel(key);
    const position = ++store.position;
    const previous = channel.entries.at(-1)?.position ?? channel.maxDeleted;
    const copy = bytes.slice();
    channel.entries.push({
      position,
      room,
      session,
      bytes: copy,
      time: store.options.now(),
    });
    channel.bytes += copy.length;
    store.trim(channel);
    this.#stats.appended++;
    const epoch = store.epoch;
    const entry = { epoch, position, previous, room, session, bytes: copy };
    for (const handler of channel.handlers) {
      try {
        handler(entry);
      } catch (error) {
        // A receiving node's fault is not the appender's.
        console.error("microsocket history:", error);
      }
    }
    return { epoch, position };
  }

  subscribeRoom(room: string, handler: LiveHandler): LiveSubscription {
    return this.#subscribe(`r.${roomToken(room)}`, handler);
  }

  subscribeDirect(session: number, handler: LiveHandler): LiveSubscription {
    assertSessionId(session);
    return this.#subscribe(`d.${session}`, handler);
  }

  #subscribe(key: string, handler: LiveHandler): LiveSubscription {
    const handlers = this.#store.channel(key).handlers;
    const stats = this.#stats;
    const counted: LiveHandler = (entry) => {
      stats.received++;
      handler(entry);
    };
    handlers.add(counted);
    return {
      ready: Promise.resolve(),
      unsubscribe: () => void handlers.delete(counted),
    };
  }

  head(): Promise<HistoryPosition> {
    return Promise.resolve({
      epoch: this.#store.epoch,
      position: this.#store.position,
    });
  }

  replay(request: ReplayRequest): Promise<ReplayResult> {
    assertRequest(request);
    const result = this.#replay(request);
    if (result.ok) this.#stats.replayed++;
    else this.#stats.gaps++;
    return Promise.resolve(result);
  }

  #replay(request: ReplayRequest): ReplayResult {
    const store = this.#store;
    if (request.epoch !== store.epoch) {
      return gap("epoch", `epoch ${request.epoch} is not ${store.epoch}`);
    }
    if (request.after > store.position) {
      return gap(
        "future",
        `position ${request.after} is after ${store.position}`,
      );
    }
    const wanted: [string, string | undefined, number | undefined, number][] =
      request.rooms
        .map((
          { room, joined },
        ) => [`r.${roomToken(room)}`, room, undefined, joined]);
    if (request.inbox !== undefined) {
      const { session, since } = request.inbox;
      wanted.push([`d.${session}`, undefined, session, since]);
    }
    const lists: HistoryEntry[][] = [];
    for (const [key, room, session, joined] of wanted) {
      const from = Math.max(request.after, joined);
      const channel = store.channels.get(key);
      if (channel === undefined) continue;
      store.trim(channel);
      if (channel.maxDeleted > from) {
        return gap(
          "trimmed",
          `${
            describe(room, session)
          } lost position ${channel.maxDeleted} (after ${from})`,
        );
      }
      lists.push(
        channel.entries.filter((e) => e.position > from).map((e) => ({
          position: e.position,
          room: e.room,
          session: e.session,
          bytes: e.bytes,
        })),
      );
    }
    return { ok: true, entries: mergeEntries(lists), head: store.position };
  }

  stats(): HistoryStats {
    return { ...this.#stats };
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class MemoryRecords implements SessionRecords {
  #store: MemoryHistoryStore;
  constructor(store: MemoryHistoryStore) {
    this.#store = store;
  }

  put(record: SessionRecord): Promise<void> {
    assertRecord(record);
    const { now, window } = this.#store.options;
    this.#store.records.set(record.id, {
      text: JSON.stringify(record),
      expires: now() + window,
    });
    return Promise.resolve();
  }

  get(id: number): Promise<SessionRecord | undefined> {
    const stored = this.#store.records.get(id);
    if (stored === undefined) return Promise.resolve(undefined);
    if (stored.expires <= this.#store.options.now()) {
      this.#store.records.delete(id);
      return Promise.resolve(undefined);
    }
    return Promise.resolve(JSON.parse(stored.text) as SessionRecord);
  }

  claim(
    id: number,
    tokenHash: string,
    next: SessionRecord,
  ): Promise<SessionRecord | undefined> {
    assertRecord(next);
    // Read and write in one turn: nothing interleaves in one process.
    const stored = this.#store.records.get(id);
    if (
      stored === undefined || stored.expires <= this.#store.options.now() ||
      next.id !== id
    ) {
      return Promise.resolve(undefined);
    }
    const current = JSON.parse(stored.text) as SessionRecord;
    if (current.tokenHash !== tokenHash) return Promise.resolve(undefined);
    this.put(next);
    return Promise.resolve(current);
  }

  delete(id: number): Promise<void> {
    this.#store.records.delete(id);
    return Promise.resolve();
  }
}
