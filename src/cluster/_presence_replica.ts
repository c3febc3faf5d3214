// Presence's copies of other nodes: for each node heard from, the entries it
// owns as known here, the number of its last delta applied, and the rules
// that keep the copy right. Deltas apply in order; a gap, a restart (a new
// incarnation) or a node not yet synced asks for its full state, and deltas
// that overtake that state wait for it. A node silent for `nodeTimeout` is
// dropped, and so are its members. Every change goes through the merged
// view (_presence_view.ts), which fires the events.
import {
  deleteEntry,
  type PresenceEntry,
  type PresenceView,
  putEntry,
  type RoomEntries,
} from "./_presence_view.ts";
import type { Message, Op, PresenceWire, SnapEntry } from "./_presence_wire.ts";

/** Deltas kept while a full state is awaited; later ones are dropped. */
const MAX_BUFFERED_DELTAS = 64;

/** The counters the replicas move (a subset of `PresenceStats`). */
export interface ReplicaCounters {
  deltasApplied: number;
  snapshotsApplied: number;
  resyncRequests: number;
  nodesTimedOut: number;
}

/** What the replicas share: where changes go and how to ask for state. */
export interface ReplicaContext<Meta> {
  view: PresenceView<Meta>;
  wire: PresenceWire;
  stats: ReplicaCounters;
  heartbeatInterval: number;
  nodeTimeout: number;
  onError: (error: unknown) => void;
}

/** The state replicated from one other node. */
export class Replica<Meta> {
  /** The node's name. */
  readonly name: string;
  /** The node's run; a new one means it restarted. */
  readonly incarnation: string;
  /** The number of its last delta applied. */
  seq = 0;
  /** Whether its full state has been received. */
  synced = false;
  /** When it was last heard from (`performance.now()`). */
  lastSeen: number = performance.now();
  /** Its entries, as known here. */
  entries: RoomEntries<Meta> = new Map();
  #context: ReplicaContext<Meta>;
  #requestedAt = -Infinity;
  #pending: { s: number; of: number; got: Set<number>; e: SnapEntry[] } | null =
    null;
  #buffered: Array<{ s: number; o: Op[] }> = [];

  constructor(
    context: ReplicaContext<Meta>,
    name: string,
    incarnation: string,
  ) {
    this.#context = context;
    this.name = name;
    this.incarnation = incarnation;
  }

  /** How many entries it owns, as known here. */
  get size(): number {
    return [...this.entries.values()].reduce((n, m) => n + m.size, 0);
  }

  /** A heartbeat or hello said it is at delta `seq`: resync if behind. */
  checkSeq(seq: number): void {
    if (typeof seq !== "number") return;
    if (!this.synced || seq !== this.seq) this.#request();
  }

  /** A delta arrived. */
  delta(seq: number, ops: Op[]): void {
    if (typeof seq !== "number" || !Array.isArray(ops)) return;
    if (this.synced && seq <= this.seq) return;
    if (this.synced && seq === this.seq + 1) {
      this.#apply(ops);
      this.seq = seq;
      return;
    }
    // Not synced yet, or a gap: keep it for after the full state arrives.
    if (this.#buffered.length < MAX_BUFFERED_DELTAS) {
      this.#buffered.push({ s: seq, o: ops });
    }
    this.#request();
  }

  /** A part of its full state arrived; the last part replaces the copy. */
  snapshotPart(message: Extract<Message, { t: "snap" }>): void {
    const { s, p, of, e } = message;
    if (
      typeof s !== "number" || typeof p !== "number" ||
      typeof of !== "number" || !Array.isArray(e)
    ) return;
    if (this.#pending === null || this.#pending.s !== s) {
      this.#pending = { s, of, got: new Set(), e: [] };
    }
    const pending = this.#pending;
    if (pending.got.has(p)) return;
    pending.got.add(p);
    pending.e.push(...e);
    if (pending.got.size < pending.of) return;
    this.#pending = null;
    this.#replace(pending.e);
    this.seq = s;
    this.synced = true;
    this.#requestedAt = -Infinity;
    this.#context.stats.snapshotsApplied++;
    // Deltas that overtook the full state, in order, while they follow on.
    this.#buffered.sort((a, b) => a.s - b.s);
    for (const delta of this.#buffered) {
      if (delta.s === this.seq + 1) {
        this.#apply(delta.o);
        this.seq = delta.s;
      }
    }
    this.#buffered = [];
  }

  /** Removes all its entries from the view (it left, restarted or died). */
  clear(): void {
    for (const members of this.entries.values()) {
      for (const entry of members.values()) this.#context.view.unmerge(entry);
    }
    this.entries.clear();
  }

