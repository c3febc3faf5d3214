// Replicated presence ("who is in this room, on any node") without a
// central owner, after Phoenix.Tracker: each node owns its own entries and
// is the only one to change them; it publishes them as numbered deltas,
// sends heartbeats carrying its latest number, and answers requests for its
// full state. Every node thus holds a copy of everyone's entries and answers
// queries locally, never waiting on replies a dead node can't send. A node
// silent for `nodeTimeout` is dropped (its members leave); a node that
// restarts comes back under a new incarnation id and is resynchronised;
// a gap in the numbers (a lost delta) triggers a full-state request.
//
// The presence protocol is low-rate control traffic, so it is JSON; room
// messages (the hot path) never go through here.
import type { Broker, BrokerState, BrokerSubscription } from "./broker.ts";
import { defaultOnError } from "./_broker_core.ts";

/**
 * One member of a room as presence sees it.
 *
 * @typeParam Meta The app's public data about the member (e.g. its nick).
 *
 * @example Reading an entry
 * ```ts
 * import type { PresenceEntry } from "@x/microsocket/cluster";
 *
 * function describe(entry: PresenceEntry<{ nick: string }>): string {
 *   return `${entry.meta.nick} on ${entry.node}`;
 * }
 * console.log(describe({ room: "lobby", id: 1, meta: { nick: "ann" }, node: "n1", since: 0 }));
 * ```
 */
export interface PresenceEntry<Meta> {
  /** The room. */
  readonly room: string;
  /** The member's id (a session id, unique across the cluster). */
  readonly id: number;
  /** The app's public data about the member, as JSON carries it. */
  readonly meta: Meta;
  /** The name of the node that owns the member. */
  readonly node: string;
  /**
   * The owner's wall-clock time (ms since the epoch) when the member was
   * tracked; with `id`, a deterministic order for settling conflicts (e.g.
   * the same nick taken on two nodes at once: the smaller `[since, id]`
   * keeps it).
   */
  readonly since: number;
}

/**
 * What presence knows about another node.
 *
 * @example
 * ```ts
 * import type { PresenceNode } from "@x/microsocket/cluster";
 *
 * const node: PresenceNode = { name: "n2", incarnation: "x", entries: 3, synced: true };
 * console.log(node.name);
 * ```
 */
export interface PresenceNode {
  /** The node's name. */
  readonly name: string;
  /** A random id chosen when that node started; changes on restart. */
  readonly incarnation: string;
  /** How many entries it owns, as known here. */
  readonly entries: number;
  /** Whether its full state has been received. */
  readonly synced: boolean;
}

/**
 * Options for {@linkcode Presence}.
 *
 * @typeParam Meta The app's public data about each member.
 *
 * @example
 * ```ts
 * import { MemoryBrokerHub, type PresenceOptions } from "@x/microsocket/cluster";
 *
 * const options: PresenceOptions<{ nick: string }> = {
 *   broker: new MemoryBrokerHub().connect(),
 *   node: "n1",
 *   heartbeatInterval: 1000,
 *   nodeTimeout: 5000,
 *   onJoin: (entry) => console.log(`${entry.meta.nick} joined ${entry.room}`),
 * };
 * await options.broker.close();
 * ```
 */
export interface PresenceOptions<Meta> {
  /** The broker connection to replicate over (not closed by presence). */
  broker: Broker;
  /**
   * This node's name, unique in the cluster: letters, digits, `_`, `-`.
   */
  node: string;
  /**
   * The first token of every subject, so several apps can share a broker.
   *
   * @default {"microsocket"}
   */
  prefix?: string;
  /**
   * Milliseconds between heartbeats.
   *
   * @default {1000}
   */
  heartbeatInterval?: number;
  /**
   * Milliseconds of silence after which a node and its members are dropped.
   * Must be at least twice `heartbeatInterval`.
   *
   * @default {5000}
   */
  nodeTimeout?: number;
  /**
   * The largest JSON encoding of one member's `meta`, in UTF-16 code units.
   *
   * @default {1024}
   */
  maxMetaBytes?: number;
  /** A member joined a room, on this node or another. */
  onJoin?: (entry: PresenceEntry<Meta>) => void;
  /** A member left a room, or its node was dropped. */
  onLeave?: (entry: PresenceEntry<Meta>) => void;
  /** A member's meta changed. */
  onUpdate?: (
    entry: PresenceEntry<Meta>,
    previous: PresenceEntry<Meta>,
  ) => void;
  /**
   * Errors nobody can catch: a callback that threw, a bad message.
   *
   * @default {console.error}
   */
  onError?: (error: unknown) => void;
}

