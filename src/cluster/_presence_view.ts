// Presence's merged view: every node's entries in one room → id → entry map,
// and the join/leave/update events it fires as entries come and go. The
// local API (presence.ts) and the copies of other nodes
// (_presence_replica.ts) both write into it; queries read it. It sits below
// both so neither has to import the other.

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

/** Entries by room, then by member id. */
export type RoomEntries<Meta> = Map<string, Map<number, PresenceEntry<Meta>>>;

/** Adds or replaces `entry` in `map`. */
export function putEntry<Meta>(
  map: RoomEntries<Meta>,
  entry: PresenceEntry<Meta>,
): void {
  let members = map.get(entry.room);
  if (members === undefined) {
    members = new Map();
    map.set(entry.room, members);
  }
  members.set(entry.id, entry);
}

/** Removes a member from `map`, and its room once empty. */
export function deleteEntry<Meta>(
  map: RoomEntries<Meta>,
  room: string,
  id: number,
): void {
  const members = map.get(room);
  if (members === undefined) return;
  members.delete(id);
  if (members.size === 0) map.delete(room);
}

/** The callbacks the view fires; each one's errors go to `onError`. */
export interface PresenceViewEvents<Meta> {
  onJoin: ((entry: PresenceEntry<Meta>) => void) | undefined;
  onLeave: ((entry: PresenceEntry<Meta>) => void) | undefined;
  onUpdate:
    | ((entry: PresenceEntry<Meta>, previous: PresenceEntry<Meta>) => void)
    | undefined;
  onError: (error: unknown) => void;
}

/** Everyone's entries, merged, with events on change. */
export class PresenceView<Meta> {
  /** Room → id → entry, for every node. Read-only outside this class. */
  readonly rooms: RoomEntries<Meta> = new Map();
  #events: PresenceViewEvents<Meta>;

  constructor(events: PresenceViewEvents<Meta>) {
    this.#events = events;
  }

  /** Adds or replaces an entry: a join, or an update if it changed. */
  merge(entry: PresenceEntry<Meta>): void {
    const previous = this.rooms.get(entry.room)?.get(entry.id);
    putEntry(this.rooms, entry);
    if (previous === undefined) {
      this.#emit(this.#events.onJoin, entry);
    } else if (
      previous.node !== entry.node ||
      JSON.stringify(previous.meta) !== JSON.stringify(entry.meta)
    ) {
      const onUpdate = this.#events.onUpdate;
      try {
        onUpdate?.(entry, previous);
      } catch (error) {
        this.#events.onError(error);
      }
    }
  }

  /** Removes an entry (a leave), if the view holds its owner's copy. */
  unmerge(entry: PresenceEntry<Meta>): void {
    // Only the entry's owner removes it (ids are unique; this guards a
    // stale copy from removing a fresher one).
    if (this.rooms.get(entry.room)?.get(entry.id)?.node !== entry.node) return;
    deleteEntry(this.rooms, entry.room, entry.id);
    this.#emit(this.#events.onLeave, entry);
  }

  #emit(
    callback: ((entry: PresenceEntry<Meta>) => void) | undefined,
    entry: PresenceEntry<Meta>,
  ): void {
    if (callback === undefined) return;
    try {
      callback(entry);
    } catch (error) {
      this.#events.onError(error);
    }
  }
}
