// The chat of chat_server.ts as one node of a cluster: any number of chat
// servers sharing a NATS or Redis broker act as one chat.
//
//   deno task chat --cluster nats://127.0.0.1:4222 --port 9001
//   deno task chat --cluster nats://127.0.0.1:4222 --port 9002
//   deno task chat --cluster redis://127.0.0.1:6379 --reuse-port   (Linux)
//
// How each part of the chat crosses nodes:
// - Room lines: `server.sessions.broadcast(line, { room })` goes through the
//   cluster: delivered to local members, published once, received only by
//   nodes with members in that room.
// - Presence: every member has an entry `{ nick, at }` in its room (`at`:
//   when the nick was taken). `/who` lists the room's entries on all nodes,
//   from this node's replica (no waiting for other nodes).
// - Announcements (`* x joined`, `* x left`, `* x is now y`): a node
//   announces its own members' moves to its own sessions, and the other
//   nodes' moves from presence events, so each line is said once per node
//   and a node that dies or loses the broker yields `* x left` everywhere
//   else within `--node-timeout`. (A node coming back after an outage is
//   announced as `* x joined` again: its members were unreachable.)
// - `/msg NAME`: the nick's session id from presence, then send-by-id,
//   which reaches the node that owns the id.
// - Guest names are `guest<session id>`; ids are unique across the cluster.
// - Nick uniqueness: a node refuses a nick that presence shows on any node.
//   Two nodes may still accept the same nick within a broker hop of each
//   other; once both entries are known, every node agrees on the winner:
//   the smaller `(at, id)` keeps the nick. The loser's node renames its
//   user to its guest name and tells them
//   `* nick NAME was taken elsewhere; you are now guest<id>`.
import {
  type Broker,
  Cluster,
  type ClusterOptions,
  connectCluster,
  connectHistory,
  type PresenceEntry,
  type RoomHistory,
} from "../cluster.ts";
import type { Server } from "../mod.ts";
import type { ChatCluster, ChatSession, Member } from "./chat_server.ts";

/** What presence replicates about a chat member. */
export interface ChatPresence {
  /** The nick, as typed. */
  nick: string;
  /** When the nick was taken (ms since the epoch); 0 for guest names. */
  at: number;
}

/** Options of {@linkcode chatCluster}. */
export interface ChatClusterOptions {
  /** The broker: `nats://host:port` or `redis://host:port`. */
  url?: string;
  /** Or a broker connection already made (tests: a MemoryBroker). */
  broker?: Broker;
  /** Milliseconds of silence after which a node's users leave. @default {5000} */
  nodeTimeout?: number;
  /**
   * The server's recovery window (ms; 0: off). With `url`, room history is
   * kept on the same broker (NATS needs JetStream: nats-server -js) so that
   * a client whose node died resumes on any other node; without
   * JetStream, sessions resume on their own node only (a line says so).
   * @default {0}
   */
  recoveryWindow?: number;
}

/** A chat node's cluster: what chatServer() takes, and close(). */
export interface ChatClusterNode extends ChatCluster {
  /** The node's presence name. */
  readonly name: string;
  /** The underlying cluster. */
  readonly cluster: Cluster<ChatPresence, Member>;
  /** Leaves the cluster; call after the server has shut down. */
  close(): Promise<void>;
}

type Entry = PresenceEntry<ChatPresence>;

// One line each: a broker outage reports every reconnection attempt.
function reportError(error: unknown): void {
  console.error(
    `chat cluster: ${error instanceof Error ? error.message : error}`,
  );
}

// Room history on the cluster's broker, for recovery across nodes: as long
// as the recovery window, 1000 lines a room.
async function chatHistory(
  options: ChatClusterOptions,
): Promise<RoomHistory | undefined> {
  const window = options.recoveryWindow ?? 0;
  const url = options.url;
  if (window <= 0 || url === undefined || options.broker !== undefined) {
    return undefined;
  }
  const bounds = {
    maxMessages: 1000,
    maxAge: window,
    window,
    onError: reportError,
  };
  try {
    return await connectHistory(
      url,
      url.startsWith("redis")
        ? { ...bounds, maxBytes: 1 << 20 }
        : { ...bounds, maxStreamBytes: 64 << 20 },
    );
  } catch (error) {
    console.error(
      `chat cluster: no room history on ${url} (${
        error instanceof Error ? error.message : error
      }): a client resumes on its own node only`,
    );
    return undefined;
  }
}

/**
 * Connects to the broker and returns the cluster side of a chat node.
 *
 * @param options The broker URL and node timeout.
 * @returns What `chatServer({ cluster })` takes.
 */
