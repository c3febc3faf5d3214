// RoomHistory on NATS JetStream (nats-server 2.9 with -js), spoken through
// the JetStream JSON API over a plain NATS connection (no client library
// beyond the core one the broker uses).
//
// ONE stream holds every room and every session inbox, so the stream
// sequence is the GLOBAL position:
//   <prefix>.hs.r.<room>   a room's broadcasts
//   <prefix>.hs.d.<id>     a session's direct messages
// The stream REPUBLISHES each stored message to <prefix>.hl.<same tail>
// with headers Nats-Sequence (its position) and Nats-Last-Sequence (the
// previous position on the same subject). Nodes subscribe to the hl.
// subjects of the rooms they have members in: live delivery stays
// interest-based, costs no consumer per room, and arrives in position order
// (the stream republishes in order, from one internal client). A consumer
// would also carry the sequence (in its $JS.ACK reply subject), but 2.9
// consumers filter one subject each: one consumer per (node, room), created
// and deleted on every first join and last leave; republish needs none.
//
// The EPOCH is the stream's creation time: a stream that is lost (server
// restarted without its store, stream deleted) comes back with another.
// The engine re-reads it after every reconnect and on the stream's
// advisories, and holds live entries until it knows it.
//
// Bounds (JetStream 2.9 has no per-subject bytes or age limit):
// - count: per room and per inbox (max_msgs_per_subject), exact;
// - age: per message (max_age), the same for every room, exact;
// - bytes: for the whole stream only (max_bytes, option maxStreamBytes),
//   oldest first across all rooms: NOT per room.
// Gap detection: age and bytes remove a prefix of the global sequence, so
// a position before the stream's first sequence is a gap for every room
// (conservative: it is not known which rooms lost messages there). The
// per-subject limit is maxMessages + 1 and a replay that finds more than
// maxMessages entries after the position is a gap: if one of a room's
// entries after p was removed by the limit, at least maxMessages + 1 newer
// ones were kept, so the rule catches it exactly.
//
// Session records: a second stream, <stream>_SESSIONS, one subject per
// session with max_msgs_per_subject 1 and max_age = the window (JetStream
// 2.9 has no per-message TTL: a record expires `window` after its last
// write, which is what a window is); claim is a publish with
// Nats-Expected-Last-Subject-Sequence, so two nodes can't both win.
import {
  connect,
  headers,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "npm:@nats-io/transport-node@^3.4.0";
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
  type LiveEntry,
  type LiveHandler,
  type LiveSubscription,
  mergeEntries,
  readRecord,
  type ReplayRequest,
  type ReplayResult,
  type RoomHistory,
  roomToken,
  type SessionRecord,
  type SessionRecords,
} from "./history.ts";
import { OrderedAppends } from "./_ordered_appends.ts";
import { PositionOrder } from "./_position_order.ts";

