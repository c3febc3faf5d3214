// One server's membership in a cluster: cluster-unique session ids, room
// broadcasts that reach only nodes with members (interest-based
// subscriptions), send-by-id routed to the owner node, and presence. The
// server plugs in two callbacks that deliver already-encoded frames to its
// local sessions, with its usual budgets and policies.
//
// Room and direct frames are the hot path: they travel in a binary envelope
// (_envelope.ts), and the frames a node publishes to one subject in one turn
// share one broker message.
import type { Broker, BrokerSubscription } from "./broker.ts";
import { defaultOnError } from "./_broker_core.ts";
import {
  DIRECT,
  type Envelope,
  EnvelopeBatcher,
  readEnvelope,
  ROOM,
} from "./_envelope.ts";
import { Presence, type PresenceOptions } from "./presence.ts";

const NODE_BITS = 20;
const COUNTER_SPACE = 2 ** 33;
const PLAIN_ROOM = /^[A-Za-z0-9-][A-Za-z0-9_-]{0,99}$/;
const utf8 = new TextEncoder();

/**
 * Options for {@linkcode ClusterNode}.
 *
 * @typeParam Meta The public data presence replicates about each member.
 *
 * @example
 * ```ts
 * import { type ClusterNodeOptions, MemoryBrokerHub } from "@x/microsocket/cluster";
 *
 * const options: ClusterNodeOptions<{ nick: string }> = {
 *   broker: new MemoryBrokerHub().connect(),
 *   deliverToRoom: (room, frame, exceptId) => {},
 *   deliverToSession: (id, frame) => false,
 *   presence: { nodeTimeout: 5000 },
 * };
 * await options.broker.close();
 * ```
 */
export interface ClusterNodeOptions<Meta> {
  /** The broker connection (closed with the node). */
  broker: Broker;
  /**
   * Delivers frames from another node to this node's members of `room`,
   * minus the session `exceptId`. Must not throw or block; apply the usual
   * per-session budgets.
   *
   * `frames` holds `count` encoded frames back to back: consecutive frames
   * the other node broadcast to the room in one turn (with the same
   * exception) arrive together, meant for the members' byte streams as
   * they are.
   */
  deliverToRoom: (
    room: string,
    frames: Uint8Array,
    exceptId: number | undefined,
    count: number,
  ) => void;
  /**
   * Delivers frames to a session of this node: `count` encoded frames back
   * to back, as for `deliverToRoom`.
   *
   * @returns `false` when there is no such session (counted).
   */
  deliverToSession: (id: number, frames: Uint8Array, count: number) => boolean;
  /**
   * This node's number, 1 to 2^20 − 1, unique in the cluster. It is the top
   * of every session id made here. A random one (collision odds about
   * n²/2^21 for n nodes, reported by presence when it happens) makes a
   * restarted node never reuse an id; a fixed one may.
   *
   * @default {random}
   */
  nodeId?: number;
  /**
   * The first token of every subject, so several apps can share a broker.
   *
   * @default {"microsocket"}
   */
  prefix?: string;
  /** Presence options (heartbeat, timeout, events). */
  presence?: ClusterPresenceOptions<Meta>;
  /**
   * Errors nobody can catch: a callback that threw, a malformed envelope.
   *
   * @default {console.error}
   */
  onError?: (error: unknown) => void;
}

/**
 * The presence part of {@linkcode ClusterNodeOptions}.
 *
 * @typeParam Meta The public data replicated about each member.
 *
 * @example
 * ```ts
 * import type { ClusterPresenceOptions } from "@x/microsocket/cluster";
 *
 * const presence: ClusterPresenceOptions<{ nick: string }> = {
 *   heartbeatInterval: 1000,
 *   nodeTimeout: 5000,
 *   onLeave: (entry) => console.log(`* ${entry.meta.nick} left`),
 * };
 * console.log(presence.nodeTimeout);
 * ```
 */
export type ClusterPresenceOptions<Meta> = Omit<
  PresenceOptions<Meta>,
  "broker" | "node" | "prefix" | "onError"
>;