  #request(): void {
    const now = performance.now();
    // One request per heartbeat period at most: a reply is on its way.
    if (now - this.#requestedAt < 2 * this.#context.heartbeatInterval) return;
    this.#requestedAt = now;
    this.#context.stats.resyncRequests++;
    this.#context.wire.request(this.name);
  }

  #apply(ops: Op[]): void {
    const view = this.#context.view;
    this.#context.stats.deltasApplied++;
    for (const op of ops) {
      if (!Array.isArray(op)) continue;
      const [kind, room, id] = op;
      if (typeof room !== "string" || typeof id !== "number") continue;
      if (kind === 1 || kind === 2) {
        const previous = this.entries.get(room)?.get(id);
        const entry: PresenceEntry<Meta> = {
          room,
          id,
          meta: op[3] as Meta,
          node: this.name,
          since: kind === 1 ? Number(op[4]) : previous?.since ?? 0,
        };
        putEntry(this.entries, entry);
        view.merge(entry);
      } else if (kind === 0) {
        const entry = this.entries.get(room)?.get(id);
        if (entry === undefined) continue;
        deleteEntry(this.entries, room, id);
        view.unmerge(entry);
      }
    }
  }

  #replace(snapshot: SnapEntry[]): void {
    const view = this.#context.view;
    const next: RoomEntries<Meta> = new Map();
    for (const item of snapshot) {
      if (!Array.isArray(item)) continue;
      const [room, id, meta, since] = item;
      if (typeof room !== "string" || typeof id !== "number") continue;
      putEntry(next, {
        room,
        id,
        meta: meta as Meta,
        node: this.name,
        since: Number(since),
      });
    }
    for (const [room, members] of this.entries) {
      for (const [id, entry] of members) {
        if (!next.get(room)?.has(id)) view.unmerge(entry);
      }
    }
    this.entries = next;
    for (const members of next.values()) {
      for (const entry of members.values()) view.merge(entry);
    }
  }
}

/**
 * The other nodes heard from, by name, and the one timer that drops those
 * silent for `nodeTimeout`.
 */
export class Replicas<Meta> {
  #context: ReplicaContext<Meta>;
  #remotes = new Map<string, Replica<Meta>>();
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(context: ReplicaContext<Meta>) {
    this.#context = context;
  }

  /** The nodes known, in the order first heard from. */
  values(): IterableIterator<Replica<Meta>> {
    return this.#remotes.values();
  }

  /**
   * The copy of node `name` after it spoke: a new one for a new node or a
   * new incarnation (the old one's members leave), marked as just seen.
   */
  heard(name: string, incarnation: string): Replica<Meta> {
    let remote = this.#remotes.get(name);
    if (remote !== undefined && remote.incarnation !== incarnation) {
      // Restarted under the same name: its old members are gone.
      this.#drop(remote);
      remote = undefined;
    }
    if (remote === undefined) {
      remote = new Replica(this.#context, name, incarnation);
      this.#remotes.set(name, remote);
      if (this.#expiryTimer === undefined) {
        this.#expiryTimer = setTimeout(
          () => this.#expire(),
          this.#context.nodeTimeout,
        );
      }
    }
    remote.lastSeen = performance.now();
    return remote;
  }

  /** Node `name` said goodbye: drop it if that run is the one known. */
  bye(name: string, incarnation: string): void {
    const remote = this.#remotes.get(name);
    if (remote?.incarnation === incarnation) this.#drop(remote);
  }

  /** Stops the timer and forgets every node, firing no events. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#expiryTimer);
    this.#remotes.clear();
  }

  #drop(remote: Replica<Meta>): void {
    if (this.#remotes.get(remote.name) === remote) {
      this.#remotes.delete(remote.name);
    }
    remote.clear();
  }

  // Drops the nodes silent for nodeTimeout, then sleeps until the next one
  // could be: one timer for all nodes, firing at the earliest deadline, so a
  // node that dies is gone within nodeTimeout of its last word (a check on
  // every heartbeat would add up to a heartbeat interval to that).
  #expire(): void {
    this.#expiryTimer = undefined;
    if (this.#closed) return;
    try {
      const now = performance.now();
      let next = Infinity;
      for (const remote of [...this.#remotes.values()]) {
        const deadline = remote.lastSeen + this.#context.nodeTimeout;
        if (deadline <= now) {
          this.#context.stats.nodesTimedOut++;
          this.#drop(remote);
        } else if (deadline < next) {
          next = deadline;
        }
      }
      if (next !== Infinity) {
        this.#expiryTimer = setTimeout(
          () => this.#expire(),
          Math.ceil(next - now),
        );
      }
    } catch (error) {
      this.#context.onError(error);
    }
  }
}