/** Options of {@linkcode JetStreamHistory.connect}. */
export interface JetStreamHistoryOptions extends HistoryLimits {
  /** Bytes the whole stream keeps (all rooms and inboxes together). */
  maxStreamBytes: number;
  /** Milliseconds a session record lives after its last write. */
  window: number;
  /** `"file"` (survives a restart) or `"memory"`. @default {"file"} */
  storage?: "file" | "memory";
  /** Stream replicas (a JetStream cluster). @default {1} */
  replicas?: number;
  /** The stream's name. @default {"MICROSOCKET_HISTORY"} */
  stream?: string;
  /** The first token of every subject. @default {"microsocket"} */
  prefix?: string;
  /** Milliseconds an API request may take. @default {5000} */
  timeout?: number;
  /** Errors nobody can catch. @default {console.error} */
  onError?: (error: unknown) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NANOS = 1_000_000;
/**
 * Milliseconds the stream remembers an append's message id: an append sent
 * again within it is stored once (see #append).
 */
const DEDUPE_WINDOW = 30_000;
/** The longest close() waits for the appends already made (ms). */
const CLOSE_DRAIN = 2000;
/** How long a live entry after a gap waits for the positions before it. */
const REORDER_MS = 25;
/** Live entries held while the epoch is re-read, beyond which they drop. */
const HELD_MAX = 65_536;

interface StreamState {
  /** The per-subject bound replays hold to: the stream's limit − 1. */
  limit: number;
  created: string;
  first: number;
  last: number;
}

/** A {@linkcode RoomHistory} on NATS JetStream; see the file comment. */
export class JetStreamHistory implements RoomHistory {
  readonly kind = "jetstream";
  /** Milliseconds a session record lives after its last write. */
  get window(): number {
    return this.#o.window;
  }
  readonly sessions: SessionRecords;
  #nc: NatsConnection;
  #o: Required<JetStreamHistoryOptions>;
  #epoch = "";
  #verifying: Promise<void> | undefined;
  #held: (() => void)[] = [];
  #subs = new Map<
    string,
    { sub: Subscription; handlers: Set<LiveHandler>; ready: Promise<void> }
  >();
  #stats: HistoryStats = { appended: 0, received: 0, replayed: 0, gaps: 0 };
  #watching: Promise<void>;
  #advisories: Subscription;
  #closed = false;
  // Live entries leave in position order (see _position_order.ts).
  readonly #order = new PositionOrder<
    { entry: LiveEntry; handlers: Set<LiveHandler> }
  >(REORDER_MS, ({ entry, handlers }) => this.#hand(entry, handlers));
  // The connection dropped since the epoch was last read.
  #stale = false;
  // Appends wait for their ack on one subscription of ours, not through
  // nc.request(), which makes an error object and a timer per request (a
  // seventh of an appending node's time): one sweep times them out.
  readonly #ackPrefix: string;
  readonly #acks: Subscription;
  #ackCount = 0;
  readonly #pendingAcks = new Map<number, {
    resolve: (msg: Msg) => void;
    reject: (error: Error) => void;
    deadline: number;
  }>();
  #ackSweep: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;
  // Message ids of appends: unique per connection (random prefix).
  readonly #idPrefix = crypto.randomUUID().slice(0, 13) + "-";
  #appendCount = 0;
  readonly #appends = new OrderedAppends({
    retryable: (error) =>
      !this.#closed && !(error instanceof JetStreamError) &&
      !(error instanceof RangeError),
    // The stream may be gone (503: made again) or the server restarting.
    recover: () =>
      this.#verify().catch(() => {}).then(() =>
        new Promise((resolve) => setTimeout(resolve, 50))
      ),
    giveUp: DEDUPE_WINDOW / 2,
  });

  /**
   * Connects and makes (or checks) the streams.
   *
   * @throws Error when the server can't be reached or has no JetStream.
   */
  static async connect(
    url: string,
    options: JetStreamHistoryOptions,
  ): Promise<JetStreamHistory> {
    if ("maxBytes" in options) {
      throw new TypeError(
        "maxBytes is not supported by JetStream 2.9 (no per-subject bytes limit): use maxStreamBytes",
      );
    }
    assertLimit("maxMessages", options.maxMessages);
    assertLimit("maxAge", options.maxAge);
    assertLimit("maxStreamBytes", options.maxStreamBytes);
    assertLimit("window", options.window);
    const o: Required<JetStreamHistoryOptions> = {
      storage: "file",
      replicas: 1,
      stream: "MICROSOCKET_HISTORY",
      prefix: "microsocket",
      timeout: 5000,
      onError: (error) => console.error("microsocket history:", error),
      ...options,
    };
    const nc = await connect({
      servers: url.split(",").map((s) => s.trim()).filter(Boolean),
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: o.timeout,
      name: "microsocket-history",
    });
    const history = new JetStreamHistory(nc, o);
    try {
      await history.#verify();
    } catch (error) {
      await history.close();
      throw error;
    }
    return history;
  }

  private constructor(
    nc: NatsConnection,
    o: Required<JetStreamHistoryOptions>,
  ) {
    this.#nc = nc;
    this.#o = o;
    this.sessions = new JetStreamRecords(this, nc, o);
    // Our own stream's deletion or creation (by anyone): read the epoch again.
    this.#advisories = nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.*.${o.stream}`, {
      callback: () => void this.#verify().catch(o.onError),
    });
    // Appends' acks, on one subscription (see #request).
    this.#ackPrefix = `_INBOX.${crypto.randomUUID().replaceAll("-", "")}.`;
    this.#acks = nc.subscribe(`${this.#ackPrefix}*`, {
      callback: (error, msg) => {
        if (error !== null) return;
        const id = Number(msg.subject.slice(this.#ackPrefix.length));
        const pending = this.#pendingAcks.get(id);
        if (pending === undefined) return;
        this.#pendingAcks.delete(id);
        const code = msg.headers?.code ?? 0;
        if (code === 503) pending.reject(new Error("503 no responders"));
        else pending.resolve(msg);
      },
    });
    this.#watching = this.#watch();
  }

  async #watch(): Promise<void> {
    let reconnected: (() => void) | undefined;
    for await (const status of this.#nc.status()) {
      if (status.type === "disconnect") this.#stale = true;
      if (status.type === "disconnect" && reconnected === undefined) {
        // Appends in flight now may be lost or stored: none made from now
        // on goes ahead of them (they are sent again in their turn).
        const { promise, resolve } = Promise.withResolvers<void>();
        reconnected = resolve;
        this.#appends.pause(promise);
      }
      if (status.type === "reconnect") {
        // Held appends go once the epoch is known again: the answer to
        // one must name the stream that stored it.
        const release = reconnected;
        reconnected = undefined;
        this.#verify().catch(this.#o.onError).finally(() => release?.());
      }
    }
    reconnected?.();
  }

  /** A JetStream API request; the parsed answer. */
  async api(subject: string, body: unknown): Promise<Record<string, unknown>> {
    const msg = await this.#nc.request(
      `$JS.API.${subject}`,
      encoder.encode(JSON.stringify(body)),
      { timeout: this.#o.timeout },
    );
    return JSON.parse(decoder.decode(msg.data));
  }

  /** The stream's state, making the streams if they are missing. */
  async #info(): Promise<StreamState> {
    const o = this.#o;
    let info = await this.api(`STREAM.INFO.${o.stream}`, {});
    const error = info.error as { code?: number } | undefined;
    if (error?.code === 404) {
      info = await this.api(`STREAM.CREATE.${o.stream}`, {
        name: o.stream,
        subjects: [`${o.prefix}.hs.>`],
        retention: "limits",
        storage: o.storage,
        num_replicas: o.replicas,
        discard: "old",
        max_msgs: -1,
        max_bytes: o.maxStreamBytes,
        max_age: o.maxAge * NANOS,
        max_msgs_per_subject: o.maxMessages + 1,
        max_msg_size: -1,
        duplicate_window: Math.min(DEDUPE_WINDOW, o.maxAge) * NANOS,
        allow_direct: true,
        republish: { src: `${o.prefix}.hs.>`, dest: `${o.prefix}.hl.>` },
      });
    }
    if (info.error !== undefined) {
      throw new Error(`JetStream: ${JSON.stringify(info.error)}`);
    }
    const state = info.state as { first_seq: number; last_seq: number };
    // The stream is the truth: a node configured otherwise (or a stream
    // made by hand) must hold replays to the stream's own per-subject limit,
    // or the gap rule would not see the limit's removals.
    const perSubject =
      (info.config as { max_msgs_per_subject?: number }).max_msgs_per_subject ??
        -1;
    return {
      limit: perSubject > 0 ? perSubject - 1 : o.maxMessages,
      created: String(info.created),
      first: state.first_seq,
      last: state.last_seq,
    };
  }

  /** Makes the session records' stream unless it exists. */
  async #ensureSessions(): Promise<void> {
    const o = this.#o;
    const name = `${o.stream}_SESSIONS`;
    const info = await this.api(`STREAM.INFO.${name}`, {});
    if ((info.error as { code?: number } | undefined)?.code !== 404) return;
    const created = await this.api(`STREAM.CREATE.${name}`, {
      name,
      subjects: [`${o.prefix}.ss.*`],
      retention: "limits",
      storage: o.storage,
      num_replicas: o.replicas,
      discard: "old",
      max_msgs_per_subject: 1,
      max_age: o.window * NANOS,
      allow_direct: true,
    });
    if (created.error !== undefined) {
      throw new Error(`JetStream: ${JSON.stringify(created.error)}`);
    }
  }

  /** Re-reads the epoch; live entries wait until it is known. */
  #verify(): Promise<void> {
    this.#verifying ??= (async () => {
      try {
        const state = await this.#info();
        if (state.created !== this.#epoch) this.#order.reset();
        this.#epoch = state.created;
        this.#stale = false;
        await this.#ensureSessions();
      } finally {
        this.#verifying = undefined;
        const held = this.#held;
        this.#held = [];
        for (const deliver of held) deliver();
      }
    })();
    return this.#verifying;
  }

  /** The epoch as last read. */
  get epoch(): string {
    return this.#epoch;
  }

  appendRoom(room: string, bytes: Uint8Array): Promise<HistoryPosition> {
    return this.#append(`${this.#o.prefix}.hs.r.${roomToken(room)}`, bytes);
  }

  appendDirect(session: number, bytes: Uint8Array): Promise<HistoryPosition> {
    assertSessionId(session);
    return this.#append(`${this.#o.prefix}.hs.d.${session}`, bytes);
  }

  // A request answered on our ack subscription; see #pendingAcks.
  #request(
    subject: string,
    bytes: Uint8Array,
    h: ReturnType<typeof headers> | undefined,
  ): Promise<Msg> {
    if (this.#closed) return Promise.reject(new Error("The history is closed"));
    const id = ++this.#ackCount;
    const { promise, resolve, reject } = Promise.withResolvers<Msg>();
    this.#pendingAcks.set(id, {
      resolve,
      reject,
      deadline: performance.now() + this.#o.timeout,
    });
    this.#ackSweep ??= setInterval(() => this.#sweepAcks(), 100);
    try {
      this.#nc.publish(subject, bytes, {
        reply: `${this.#ackPrefix}${id}`,
        ...(h === undefined ? {} : { headers: h }),
      });
    } catch (error) {
      this.#pendingAcks.delete(id);
      reject(error as Error);
    }
    return promise;
  }

  #sweepAcks(): void {
    const now = performance.now();
    for (const [id, pending] of this.#pendingAcks) {
      if (pending.deadline > now) continue;
      this.#pendingAcks.delete(id);
      pending.reject(new Error("TIMEOUT: no JetStream ack"));
    }
    if (this.#pendingAcks.size === 0) {
      clearInterval(this.#ackSweep);
      this.#ackSweep = undefined;
    }
  }

  // An append that got no answer (the server restarting, the connection
  // down) is sent again, in its turn (_ordered_appends.ts), with the same
  // Nats-Msg-Id: if the first one was stored after all, the stream keeps
  // it once (its duplicate window).
  #append(subject: string, bytes: Uint8Array): Promise<HistoryPosition> {
    const id = `${this.#idPrefix}${++this.#appendCount}`;
    return this.#appends.run(() =>
      this.publish(subject, bytes, undefined, id, false)
    );
  }

  /** Publishes into a stream and waits for its ack; makes the streams again if they are gone. */
  async publish(
    subject: string,
    bytes: Uint8Array,
    expectedLast?: number,
    messageId?: string,
    again = true,
  ): Promise<HistoryPosition> {
    if (this.#closed) throw new Error("The history is closed");
    const send = async () => {
      let h;
      if (expectedLast !== undefined || messageId !== undefined) {
        h = headers();
        if (expectedLast !== undefined) {
          h.set("Nats-Expected-Last-Subject-Sequence", String(expectedLast));
        }
        if (messageId !== undefined) h.set("Nats-Msg-Id", messageId);
      }
      const msg = messageId !== undefined
        ? await this.#request(subject, bytes, h)
        : await this.#nc.request(subject, bytes, {
          timeout: this.#o.timeout,
          ...(h === undefined ? {} : { headers: h }),
        });
      return JSON.parse(decoder.decode(msg.data)) as {
        seq?: number;
        error?: { code: number; err_code?: number; description?: string };
      };
    };
    let ack;
    try {
      ack = await send();
    } catch (error) {
      // No stream listens (lost with the server's store, or deleted).
      // (An append is sent again by #appends, in its turn: not here.)
      if (!again || !/503|no responders/i.test(String(error))) throw error;
      await this.#verify();
      ack = await send();
    }
    if (ack.error !== undefined || ack.seq === undefined) {
      throw new JetStreamError(
        ack.error?.description ?? "no sequence",
        ack.error?.err_code,
      );
    }
    if (!subject.startsWith(`${this.#o.prefix}.ss.`)) this.#stats.appended++;
    // Stored since the connection dropped, or while the epoch is being
    // re-read: the answer names the stream as it is now.
    if (this.#stale) await this.#verify().catch(() => {});
    else if (this.#verifying !== undefined) {
      await this.#verifying.catch(() => {});
    }
    return { epoch: this.#epoch, position: ack.seq };
  }

  subscribeRoom(room: string, handler: LiveHandler): LiveSubscription {
    return this.#subscribe(`r.${roomToken(room)}`, room, undefined, handler);
  }

  subscribeDirect(session: number, handler: LiveHandler): LiveSubscription {
    assertSessionId(session);
    return this.#subscribe(`d.${session}`, undefined, session, handler);
  }

  #subscribe(
    tail: string,
    room: string | undefined,
    session: number | undefined,
    handler: LiveHandler,
  ): LiveSubscription {
    if (typeof handler !== "function") {
      throw new TypeError("The handler must be a function");
    }
    const subject = `${this.#o.prefix}.hl.${tail}`;
    let entry = this.#subs.get(subject);
    if (entry === undefined) {
      const handlers = new Set<LiveHandler>();
      const sub = this.#nc.subscribe(subject, {
        callback: (error, msg) => {
          if (error !== null) this.#o.onError(error);
          else this.#receive(msg, room, session, handlers);
        },
      });
      // The server has it once a PING sent after the SUB is answered.
      const ready = this.#nc.flush();
      ready.catch(this.#o.onError);
      entry = { sub, handlers, ready };
      this.#subs.set(subject, entry);
    }
    const handlers = entry.handlers;
    handlers.add(handler);
    return {
      ready: entry.ready,
      unsubscribe: () => {
        if (!handlers.delete(handler) || handlers.size > 0) return;
        const current = this.#subs.get(subject);
        if (current?.handlers !== handlers) return;
        this.#subs.delete(subject);
        current.sub.unsubscribe();
      },
    };
  }

  #receive(
    msg: Msg,
    room: string | undefined,
    session: number | undefined,
    handlers: Set<LiveHandler>,
  ): void {
    const deliver = () => {
      const entry: LiveEntry = {
        epoch: this.#epoch,
        position: Number(msg.headers?.get("Nats-Sequence")),
        previous: Number(msg.headers?.get("Nats-Last-Sequence") || 0),
        room,
        session,
        bytes: msg.data,
      };
      this.#stats.received++;
      this.#order.push(entry.position, { entry, handlers });
    };
    if (this.#verifying === undefined) deliver();
    else if (this.#held.length < HELD_MAX) this.#held.push(deliver);
    else {this.#o.onError(
        new Error("Live history entry dropped while the epoch was re-read"),
      );}
  }

  #hand(entry: LiveEntry, handlers: Set<LiveHandler>): void {
    for (const handler of handlers) {
      try {
        handler(entry);
      } catch (error) {
        this.#o.onError(error);
      }
    }
  }

  async head(): Promise<HistoryPosition> {
    const state = await this.#info();
    if (state.created !== this.#epoch) this.#order.reset();
    this.#epoch = state.created;
    return { epoch: state.created, position: state.last };
  }

  async replay(request: ReplayRequest): Promise<ReplayResult> {
    assertRequest(request);
    const result = await this.#replay(request);
    if (result.ok) this.#stats.replayed++;
    else this.#stats.gaps++;
    return result;
  }

  async #replay(request: ReplayRequest): Promise<ReplayResult> {
    const before = await this.#info();
    if (request.epoch !== before.created) {
      return gap("epoch", `epoch ${request.epoch} is not ${before.created}`);
    }
    if (request.after > before.last) {
      return gap("future", `position ${request.after} is after ${before.last}`);
    }
    const prefix = this.#o.prefix;
    const wanted: [string, string | undefined, number | undefined, number][] =
      request.rooms
        .map(({ room, joined }) => [
          `${prefix}.hs.r.${roomToken(room)}`,
          room,
          undefined,
          Math.max(request.after, joined),
        ]);
    if (request.inbox !== undefined) {
      const { session, since } = request.inbox;
      wanted.push([
        `${prefix}.hs.d.${session}`,
        undefined,
        session,
        Math.max(request.after, since),
      ]);
    }
    const check = (state: StreamState): ReplayResult | undefined => {
      for (const [, room, session, from] of wanted) {
        // A prefix of the sequence (age, stream bytes) is gone past `from`.
        if (from + 1 < state.first && from < state.last) {
          return gap(
            "trimmed",
            `${
              describe(room, session)
            }: the stream starts at ${state.first}, after ${from}`,
          );
        }
      }
      return undefined;
    };
    const early = check(before);
    if (early !== undefined) return early;
    const lists = await Promise.all(
      wanted.map(([subject, room, session, from]) =>
        this.#read(subject, room, session, from, before.limit)
      ),
    );
    for (let i = 0; i < wanted.length; i++) {
      if (lists[i]!.length > before.limit) {
        const [, room, session, from] = wanted[i]!;
        return gap(
          "trimmed",
          `${
            describe(room, session)
          }: more than ${before.limit} entries after ${from}`,
        );
      }
    }
    // A prefix removed while reading: the entries read may miss one.
    const after = await this.#info();
    if (after.created !== before.created) {
      return gap("epoch", `the stream was replaced while replaying`);
    }
    const late = check(after);
    if (late !== undefined) return late;
    const head = before.last;
    const entries = mergeEntries(lists).filter((e) => e.position <= head);
    return { ok: true, entries, head };
  }

  /** Up to limit + 1 entries of a subject after `from`. */
  async #read(
    subject: string,
    room: string | undefined,
    session: number | undefined,
    from: number,
    limit: number,
  ): Promise<HistoryEntry[]> {
    const out: HistoryEntry[] = [];
    let seq = from + 1;
    while (out.length <= limit) {
      const msg = await this.direct({ seq, next_by_subj: subject });
      if (msg === undefined) break;
      const position = Number(msg.headers!.get("Nats-Sequence"));
      out.push({ position, room, session, bytes: msg.data });
      seq = position + 1;
    }
    return out;
  }

  /** A direct get on a stream; `undefined` for 404. */
  async direct(
    body: unknown,
    stream = this.#o.stream,
  ): Promise<Msg | undefined> {
    const msg = await this.#nc.request(
      `$JS.API.DIRECT.GET.${stream}`,
      encoder.encode(JSON.stringify(body)),
      { timeout: this.#o.timeout },
    );
    const code = msg.headers?.code ?? 0;
    if (code === 404) return undefined;
    if (code >= 400) {
      throw new Error(
        `JetStream direct get: ${code} ${msg.headers?.description}`,
      );
    }
    return msg;
  }

  stats(): HistoryStats {
    return { ...this.#stats };
  }

  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close(): Promise<void> {
    // The appends already made get their answers first (a node closing
    // right after its last broadcasts keeps them, as Redis does), within
    // the request timeout and at most CLOSE_DRAIN ms.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#appends.idle(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, Math.min(this.#o.timeout, CLOSE_DRAIN));
      }),
    ]);
    clearTimeout(timer);
    this.#closed = true;
    this.#order.close();
    this.#subs.clear();
    this.#advisories.unsubscribe();
    this.#acks.unsubscribe();
    clearInterval(this.#ackSweep);
    this.#ackSweep = undefined;
    for (const pending of this.#pendingAcks.values()) {
      pending.reject(new Error("The history is closed"));
    }
    this.#pendingAcks.clear();
    await this.#verifying?.catch(() => {});
    await this.#nc.close().catch(this.#o.onError);
    await this.#watching.catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A JetStream API error (its err_code, e.g. 10071 for a wrong last sequence). */
export class JetStreamError extends Error {
  readonly code: number | undefined;
  constructor(message: string, code: number | undefined) {
    super(`JetStream: ${message}`);
    this.code = code;
  }
}

const WRONG_LAST_SEQUENCE = 10071;

class JetStreamRecords implements SessionRecords {
  #history: JetStreamHistory;
  #o: Required<JetStreamHistoryOptions>;

  constructor(
    history: JetStreamHistory,
    _nc: NatsConnection,
    o: Required<JetStreamHistoryOptions>,
  ) {
    this.#history = history;
    this.#o = o;
  }

  #subject(id: number): string {
    assertSessionId(id);
    return `${this.#o.prefix}.ss.${id}`;
  }

  async put(record: SessionRecord): Promise<void> {
    assertRecord(record);
    await this.#history.publish(
      this.#subject(record.id),
      encoder.encode(JSON.stringify(record)),
    );
  }

  async #read(id: number): Promise<[SessionRecord, number] | undefined> {
    const msg = await this.#history.direct(
      { last_by_subj: this.#subject(id) },
      `${this.#o.stream}_SESSIONS`,
    );
    if (msg === undefined) return undefined;
    // The server expires on a timer; the window is exact here.
    const written = Date.parse(msg.headers!.get("Nats-Time-Stamp"));
    if (!(written + this.#o.window > Date.now())) return undefined;
    const record = readRecord(decoder.decode(msg.data));
    if (record === undefined) return undefined;
    return [record, Number(msg.headers!.get("Nats-Sequence"))];
  }

  async get(id: number): Promise<SessionRecord | undefined> {
    return (await this.#read(id))?.[0];
  }

  async claim(
    id: number,
    tokenHash: string,
    next: SessionRecord,
  ): Promise<SessionRecord | undefined> {
    assertRecord(next);
    if (next.id !== id) {
      throw new TypeError("The next record must have the same id");
    }
    const current = await this.#read(id);
    if (current === undefined || current[0].tokenHash !== tokenHash) {
      return undefined;
    }
    try {
      await this.#history.publish(
        this.#subject(id),
        encoder.encode(JSON.stringify(next)),
        current[1],
      );
    } catch (error) {
      if (
        error instanceof JetStreamError && error.code === WRONG_LAST_SEQUENCE
      ) {
        return undefined; // another node claimed it first
      }
      throw error;
    }
    return current[0];
  }

  async delete(id: number): Promise<void> {
    const answer = await this.#history.api(
      `STREAM.PURGE.${this.#o.stream}_SESSIONS`,
      {
        filter: this.#subject(id),
      },
    );
    if (answer.error !== undefined) {
      throw new Error(`JetStream: ${JSON.stringify(answer.error)}`);
    }
  }
}