/**
 * Counters of a {@linkcode ClusterNode}.
 *
 * @example
 * ```ts
 * import type { ClusterNodeStats } from "@x/microsocket/cluster";
 *
 * function lossy(stats: ClusterNodeStats): boolean {
 *   return stats.dropped > 0;
 * }
 * console.log(typeof lossy);
 * ```
 */
export interface ClusterNodeStats {
  /** Room and direct frames published (each broadcast is one frame). */
  published: number;
  /**
   * Broker messages those frames went out in: consecutive frames to one
   * subject in one turn share one.
   */
  messages: number;
  /** Frames the broker refused (outage, in-flight limit). */
  dropped: number;
  /** Room and direct frames received from the broker. */
  received: number;
  /** Received frames handed to `deliverToRoom` / `deliverToSession`. */
  delivered: number;
  /** This node's own frames echoed back, ignored. */
  echoes: number;
  /** Room frames received with no local member (a race with leaving). */
  unwanted: number;
  /** Direct frames for a session that is not here (any more). */
  undeliverable: number;
  /** Broker messages that are not a well-formed envelope of their kind. */
  malformed: number;
  /** Rooms this node is subscribed to (has local members in). */
  rooms: number;
}

/**
 * A server's membership in a cluster of servers sharing a broker.
 *
 * - **Session ids**: {@linkcode ClusterNode.nextSessionId} makes ids unique
 *   across the cluster: `nodeId × 2^33 + n` (n counts from 1), at most
 *   2^53 − 1, so they stay safe integers; {@linkcode ClusterNode.nodeOf}
 *   reads the node back.
 * - **Rooms**: {@linkcode ClusterNode.localJoin} / {@linkcode ClusterNode.localLeave}
 *   count this node's members per room; the node is subscribed to a room's
 *   subject only while the count is above zero, so nodes without members
 *   never receive a room's traffic.
 * - **Broadcast**: {@linkcode ClusterNode.broadcast} delivers locally and
 *   publishes once; other nodes with members deliver to theirs; the echo
 *   is ignored. Frames published to one room in one turn go out together,
 *   in one broker message, in a microtask after the code that published
 *   them (or before the node's next publish elsewhere: a node's frames and
 *   presence changes reach every node in the order they were made).
 * - **Send by id**: {@linkcode ClusterNode.sendTo} delivers locally or
 *   publishes to the owner node's subject (batched the same way).
 * - **Presence**: {@linkcode ClusterNode.presence}, a {@linkcode Presence}
 *   named `n<nodeId>`.
 *
 * While the broker is away, local delivery goes on and cross-node messages
 * are dropped and counted; nothing is queued.
 *
 * @typeParam Meta The public data presence replicates about each member.
 *
 * @example Two nodes, one room
 * ```ts
 * import { ClusterNode, MemoryBrokerHub } from "@x/microsocket/cluster";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryBrokerHub();
 * const got: string[] = [];
 * const node = (name: string) =>
 *   new ClusterNode({
 *     broker: hub.connect(),
 *     deliverToRoom: (room, frame) => got.push(`${name} ${room} ${frame[0]}`),
 *     deliverToSession: () => false,
 *   });
 * await using a = node("a");
 * await using b = node("b");
 * a.localJoin("lobby");
 * b.localJoin("lobby");
 * a.broadcast("lobby", new Uint8Array([42]));
 * for (let i = 0; i < 100 && got.length < 2; i++) {
 *   await new Promise((r) => setTimeout(r, 10));
 * }
 * assert.deepEqual(got.sort(), ["a lobby 42", "b lobby 42"]);
 * ```
 */
