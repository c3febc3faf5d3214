// Package-internal: the RecoveryBackplane a Cluster with `history` offers
// its server (src/recovery/backplane.ts), over one ClusterRecovery. It is
// also what the cluster's rooms ask (has/join/leave/broadcast/send) so
// that the resumable sessions of this node get their room broadcasts and
// direct messages from the engine, with positions, and nothing of them
// through the broker (ClusterRooms leaves them out there).
//
// Entries are stored with a one-byte header: 0, or 1 and the 8-byte id of
// the session a broadcast leaves out (`except`), which the engine itself
// knows nothing of; a member skips the entries that leave it out, live and
// in replays alike.
import type {
  BackplaneOpened,
  BackplaneResumed,
  BackplaneResumeRequest,
  BackplaneSession,
  RecoveryBackplane,
} from "../recovery/backplane.ts";
import { ClusterRecovery } from "./cluster_recovery.ts";
import type { HistoryEntry, RoomHistory } from "./history/history.ts";

/** Package-internal: see the file comment. */
export class ClusterBackplane implements RecoveryBackplane {
  readonly #recovery: ClusterRecovery;
  readonly #engine: RoomHistory;
  readonly #onError: (error: unknown) => void;
  readonly #sessions = new Map<number, BackplaneSession>();
  // The latest entry given, unwrapped (see #give).
  #entry: HistoryEntry | undefined;
  #frame: Uint8Array | undefined;
  #except = -1;

  constructor(engine: RoomHistory, onError: (error: unknown) => void) {
    this.#engine = engine;
    this.#onError = onError;
    this.#recovery = new ClusterRecovery(
      { engine, window: engine.window },
      onError,
      (id) => this.#lost(id),
    );
  }

  /** How long the engine keeps a record after its last write (ms). */
  get window(): number {
    return this.#engine.window;
  }

  /** Resumable sessions registered on this node. */
  get size(): number {
    return this.#sessions.size;
  }

  /** The engine's counters. */
  get engine(): RoomHistory {
    return this.#engine;
  }

  async open(id: number, session: BackplaneSession): Promise<BackplaneOpened> {
    if (this.#sessions.has(id)) throw new TypeError(`Session ${id} is open`);
    this.#sessions.set(id, session);
    try {
      const opened = await this.#recovery.open(
        id,
        undefined,
        (entry) => this.#give(id, session, entry),
      );
      this.#recovery.watch(id, () => session.data());
      return opened;
    } catch (error) {
      this.#sessions.delete(id);
      throw error;
    }
  }

  renew(id: number, token: string): Promise<string | undefined> {
    return this.#recovery.renew(id, token);
  }

  async resume(
    request: BackplaneResumeRequest,
    session: BackplaneSession,
  ): Promise<BackplaneResumed> {
    const id = request.id;
    if (this.#sessions.has(id)) {
      return { recovered: false, reason: "unknown_session" };
    }
    this.#sessions.set(id, session);
    try {
      const result = await this.#recovery.resume(
        request,
        (entry) => this.#give(id, session, entry),
      );
      if (!result.recovered) {
        this.#sessions.delete(id);
        return { recovered: false, reason: result.reason };
      }
      this.#recovery.watch(id, () => session.data());
      return {
        recovered: true,
        token: result.token,
        data: result.data,
        rooms: result.rooms,
      };
    } catch (error) {
      this.#sessions.delete(id);
      throw error;
    }
  }

  release(id: number): void {
    this.#sessions.delete(id);
    this.#recovery.detach(id);
  }

  async end(id: number): Promise<void> {
    this.#sessions.delete(id);
    await this.#recovery.end(id);
  }

  /** Whether a resumable session of this node is fed from the engine. */
  has(id: number): boolean {
    return this.#sessions.has(id);
  }

  /** A fed session's data changed: its record is rewritten. */
  touch(id: number): void {
    if (this.#sessions.has(id)) {
      this.#recovery.rewrite(id).catch(this.#onError);
    }
  }

  /** A fed session joined a room (its record is rewritten). */
  join(id: number, room: string): void {
    this.#recovery.join(id, room).catch(this.#onError);
  }

  /** A fed session left a room (its record is rewritten). */
  leave(id: number, room: string): void {
    if (!this.#recovery.has(id)) return;
    this.#recovery.leave(id, room).catch(this.#onError);
  }

  /**
   * Appends a room broadcast (copied: `frame` may be reused once this
   * returns), leaving out `exceptId` (-1: nobody).
   */
  broadcast(room: string, frame: Uint8Array, exceptId: number): void {
    this.#recovery.broadcast(room, wrap(frame, exceptId)).catch(
      this.#onError,
    );
  }

  /** Appends a direct message for a session, on whichever node serves it. */
  send(id: number, frame: Uint8Array): void {
    this.#recovery.send(id, wrap(frame, -1)).catch(this.#onError);
  }

  /** Stops every subscription of this node (the engine is the caller's). */
  close(): void {
    this.#sessions.clear();
    this.#recovery.close();
  }

  // An entry is given to each member of its room in turn: it is unwrapped
  // once (its frame and the session it leaves out), not once per member.
  #give(id: number, session: BackplaneSession, entry: HistoryEntry): void {
    if (entry !== this.#entry) {
      this.#entry = entry;
      const bytes = entry.bytes;
      this.#except = -1;
      this.#frame = undefined;
      if (bytes[0] === 1 && bytes.length >= 9) {
        const view = new DataView(bytes.buffer, bytes.byteOffset + 1, 8);
        this.#except = Number(view.getBigUint64(0));
        this.#frame = bytes.subarray(9);
      } else if (bytes[0] === 0) {
        this.#frame = bytes.subarray(1);
      }
    }
    const frame = this.#frame;
    if (frame === undefined || this.#except === id) return;
    session.deliver(entry.position, frame);
  }

  #lost(id: number): void {
    const session = this.#sessions.get(id);
    this.#sessions.delete(id);
    session?.lost();
  }
}

function wrap(frame: Uint8Array, exceptId: number): Uint8Array {
  if (exceptId < 0) {
    const out = new Uint8Array(frame.length + 1);
    out.set(frame, 1);
    return out;
  }
  const out = new Uint8Array(frame.length + 9);
  out[0] = 1;
  new DataView(out.buffer).setBigUint64(1, BigInt(exceptId));
  out.set(frame, 9);
  return out;
}