/**
 * Counters of a {@linkcode Presence}.
 *
 * @example
 * ```ts
 * import type { PresenceStats } from "@x/microsocket/cluster";
 *
 * const stats: PresenceStats = { deltasSent: 0, deltasApplied: 0, snapshotsSent: 0, snapshotsApplied: 0, resyncRequests: 0, nodesTimedOut: 0 };
 * console.log(stats.nodesTimedOut);
 * ```
 */
export interface PresenceStats {
  /** Delta messages published. */
  deltasSent: number;
  /** Delta messages applied from other nodes. */
  deltasApplied: number;
  /** Full states sent to other nodes. */
  snapshotsSent: number;
  /** Full states received and applied. */
  snapshotsApplied: number;
  /** Full states asked of other nodes (a new node, a gap, a restart). */
  resyncRequests: number;
  /** Nodes dropped after `nodeTimeout` of silence. */
  nodesTimedOut: number;
}

// Wire format. Ops: [1, room, id, meta, since] join, [2, room, id, meta]
// update, [0, room, id] leave. Snapshot entries: [room, id, meta, since].
type Op =
  | [1, string, number, unknown, number]
  | [2, string, number, unknown]
  | [0, string, number];
type SnapEntry = [string, number, unknown, number];
type Message =
  | { t: "h" | "hello"; n: string; i: string; s: number }
  | { t: "d"; n: string; i: string; s: number; o: Op[] }
  | { t: "bye" | "req"; n: string; i: string }
  | {
    t: "snap";
    n: string;
    i: string;
    s: number;
    p: number;
    of: number;
    e: SnapEntry[];
  };

const CHUNK = 256;
const MAX_BUFFERED_DELTAS = 64;
const NODE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

interface Remote<Meta> {
  incarnation: string;
  seq: number;
  synced: boolean;
  lastSeen: number;
  requestedAt: number;
  entries: Map<string, Map<number, PresenceEntry<Meta>>>;
  pending: { s: number; of: number; got: Set<number>; e: SnapEntry[] } | null;
  buffered: Array<{ s: number; o: Op[] }>;
}

/**
 * Replicated presence: members of rooms across every node of a cluster,
 * with public meta, and join/leave events everywhere.
 *
 * Each node owns its entries ({@linkcode Presence.track},
 * {@linkcode Presence.untrack}) and replicates them over the broker; every
 * node keeps a full copy, so {@linkcode Presence.list} and friends are
 * local and instant. Consistency is eventual: a change reaches other nodes
 * a broker hop later; a lost message is repaired at the next heartbeat.
 *
 * @typeParam Meta The app's public data about each member (JSON-encodable).
 *
 * @example Two nodes, one room
 * ```ts
 * import { MemoryBrokerHub, Presence } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub();
 * await using a = new Presence<{ nick: string }>({ broker: hub.connect(), node: "a" });
 * await using b = new Presence<{ nick: string }>({ broker: hub.connect(), node: "b" });
 * a.track("lobby", 1, { nick: "ann" });
 * for (let i = 0; i < 100 && b.count("lobby") === 0; i++) {
 *   await new Promise((r) => setTimeout(r, 10));
 * }
 * assert.deepEqual(b.list("lobby").map((e) => e.meta.nick), ["ann"]);
 * ```
 */