export class ClusterNode<Meta = unknown> implements AsyncDisposable {
  /** This node's number (1 to 2^20 − 1). */
  readonly nodeId: number;
  /** This node's name in presence: `n<nodeId>`. */
  readonly name: string;
  /** The broker connection. */
  readonly broker: Broker;
  /** Replicated presence over the same broker. */
  readonly presence: Presence<Meta>;
  #prefix: string;
  #deliverToRoom: ClusterNodeOptions<Meta>["deliverToRoom"];
  #deliverToSession: ClusterNodeOptions<Meta>["deliverToSession"];
  #onError: (error: unknown) => void;
  #counter = 0;
  #rooms = new Map<
    string,
    { count: number; subject: string; sub: BrokerSubscription }
  >();
  #direct: BrokerSubscription;
  #batcher: EnvelopeBatcher;
  // The last room published to without local members, and its subject.
  #lastRoom = "";
  #lastSubject = "";
  #closed = false;
  #stats = {
    published: 0,
    messages: 0,
    dropped: 0,
    received: 0,
    delivered: 0,
    echoes: 0,
    unwanted: 0,
    undeliverable: 0,
    malformed: 0,
  };

  /**
   * Joins the cluster: subscribes to this node's direct subject and starts
   * presence.
   *
   * @param options Node options.
   * @throws RangeError when `nodeId` is out of range.
   * @throws TypeError when a callback is missing or `prefix` is invalid.
   */
  constructor(options: ClusterNodeOptions<Meta>) {
    if (
      typeof options.deliverToRoom !== "function" ||
      typeof options.deliverToSession !== "function"
    ) {
      throw new TypeError(
        "deliverToRoom and deliverToSession must be functions",
      );
    }
    const nodeId = options.nodeId ??
      1 + Math.floor(Math.random() * (2 ** NODE_BITS - 1));
    if (!Number.isInteger(nodeId) || nodeId < 1 || nodeId >= 2 ** NODE_BITS) {
      throw new RangeError(
        `nodeId must be an integer from 1 to ${2 ** NODE_BITS - 1}`,
      );
    }
    this.nodeId = nodeId;
    this.name = `n${nodeId}`;
    this.broker = options.broker;
    this.#prefix = options.prefix ?? "microsocket";
    this.#deliverToRoom = options.deliverToRoom;
    this.#deliverToSession = options.deliverToSession;
    const sink = options.onError ?? defaultOnError;
    this.#onError = (error) => {
      try {
        sink(error);
      } catch {
        // nowhere left to report it
      }
    };
    this.#batcher = new EnvelopeBatcher(
      nodeId,
      (subject, envelope, frames) => this.#publish(subject, envelope, frames),
    );
    const p = options.presence ?? {};
    this.presence = new Presence<Meta>({
      // Sends pending frames before each presence message, so that a
      // member's last words arrive before the news that it left.
      broker: flushingFirst(this.broker, this.#batcher),
      node: this.name,
      prefix: this.#prefix,
      onError: this.#onError,
      ...(p.heartbeatInterval !== undefined &&
        { heartbeatInterval: p.heartbeatInterval }),
      ...(p.nodeTimeout !== undefined && { nodeTimeout: p.nodeTimeout }),
      ...(p.maxMetaBytes !== undefined && { maxMetaBytes: p.maxMetaBytes }),
      ...(p.onJoin !== undefined && { onJoin: p.onJoin }),
      ...(p.onLeave !== undefined && { onLeave: p.onLeave }),
      ...(p.onUpdate !== undefined && { onUpdate: p.onUpdate }),
    });
    this.#direct = this.broker.subscribe(
      `${this.#prefix}.node.${nodeId}`,
      (bytes) => this.#receiveDirect(bytes),
    );
  }

  /**
   * The node a session id was made on.
   *
   * @param id A session id from {@linkcode ClusterNode.nextSessionId}.
   * @returns Its node id (0 for ids not made by a cluster node).
   */
  static nodeOf(id: number): number {
    return Math.floor(id / COUNTER_SPACE);
  }

  /**
   * A new session id, unique across the cluster.
   *
   * @returns `nodeId × 2^33 + n`.
   * @throws RangeError after 2^33 − 1 ids on one node.
   */
  nextSessionId(): number {
    if (this.#counter >= COUNTER_SPACE - 1) {
      throw new RangeError("Session ids of this node are exhausted");
    }
    return this.nodeId * COUNTER_SPACE + ++this.#counter;
  }

  /**
   * Counts one more local member of `room`; the first one subscribes this
   * node to the room's traffic.
   *
   * @param room The room.
   * @throws RangeError when the room name is over 100 UTF-8 bytes.
   */
  localJoin(room: string): void {
    if (this.#closed) return;
    const known = this.#rooms.get(room);
    if (known !== undefined) {
      known.count++;
      return;
    }
    const subject = this.#roomSubject(room);
    const sub = this.broker.subscribe(
      subject,
      (bytes) => this.#receiveRoom(room, bytes),
    );
    this.#rooms.set(room, { count: 1, subject, sub });
  }

  /**
   * Counts one less local member of `room`; the last one unsubscribes.
   *
   * @param room The room.
   */
  localLeave(room: string): void {
    const known = this.#rooms.get(room);
    if (known === undefined) return;
    if (--known.count > 0) return;
    this.#rooms.delete(room);
    known.sub.unsubscribe();
  }

  /**
   * How many local members `room` has, as counted by
   * {@linkcode ClusterNode.localJoin}. Under a `Cluster` the server's rooms
   * keep the membership and join the node once per room with local
   * members, so this is 1 or 0 there.
   *
   * @param room The room.
   * @returns The count (0 when not subscribed).
   */
  localCount(room: string): number {
    return this.#rooms.get(room)?.count ?? 0;
  }

  /**
   * Sends an encoded frame to every member of `room` on every node: the
   * local members now (through `deliverToRoom`), the others with ONE
   * publish, received only by nodes with members.
   *
   * @param room The room.
   * @param frame The encoded frame (not modified, not kept).
   * @param exceptId A session id to leave out (typically the sender).
   * @returns `false` when it can't be published (node closed, broker not
   * connected: counted as dropped; local delivery happened). A batch the
   * broker refuses later is counted in `dropped` too.
   */
  broadcast(room: string, frame: Uint8Array, exceptId?: number): boolean {
    this.#checkFrame(frame);
    if (this.#rooms.has(room)) {
      try {
        this.#deliverToRoom(room, frame, exceptId, 1);
      } catch (error) {
        this.#onError(error);
      }
    }
    return this.publish(room, frame, exceptId);
  }

  /**
   * Publishes an encoded frame to the other nodes with members of `room`,
   * without delivering it here: for a server that has already delivered
   * it to its own members (what `listen({ cluster })` does).
   *
   * @param room The room.
   * @param frame The encoded frame (not modified, not kept).
   * @param exceptId A session id to leave out.
   * @returns `false` when it can't be published (node closed, broker not
   * connected), as for {@linkcode ClusterNode.broadcast}.
   */
  publish(room: string, frame: Uint8Array, exceptId?: number): boolean {
    this.#checkFrame(frame);
    const subject = this.#rooms.get(room)?.subject ?? this.#subjectOf(room);
    return this.#add(ROOM, subject, exceptId ?? -1, frame);
  }

  /**
   * Sends an encoded frame to one session, on whichever node owns it.
   *
   * @param id A cluster session id.
   * @param frame The encoded frame.
   * @returns For a local session, whether it took the frame; for a remote
   * one, whether it is on its way (delivery is not confirmed).
   */
  sendTo(id: number, frame: Uint8Array): boolean {
    this.#checkFrame(frame);
    const node = ClusterNode.nodeOf(id);
    if (node === this.nodeId) {
      try {
        return this.#deliverToSession(id, frame, 1);
      } catch (error) {
        this.#onError(error);
        return false;
      }
    }
    if (node < 1 || node >= 2 ** NODE_BITS) return false;
    return this.#add(DIRECT, `${this.#prefix}.node.${node}`, id, frame);
  }

  /**
   * The counters.
   *
   * @returns A snapshot.
   */
  stats(): ClusterNodeStats {
    return { ...this.#stats, rooms: this.#rooms.size };
  }

  /**
   * Leaves the cluster: presence says goodbye (other nodes drop this node's
   * members at once), subscriptions end, the broker is closed. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#batcher.flush();
    this.#closed = true;
    await this.presence.close();
    for (const { sub } of this.#rooms.values()) sub.unsubscribe();
    this.#rooms.clear();
    this.#direct.unsubscribe();
    await this.broker.close();
  }

  /** Same as {@linkcode ClusterNode.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #checkFrame(frame: Uint8Array): void {
    if (!(frame instanceof Uint8Array)) {
      throw new TypeError("The frame must be a Uint8Array");
    }
  }

  // The subject of a room this node has no member of: the last one is kept,
  // as a sender to such a room usually sends it more.
  #subjectOf(room: string): string {
    if (room !== this.#lastRoom || this.#lastSubject === "") {
      this.#lastSubject = this.#roomSubject(room);
      this.#lastRoom = room;
    }
    return this.#lastSubject;
  }

  #roomSubject(room: string): string {
    if (typeof room !== "string") {
      throw new TypeError("The room must be a string");
    }
    if (PLAIN_ROOM.test(room)) return `${this.#prefix}.room.${room}`;
    // Anything else (dots, spaces, '#', non-ASCII, a leading '_') is
    // hex-encoded behind '_', which no plain name starts with.
    const bytes = utf8.encode(room);
    if (bytes.length > 100) {
      throw new RangeError("Room names are limited to 100 UTF-8 bytes");
    }
    let hex = "_";
    for (const b of bytes) hex += b.toString(16).padStart(2, "0");
    return `${this.#prefix}.room.${hex}`;
  }

  #add(kind: number, subject: string, id: number, frame: Uint8Array): boolean {
    // Refused now rather than batched for a certain drop: the caller learns
    // it at once.
    if (this.#closed || this.broker.state !== "connected") {
      this.#stats.dropped++;
      return false;
    }
    // An empty frame carries nothing to anyone.
    if (frame.byteLength > 0) this.#batcher.add(kind, subject, id, frame);
    return true;
  }

  #publish(subject: string, envelope: Uint8Array, frames: number): void {
    let ok = false;
    try {
      ok = this.broker.publish(subject, envelope);
    } catch (error) {
      this.#onError(error);
    }
    if (ok) {
      this.#stats.published += frames;
      this.#stats.messages++;
    } else {
      this.#stats.dropped += frames;
    }
  }

  #open(bytes: Uint8Array, kind: number): Envelope | undefined {
    if (this.#closed) return undefined;
    const envelope = readEnvelope(bytes, kind);
    if (envelope === undefined) {
      this.#stats.malformed++;
      return undefined;
    }
    this.#stats.received += envelope.frames;
    if (envelope.origin === this.nodeId) {
      this.#stats.echoes += envelope.frames;
      return undefined;
    }
    return envelope;
  }

  #receiveRoom(room: string, bytes: Uint8Array): void {
    const envelope = this.#open(bytes, ROOM);
    if (envelope === undefined) return;
    if (!this.#rooms.has(room)) {
      this.#stats.unwanted += envelope.frames;
      return;
    }
    for (const { id, frames, bytes } of envelope.records) {
      this.#stats.delivered += frames;
      try {
        this.#deliverToRoom(room, bytes, id === -1 ? undefined : id, frames);
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  #receiveDirect(bytes: Uint8Array): void {
    const envelope = this.#open(bytes, DIRECT);
    if (envelope === undefined) return;
    for (const { id, frames, bytes } of envelope.records) {
      let ok = false;
      try {
        ok = this.#deliverToSession(id, bytes, frames);
      } catch (error) {
        this.#onError(error);
      }
      if (ok) this.#stats.delivered += frames;
      else this.#stats.undeliverable += frames;
    }
  }
}

// The broker as presence sees it: the node's pending frames go out before
// each presence message (see the Presence option in the constructor).
function flushingFirst(broker: Broker, batcher: EnvelopeBatcher): Broker {
  return {
    get kind() {
      return broker.kind;
    },
    get state() {
      return broker.state;
    },
    publish: (subject, bytes) => {
      batcher.flush();
      return broker.publish(subject, bytes);
    },
    subscribe: (subject, handler) => broker.subscribe(subject, handler),
    onStateChange: (listener) => broker.onStateChange(listener),
    stats: () => broker.stats(),
    close: () => broker.close(),
    [Symbol.asyncDispose]: () => broker.close(),
  };
}