export async function chatCluster(
  options: ChatClusterOptions,
): Promise<ChatClusterNode> {
  const nodeTimeout = options.nodeTimeout ?? 5000;
  // When each local session took its nick.
  const nickAt = new WeakMap<ChatSession, number>();
  // Lower-cased nick → the entries holding it (one per session; more
  // than one only during a collision).
  const byNick = new Map<string, Map<number, Entry>>();
  let server: Server<Member, string> | undefined;
  let rename: ((session: ChatSession, nick: string) => void) | undefined;

  const index = (entry: Entry): void => {
    const key = entry.meta.nick.toLowerCase();
    let holders = byNick.get(key);
    if (holders === undefined) byNick.set(key, holders = new Map());
    holders.set(entry.id, entry);
    if (holders.size > 1) queueMicrotask(() => settle(key));
  };
  const unindex = (entry: Entry): void => {
    const key = entry.meta.nick.toLowerCase();
    const holders = byNick.get(key);
    // Only the entry that indexed it (the same session, re-tracked in
    // another room, keeps its newer entry).
    if (holders?.get(entry.id)?.room !== entry.room) return;
    holders.delete(entry.id);
    if (holders.size === 0) byNick.delete(key);
  };
  const winner = (holders: Map<number, Entry>): Entry | undefined => {
    let best: Entry | undefined;
    for (const e of holders.values()) {
      if (
        best === undefined || e.meta.at < best.meta.at ||
        (e.meta.at === best.meta.at && e.id < best.id)
      ) best = e;
    }
    return best;
  };
  // Every node computes the same winner; only the losers' nodes act.
  const settle = (key: string): void => {
    const holders = byNick.get(key);
    if (holders === undefined || holders.size < 2) return;
    const best = winner(holders)!;
    for (const entry of [...holders.values()]) {
      if (entry === best || entry.node !== cluster.node.name) continue;
      const session = server?.sessions.get(entry.id);
      if (session === undefined || session.data.nick.toLowerCase() !== key) {
        continue;
      }
      const lost = session.data.nick;
      const guest = `guest${session.id}`;
      rename?.(session, guest);
      session.send(`* nick ${lost} was taken elsewhere; you are now ${guest}`);
    }
  };
  // A line for this node's members of a room, about another node's member.
  const announce = (entry: Entry, text: string): void => {
    if (entry.node === cluster.node.name) return;
    server?.sessions.broadcast(text, { room: entry.room, local: true });
  };

  const settings: Omit<ClusterOptions<ChatPresence, Member>, "broker"> = {
    meta: (session) => ({
      nick: session.data.nick,
      at: nickAt.get(session) ?? 0,
    }),
    presence: {
      nodeTimeout,
      heartbeatInterval: Math.max(50, Math.floor(nodeTimeout / 4)),
      onJoin: (entry) => {
        index(entry);
        announce(entry, `* ${entry.meta.nick} joined`);
      },
      onLeave: (entry) => {
        unindex(entry);
        announce(entry, `* ${entry.meta.nick} left`);
      },
      onUpdate: (entry, previous) => {
        unindex(previous);
        index(entry);
        if (entry.meta.nick !== previous.meta.nick) {
          announce(entry, `* ${previous.meta.nick} is now ${entry.meta.nick}`);
        }
      },
    },
    onError: reportError,
  };
  const history = await chatHistory(options);
  const cluster = options.broker !== undefined
    ? new Cluster<ChatPresence, Member>({ ...settings, broker: options.broker })
    : await connectCluster<ChatPresence, Member>({
      ...settings,
      url: options.url ?? "",
      ...(history !== undefined && { history }),
    });

  // `kill -USR2 <pid>` prints the node's counters (tests read them to show
  // that a node without members of a room receives none of its traffic).
  let reports = 0;
  const report = (): void => {
    const stats = cluster.stats().node;
    console.log(`cluster stats ${++reports} ${JSON.stringify(stats)}`);
  };
  const signals = Deno.build.os === "windows";
  if (!signals) Deno.addSignalListener("SIGUSR2", report);

  return {
    name: cluster.node.name,
    cluster,
    bridge: cluster,
    find: (nick) => {
      const holders = byNick.get(nick.toLowerCase());
      return holders === undefined ? undefined : winner(holders)?.id;
    },
    who: (room) => cluster.members(room).map((e) => e.meta.nick).sort(),
    renamed: (session) => {
      nickAt.set(session, Date.now());
      cluster.update(session);
    },
    start: (running, renameSession) => {
      server = running;
      rename = renameSession;
    },
    close: () => {
      if (!signals) Deno.removeSignalListener("SIGUSR2", report);
      return cluster.close();
    },
  };
}