export class Presence<Meta = unknown> implements AsyncDisposable {
  /** This node's name. */
  readonly node: string;
  /** A random id of this run; a restarted node gets a new one. */
  readonly incarnation: string;
  #broker: Broker;
  #prefix: string;
  #heartbeatInterval: number;
  #nodeTimeout: number;
  #maxMetaBytes: number;
  #onJoin: ((entry: PresenceEntry<Meta>) => void) | undefined;
  #onLeave: ((entry: PresenceEntry<Meta>) => void) | undefined;
  #onUpdate:
    | ((entry: PresenceEntry<Meta>, previous: PresenceEntry<Meta>) => void)
    | undefined;
  #onError: (error: unknown) => void;
  // Everyone's entries, merged: room → id → entry.
  #rooms = new Map<string, Map<number, PresenceEntry<Meta>>>();
  // This node's entries.
  #local = new Map<string, Map<number, PresenceEntry<Meta>>>();
  #remotes = new Map<string, Remote<Meta>>();
  #seq = 0;
  #ops: Op[] = [];
  #flushScheduled = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #subscriptions: BrokerSubscription[] = [];
  #stopWatching: () => void;
  #closed = false;
  #lastState: BrokerState;
  #stats: PresenceStats = {
    deltasSent: 0,
    deltasApplied: 0,
    snapshotsSent: 0,
    snapshotsApplied: 0,
    resyncRequests: 0,
    nodesTimedOut: 0,
  };
  #encoder = new TextEncoder();
  #decoder = new TextDecoder();
  #conflictReported = false;

  /**
   * Starts replicating: subscribes, says hello (other nodes answer with
   * their full state) and starts the heartbeat.
   *
   * @param options Presence options.
   * @throws TypeError when `node` or `prefix` is not a valid name.
   * @throws RangeError when `nodeTimeout` is under twice `heartbeatInterval`.
   */
  constructor(options: PresenceOptions<Meta>) {
    if (!NODE_NAME.test(options.node ?? "")) {
      throw new TypeError(`Invalid node name: ${JSON.stringify(options.node)}`);
    }
    const prefix = options.prefix ?? "microsocket";
    if (!NODE_NAME.test(prefix)) {
      throw new TypeError(`Invalid prefix: ${JSON.stringify(prefix)}`);
    }
    this.#heartbeatInterval = options.heartbeatInterval ?? 1000;
    this.#nodeTimeout = options.nodeTimeout ?? 5000;
    if (!(this.#heartbeatInterval > 0)) {
      throw new RangeError("heartbeatInterval must be positive");
    }
    if (!(this.#nodeTimeout >= 2 * this.#heartbeatInterval)) {
      throw new RangeError(
        "nodeTimeout must be at least twice heartbeatInterval",
      );
    }
    this.node = options.node;
    this.incarnation = crypto.randomUUID().slice(0, 13);
    this.#broker = options.broker;
    this.#prefix = prefix;
    this.#maxMetaBytes = options.maxMetaBytes ?? 1024;
    this.#onJoin = options.onJoin;
    this.#onLeave = options.onLeave;
    this.#onUpdate = options.onUpdate;
    const sink = options.onError ?? defaultOnError;
    this.#onError = (error) => {
      try {
        sink(error);
      } catch {
        // nowhere left to report it
      }
    };
    const handler = (bytes: Uint8Array): void => this.#receive(bytes);
    this.#subscriptions.push(
      this.#broker.subscribe(`${prefix}.presence`, handler),
      this.#broker.subscribe(`${prefix}.presence.${this.node}`, handler),
    );
    this.#lastState = this.#broker.state;
    this.#stopWatching = this.#broker.onStateChange((state) => {
      const was = this.#lastState;
      this.#lastState = state;
      // Back from an outage: others may have dropped us and we may have
      // missed their deltas; a hello makes both sides resynchronise now
      // rather than at the next heartbeat.
      if (state === "connected" && was !== "connected") this.#hello();
    });
    this.#timer = setInterval(() => this.#tick(), this.#heartbeatInterval);
    this.#hello();
  }

  /**
   * Adds a member of this node to a room.
   *
   * @param room The room.
   * @param id The member's cluster-unique id.
   * @param meta Public data, replicated as JSON.
   * @returns `false` when already tracked (use {@linkcode Presence.update}).
   * @throws RangeError when `meta` encodes to more than `maxMetaBytes`.
   */
  track(room: string, id: number, meta: Meta): boolean {
    this.#checkOpen();
    const members = this.#local.get(room);
    if (members?.has(id)) return false;
    const encoded = this.#checkMeta(meta);
    const entry: PresenceEntry<Meta> = {
      room,
      id,
      meta: encoded,
      node: this.node,
      since: Date.now(),
    };
    this.#put(this.#local, entry);
    this.#merge(entry);
    this.#queue([1, room, id, encoded, entry.since]);
    return true;
  }

  /**
   * Replaces the meta of a member of this node.
   *
   * @param room The room.
   * @param id The member's id.
   * @param meta The new public data.
   * @returns `false` when the member is not tracked here.
   * @throws RangeError when `meta` encodes to more than `maxMetaBytes`.
   */
  update(room: string, id: number, meta: Meta): boolean {
    this.#checkOpen();
    const previous = this.#local.get(room)?.get(id);
    if (previous === undefined) return false;
    const encoded = this.#checkMeta(meta);
    const entry = { ...previous, meta: encoded };
    this.#put(this.#local, entry);
    this.#merge(entry);
    this.#queue([2, room, id, encoded]);
    return true;
  }

  /**
   * Removes a member of this node from a room.
   *
   * @param room The room.
   * @param id The member's id.
   * @returns `false` when it was not tracked here.
   */
  untrack(room: string, id: number): boolean {
    if (this.#closed) return false;
    const entry = this.#local.get(room)?.get(id);
    if (entry === undefined) return false;
    this.#delete(this.#local, room, id);
    this.#unmerge(entry);
    this.#queue([0, room, id]);
    return true;
  }

  /**
   * Removes a member of this node from every room (e.g. on disconnect).
   *
   * @param id The member's id.
   * @returns How many rooms it left.
   */
  untrackAll(id: number): number {
    let count = 0;
    for (const [room, members] of [...this.#local]) {
      if (members.has(id) && this.untrack(room, id)) count++;
    }
    return count;
  }

  /**
   * The members of a room on every node, as known here (local, instant).
   *
   * @param room The room.
   * @returns The entries, in no particular order.
   */
  list(room: string): PresenceEntry<Meta>[] {
    const members = this.#rooms.get(room);
    return members === undefined ? [] : [...members.values()];
  }

  /**
   * One member of a room.
   *
   * @param room The room.
   * @param id The member's id.
   * @returns Its entry, or `undefined`.
   */
  get(room: string, id: number): PresenceEntry<Meta> | undefined {
    return this.#rooms.get(room)?.get(id);
  }

  /**
   * How many members a room has on every node.
   *
   * @param room The room.
   * @returns The count.
   */
  count(room: string): number {
    return this.#rooms.get(room)?.size ?? 0;
  }

  /**
   * The rooms with members on any node.
   *
   * @returns Room names.
   */
  rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /**
   * The other nodes heard from within `nodeTimeout`.
   *
   * @returns One record per node.
   */
  nodes(): PresenceNode[] {
    return [...this.#remotes].map(([name, r]) => ({
      name,
      incarnation: r.incarnation,
      entries: [...r.entries.values()].reduce((n, m) => n + m.size, 0),
      synced: r.synced,
    }));
  }

  /**
   * The counters.
   *
   * @returns A snapshot.
   */
  stats(): PresenceStats {
    return { ...this.#stats };
  }

  /**
   * Stops: says goodbye (other nodes drop this node's members at once),
   * stops the heartbeat and unsubscribes. Emits no events here; the broker
   * stays open. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#flush();
    this.#send(`${this.#prefix}.presence`, {
      t: "bye",
      n: this.node,
      i: this.incarnation,
    });
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#expiryTimer);
    this.#stopWatching();
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    this.#rooms.clear();
    this.#local.clear();
    this.#remotes.clear();
    return Promise.resolve();
  }

  /** Same as {@linkcode Presence.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- local changes ----

  #checkOpen(): void {
    if (this.#closed) throw new TypeError("Presence is closed");
  }

  #checkMeta(meta: Meta): Meta {
    const json = JSON.stringify(meta ?? null);
    if (json.length > this.#maxMetaBytes) {
      throw new RangeError(
        `Presence meta is ${json.length} bytes, over the ${this.#maxMetaBytes} limit`,
      );
    }
    // What other nodes will see, so every node sees the same value.
    return JSON.parse(json) as Meta;
  }

  #queue(op: Op): void {
    this.#ops.push(op);
    if (this.#ops.length >= CHUNK) {
      this.#flush();
    } else if (!this.#flushScheduled) {
      // Changes made in one turn leave in one message.
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    while (this.#ops.length > 0 && !this.#closed) {
      const o = this.#ops.splice(0, CHUNK);
      // The number moves even if the publish is dropped: the gap is what
      // tells other nodes (at the next heartbeat) to ask for a full state.
      this.#seq++;
      this.#stats.deltasSent++;
      this.#send(`${this.#prefix}.presence`, {
        t: "d",
        n: this.node,
        i: this.incarnation,
        s: this.#seq,
        o,
      });
    }
  }

  #hello(): void {
    this.#send(`${this.#prefix}.presence`, {
      t: "hello",
      n: this.node,
      i: this.incarnation,
      s: this.#seq,
    });
  }

  #tick(): void {
    try {
      if (this.#closed) return;
      this.#flush();
      this.#send(`${this.#prefix}.presence`, {
        t: "h",
        n: this.node,
        i: this.incarnation,
        s: this.#seq,
      });
    } catch (error) {
      this.#onError(error);
    }
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
      for (const [name, remote] of [...this.#remotes]) {
        const deadline = remote.lastSeen + this.#nodeTimeout;
        if (deadline <= now) {
          this.#stats.nodesTimedOut++;
          this.#dropRemote(name, remote);
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
      this.#onError(error);
    }
  }

  #send(subject: string, message: Message): void {
    try {
      this.#broker.publish(
        subject,
        this.#encoder.encode(JSON.stringify(message)),
      );
    } catch (error) {
      this.#onError(error);
    }
  }

  #sendSnapshot(to: string): void {
    if (!NODE_NAME.test(to)) return;
    this.#flush();
    const all: SnapEntry[] = [];
    for (const members of this.#local.values()) {
      for (const e of members.values()) {
        all.push([e.room, e.id, e.meta, e.since]);
      }
    }
    const of = Math.max(1, Math.ceil(all.length / CHUNK));
    this.#stats.snapshotsSent++;
    for (let p = 0; p < of; p++) {
      this.#send(`${this.#prefix}.presence.${to}`, {
        t: "snap",
        n: this.node,
        i: this.incarnation,
        s: this.#seq,
        p,
        of,
        e: all.slice(p * CHUNK, (p + 1) * CHUNK),
      });
    }
  }

  // ---- remote changes ----

  #receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    let message: Message;
    try {
      message = JSON.parse(this.#decoder.decode(bytes));
    } catch (error) {
      this.#onError(new Error("Bad presence message", { cause: error }));
      return;
    }
    if (typeof message?.n !== "string" || typeof message.i !== "string") {
      return;
    }
    if (message.n === this.node) {
      if (message.i !== this.incarnation && !this.#conflictReported) {
        this.#conflictReported = true;
        this.#onError(
          new Error(
            `Another node uses the name ${this.node}; names must be unique`,
          ),
        );
      }
      return;
    }
    if (!NODE_NAME.test(message.n)) return;
    if (message.t === "bye") {
      const remote = this.#remotes.get(message.n);
      if (remote?.incarnation === message.i) {
        this.#dropRemote(message.n, remote);
      }
      return;
    }
    const remote = this.#remoteFor(message.n, message.i);
    remote.lastSeen = performance.now();
    switch (message.t) {
      case "hello":
        this.#sendSnapshot(message.n);
        this.#checkSeq(message.n, remote, message.s);
        break;
      case "h":
        this.#checkSeq(message.n, remote, message.s);
        break;
      case "req":
        this.#sendSnapshot(message.n);
        break;
      case "d":
        this.#delta(message.n, remote, message.s, message.o);
        break;
      case "snap":
        this.#snapshotPart(remote, message);
        break;
    }
  }

  #remoteFor(name: string, incarnation: string): Remote<Meta> {
    let remote = this.#remotes.get(name);
    if (remote !== undefined && remote.incarnation !== incarnation) {
      // Restarted under the same name: its old members are gone.
      this.#dropRemote(name, remote);
      remote = undefined;
    }
    if (remote === undefined) {
      remote = {
        incarnation,
        seq: 0,
        synced: false,
        lastSeen: performance.now(),
        requestedAt: -Infinity,
        entries: new Map(),
        pending: null,
        buffered: [],
      };
      this.#remotes.set(name, remote);
      if (this.#expiryTimer === undefined) {
        this.#expiryTimer = setTimeout(() => this.#expire(), this.#nodeTimeout);
      }
    }
    return remote;
  }

  #checkSeq(name: string, remote: Remote<Meta>, seq: number): void {
    if (typeof seq !== "number") return;
    if (!remote.synced || seq !== remote.seq) this.#request(name, remote);
  }

  #request(name: string, remote: Remote<Meta>): void {
    const now = performance.now();
    // One request per heartbeat period at most: a reply is on its way.
    if (now - remote.requestedAt < 2 * this.#heartbeatInterval) return;
    remote.requestedAt = now;
    this.#stats.resyncRequests++;
    this.#send(`${this.#prefix}.presence.${name}`, {
      t: "req",
      n: this.node,
      i: this.incarnation,
    });
  }

  #delta(name: string, remote: Remote<Meta>, seq: number, ops: Op[]): void {
    if (typeof seq !== "number" || !Array.isArray(ops)) return;
    if (remote.synced && seq <= remote.seq) return;
    if (remote.synced && seq === remote.seq + 1) {
      this.#apply(name, remote, ops);
      remote.seq = seq;
      return;
    }
    // Not synced yet, or a gap: keep it for after the full state arrives.
    if (remote.buffered.length < MAX_BUFFERED_DELTAS) {
      remote.buffered.push({ s: seq, o: ops });
    }
    this.#request(name, remote);
  }

  #apply(name: string, remote: Remote<Meta>, ops: Op[]): void {
    this.#stats.deltasApplied++;
    for (const op of ops) {
      if (!Array.isArray(op)) continue;
      const [kind, room, id] = op;
      if (typeof room !== "string" || typeof id !== "number") continue;
      if (kind === 1 || kind === 2) {
        const previous = remote.entries.get(room)?.get(id);
        const entry: PresenceEntry<Meta> = {
          room,
          id,
          meta: op[3] as Meta,
          node: name,
          since: kind === 1 ? Number(op[4]) : previous?.since ?? 0,
        };
        this.#put(remote.entries, entry);
        this.#merge(entry);
      } else if (kind === 0) {
        const entry = remote.entries.get(room)?.get(id);
        if (entry === undefined) continue;
        this.#delete(remote.entries, room, id);
        this.#unmerge(entry);
      }
    }
  }

  #snapshotPart(
    remote: Remote<Meta>,
    message: Extract<Message, { t: "snap" }>,
  ): void {
    const { s, p, of, e } = message;
    if (
      typeof s !== "number" || typeof p !== "number" ||
      typeof of !== "number" || !Array.isArray(e)
    ) return;
    if (remote.pending === null || remote.pending.s !== s) {
      remote.pending = { s, of, got: new Set(), e: [] };
    }
    const pending = remote.pending;
    if (pending.got.has(p)) return;
    pending.got.add(p);
    pending.e.push(...e);
    if (pending.got.size < pending.of) return;
    remote.pending = null;
    this.#replace(message.n, remote, pending.e);
    remote.seq = s;
    remote.synced = true;
    remote.requestedAt = -Infinity;
    this.#stats.snapshotsApplied++;
    // Deltas that overtook the full state, in order, while they follow on.
    remote.buffered.sort((a, b) => a.s - b.s);
    for (const delta of remote.buffered) {
      if (delta.s === remote.seq + 1) {
        this.#apply(message.n, remote, delta.o);
        remote.seq = delta.s;
      }
    }
    remote.buffered = [];
  }

  #replace(name: string, remote: Remote<Meta>, snapshot: SnapEntry[]): void {
    const next = new Map<string, Map<number, PresenceEntry<Meta>>>();
    for (const item of snapshot) {
      if (!Array.isArray(item)) continue;
      const [room, id, meta, since] = item;
      if (typeof room !== "string" || typeof id !== "number") continue;
      this.#put(next, {
        room,
        id,
        meta: meta as Meta,
        node: name,
        since: Number(since),
      });
    }
    for (const [room, members] of remote.entries) {
      for (const [id, entry] of members) {
        if (!next.get(room)?.has(id)) this.#unmerge(entry);
      }
    }
    remote.entries = next;
    for (const members of next.values()) {
      for (const entry of members.values()) this.#merge(entry);
    }
  }

  #dropRemote(name: string, remote: Remote<Meta>): void {
    if (this.#remotes.get(name) === remote) this.#remotes.delete(name);
    for (const members of remote.entries.values()) {
      for (const entry of members.values()) this.#unmerge(entry);
    }
    remote.entries.clear();
  }

  // ---- the merged view and events ----

  #put(
    map: Map<string, Map<number, PresenceEntry<Meta>>>,
    entry: PresenceEntry<Meta>,
  ): void {
    let members = map.get(entry.room);
    if (members === undefined) {
      members = new Map();
      map.set(entry.room, members);
    }
    members.set(entry.id, entry);
  }

  #delete(
    map: Map<string, Map<number, PresenceEntry<Meta>>>,
    room: string,
    id: number,
  ): void {
    const members = map.get(room);
    if (members === undefined) return;
    members.delete(id);
    if (members.size === 0) map.delete(room);
  }

  #merge(entry: PresenceEntry<Meta>): void {
    const previous = this.#rooms.get(entry.room)?.get(entry.id);
    this.#put(this.#rooms, entry);
    if (previous === undefined) {
      this.#emit(this.#onJoin, entry);
    } else if (
      previous.node !== entry.node ||
      JSON.stringify(previous.meta) !== JSON.stringify(entry.meta)
    ) {
      try {
        this.#onUpdate?.(entry, previous);
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  #unmerge(entry: PresenceEntry<Meta>): void {
    // Only the entry's owner removes it (ids are unique; this guards a
    // stale copy from removing a fresher one).
    if (this.#rooms.get(entry.room)?.get(entry.id)?.node !== entry.node) return;
    this.#delete(this.#rooms, entry.room, entry.id);
    this.#emit(this.#onLeave, entry);
  }

  #emit(
    callback: ((entry: PresenceEntry<Meta>) => void) | undefined,
    entry: PresenceEntry<Meta>,
  ): void {
    if (callback === undefined) return;
    try {
      callback(entry);
    } catch (error) {
      this.#onError(error);
    }
  }
}
