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
// This file is the public class: options, the local API (track, update,
// untrack), queries over the merged view, and this node's side of the
// protocol (batching its changes into deltas, heartbeats, answering
// requests). The parts it wires together:
// - _presence_view.ts: the merged room → id → entry map and its events;
// - _presence_wire.ts: the messages, their limits and encoding;
// - _presence_replica.ts: the copy of each other node (sequence numbers,
//   resync, expiry).
import type { Broker, BrokerState, BrokerSubscription } from "./broker.ts";
import { defaultOnError } from "./_broker_core.ts";
import {
  deleteEntry,
  type PresenceEntry,
  PresenceView,
  putEntry,
  type RoomEntries,
} from "./_presence_view.ts";
import {
  CHUNK,
  decodeMessage,
  type Message,
  NODE_NAME,
  type Op,
  PresenceWire,
  type SnapEntry,
} from "./_presence_wire.ts";
import { Replicas } from "./_presence_replica.ts";

export type { PresenceEntry } from "./_presence_view.ts";

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
  #maxMetaBytes: number;
  #onError: (error: unknown) => void;
  // Everyone's entries, merged.
  #view: PresenceView<Meta>;
  // This node's entries.
  #local: RoomEntries<Meta> = new Map();
  // The other nodes' entries, one copy per node.
  #remotes: Replicas<Meta>;
  #wire: PresenceWire;
  #seq = 0;
  #ops: Op[] = [];
  #flushScheduled = false;
  #timer: ReturnType<typeof setInterval> | undefined;
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
    const heartbeatInterval = options.heartbeatInterval ?? 1000;
    const nodeTimeout = options.nodeTimeout ?? 5000;
    if (!(heartbeatInterval > 0)) {
      throw new RangeError("heartbeatInterval must be positive");
    }
    if (!(nodeTimeout >= 2 * heartbeatInterval)) {
      throw new RangeError(
        "nodeTimeout must be at least twice heartbeatInterval",
      );
    }
    this.node = options.node;
    this.incarnation = crypto.randomUUID().slice(0, 13);
    const broker = options.broker;
    this.#maxMetaBytes = options.maxMetaBytes ?? 1024;
    const sink = options.onError ?? defaultOnError;
    this.#onError = (error) => {
      try {
        sink(error);
      } catch {
        // nowhere left to report it
      }
    };
    this.#view = new PresenceView({
      onJoin: options.onJoin,
      onLeave: options.onLeave,
      onUpdate: options.onUpdate,
      onError: this.#onError,
    });
    this.#wire = new PresenceWire(
      broker,
      prefix,
      this.node,
      this.incarnation,
      this.#onError,
    );
    this.#remotes = new Replicas({
      view: this.#view,
      wire: this.#wire,
      stats: this.#stats,
      heartbeatInterval,
      nodeTimeout,
      onError: this.#onError,
    });
    this.#subscriptions.push(
      ...this.#wire.subscribe((bytes) => this.#receive(bytes)),
    );
    this.#lastState = broker.state;
    this.#stopWatching = broker.onStateChange((state) => {
      const was = this.#lastState;
      this.#lastState = state;
      // Back from an outage: others may have dropped us and we may have
      // missed their deltas; a hello makes both sides resynchronise now
      // rather than at the next heartbeat.
      if (state === "connected" && was !== "connected") this.#hello();
    });
    this.#timer = setInterval(() => this.#tick(), heartbeatInterval);
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
    putEntry(this.#local, entry);
    this.#view.merge(entry);
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
    putEntry(this.#local, entry);
    this.#view.merge(entry);
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
    deleteEntry(this.#local, room, id);
    this.#view.unmerge(entry);
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
    const members = this.#view.rooms.get(room);
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
    return this.#view.rooms.get(room)?.get(id);
  }

  /**
   * How many members a room has on every node.
   *
   * @param room The room.
   * @returns The count.
   */
  count(room: string): number {
    return this.#view.rooms.get(room)?.size ?? 0;
  }

  /**
   * The rooms with members on any node.
   *
   * @returns Room names.
   */
  rooms(): string[] {
    return [...this.#view.rooms.keys()];
  }

  /**
   * The other nodes heard from within `nodeTimeout`.
   *
   * @returns One record per node.
   */
  nodes(): PresenceNode[] {
    return [...this.#remotes.values()].map((r) => ({
      name: r.name,
      incarnation: r.incarnation,
      entries: r.size,
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
    this.#wire.bye();
    this.#closed = true;
    clearInterval(this.#timer);
    this.#remotes.close();
    this.#stopWatching();
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    this.#view.rooms.clear();
    this.#local.clear();
    return Promise.resolve();
  }

  /** Same as {@linkcode Presence.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- this node's side ----

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
      this.#wire.delta(this.#seq, o);
    }
  }

  #hello(): void {
    this.#wire.hello(this.#seq);
  }

  #tick(): void {
    try {
      if (this.#closed) return;
      this.#flush();
      this.#wire.heartbeat(this.#seq);
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
    this.#stats.snapshotsSent++;
    this.#wire.snapshot(to, this.#seq, all);
  }

  // ---- what other nodes say ----

  #receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    let message: Message | null;
    try {
      message = decodeMessage(bytes);
    } catch (error) {
      this.#onError(error);
      return;
    }
    if (message === null) return;
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
      this.#remotes.bye(message.n, message.i);
      return;
    }
    const remote = this.#remotes.heard(message.n, message.i);
    switch (message.t) {
      case "hello":
        this.#sendSnapshot(message.n);
        remote.checkSeq(message.s);
        break;
      case "h":
        remote.checkSeq(message.s);
        break;
      case "req":
        this.#sendSnapshot(message.n);
        break;
      case "d":
        remote.delta(message.s, message.o);
        break;
      case "snap":
        remote.snapshotPart(message);
        break;
    }
  }
}
