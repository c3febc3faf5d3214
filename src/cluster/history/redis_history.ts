// RoomHistory on Redis Streams (Redis 7). One Lua script appends: it takes
// the next position of the GLOBAL sequence, XADDs the frame to the room's
// (or inbox's) stream with that position as the explicit entry ID, trims,
// and PUBLISHes it with its position, all atomically, so the live order
// every node sees is the position order. Another script replays.
//
// Keys (one hash tag, so a Redis Cluster keeps them in one slot: a global
// sequence has one point of order, hence one shard):
//   {prefix}:meta        hash: epoch, last (the last position given out)
//   {prefix}:r:<room>    stream of a room;  {prefix}:d:<id>  of an inbox
//   {prefix}:s:<id>      a session record (JSON), PX = the window
// Entries: ID "<position>-0", fields d (the frame) and c (the running
// total of the stream's bytes, so the bytes bound needs no other key).
//
// Positions embed the time: position = max(last + 1, now_ms × 1024), so the
// age bound is one native XTRIM MINID, and a stream key that expired (idle
// for `idleTtl`) proves that it holds nothing after a position younger than
// that. The EPOCH is random, written when the meta hash is missing (the
// server came back without its data, or it was flushed); a new epoch's
// positions restart from the clock, and a stream left over from an old
// epoch is dropped by the first append that would go below its top.
//
// Bounds, all per room and per inbox: count (XTRIM MAXLEN =), age (XTRIM
// MINID), bytes (from the running totals). Gap detection is exact: XINFO
// STREAM's max-deleted-entry-id is the highest ID any trim removed, so a
// replay after position p is a gap iff it is above p.
//
// Persistence: with AOF (appendfsync always) a restart keeps the meta hash,
// so the epoch; with RDB snapshots a restart may bring back an older state
// under the same epoch: positions a client already holds may be given out
// again. Don't use RDB-only persistence for history; use AOF or none. An
// eviction policy other than noeviction may drop keys one by one: the meta
// hash (a new epoch: safe) or a stream (read as expired: a replay from
// older than idleTtl is a gap, younger ones may miss it), so run the
// history's Redis with maxmemory-policy noeviction.
import { Buffer } from "node:buffer";
import { RESP_TYPES } from "npm:redis@^5.12.1";
import {
  closeRedisPair,
  connectRedisPair,
  type RedisClient,
} from "../_redis_pair.ts";
import {
  assertLimit,
  assertRecord,
  assertRequest,
  assertSessionId,
  gap,
  type HistoryEntry,
  type HistoryLimits,
  type HistoryPosition,
  type HistoryStats,
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

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

type Listener = (message: Buffer, channel: Buffer) => void;

/** Options of {@linkcode RedisHistory.connect}. */
export interface RedisHistoryOptions extends HistoryLimits {
  /** Bytes kept per room and per inbox (frames only). */
  maxBytes: number;
  /** Milliseconds a session record lives after its last write. */
  window: number;
  /**
   * Milliseconds an idle stream's key lives after its last append; a
   * replay from a position older than that, for a room whose key is gone,
   * is a gap. At least `maxAge`.
   *
   * @default {max(86_400_000, maxAge)}
   */
  idleTtl?: number;
  /**
   * The first part of every key and channel (several apps can share a
   * server).
   *
   * @default {"microsocket"}
   */
  prefix?: string;
  /** Errors nobody can catch. @default {console.error} */
  onError?: (error: unknown) => void;
}

// Shared by the scripts: positions as IDs, and XINFO STREAM fields.
const LIB = `
local function idnum(id) return tonumber(string.match(id, '^(%d+)')) end
local function fmt(n) return string.format('%.0f', n) end
local function info(key)
  local out = {}
  local raw = redis.call('XINFO', 'STREAM', key)
  for i = 1, #raw, 2 do out[raw[i]] = raw[i + 1] end
  return out
end
-- Removes the entries below position cut; XTRIM doesn't move
-- max-deleted-entry-id (only XDEL does), so it is set here: it is what
-- replays read to tell a gap exactly.
local function cutbelow(key, cut, lastid)
  local gone = redis.call('XREVRANGE', key, '(' .. fmt(cut) .. '-0', '-', 'COUNT', 1)
  if #gone == 0 then return end
  redis.call('XTRIM', key, 'MINID', fmt(cut) .. '-0')
  redis.call('XSETID', key, lastid, 'MAXDELETEDID', gone[1][1])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// KEYS: meta, stream. ARGV: frame, maxLen, maxBytes, maxAge, channel,
// epoch candidate, idleTtl.
const APPEND = LIB + `
local meta, key, writer = KEYS[1], KEYS[2], KEYS[3]
local m = redis.call('HMGET', meta, 'epoch', 'last')
local epoch = m[1]
if not epoch then
  epoch = ARGV[6]
  redis.call('HSET', meta, 'epoch', epoch)
end
-- Each connection numbers its appends: one sent again after a dropped
-- connection is applied once, and never ahead of an earlier one.
local n = tonumber(ARGV[8])
local done = redis.call('GET', writer)
if done then
  done = tonumber(done)
  if n <= done then return {epoch, '0'} end
  if n > done + 1 then return redis.error_reply('ORDER expected ' .. fmt(done + 1)) end
end
redis.call('SET', writer, ARGV[8], 'PX', 3600000)
local last = tonumber(m[2] or '0')
local pos = now * 1024
if pos <= last then pos = last + 1 end
local spos = fmt(pos)
redis.call('HSET', meta, 'last', spos)
local previous, total = 0, 0
local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
if #top > 0 then
  previous = idnum(top[1][1])
  total = tonumber(top[1][2][4])
elseif redis.call('EXISTS', key) == 1 then
  previous = idnum(info(key)['last-generated-id'])
end
if previous >= pos then
  -- left from a lost epoch: its IDs are above the new sequence
  redis.call('DEL', key)
  previous, total = 0, 0
end
local data = ARGV[1]
total = total + #data
redis.call('XADD', key, spos .. '-0', 'd', data, 'c', fmt(total))
-- Trim only when the oldest entry breaks a bound (the usual append
-- checks one entry): by count, then age, then bytes.
local len = redis.call('XLEN', key)
local maxLen = tonumber(ARGV[2])
local minpos = (now - tonumber(ARGV[4])) * 1024
local floor = total - tonumber(ARGV[3])
local oldest = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1]
if len > maxLen or idnum(oldest[1]) < minpos or tonumber(oldest[2][4]) - #oldest[2][2] < floor then
  local cut = 0
  if len > maxLen then
    local r = redis.call('XRANGE', key, '-', '+', 'COUNT', len - maxLen + 1)
    cut = idnum(r[#r][1])
  end
  if minpos > cut then cut = minpos end
  if floor > 0 then
    local start, keep = fmt(cut) .. '-0', nil
    while keep == nil do
      local batch = redis.call('XRANGE', key, start, '+', 'COUNT', 32)
      if #batch == 0 then break end
      for _, e in ipairs(batch) do
        if tonumber(e[2][4]) - #e[2][2] >= floor then keep = idnum(e[1]); break end
      end
      if keep == nil then start = '(' .. batch[#batch][1] end
    end
    if keep ~= nil and keep > cut then cut = keep end
  end
  cutbelow(key, cut, spos .. '-0')
end
redis.call('PEXPIRE', key, ARGV[7])
redis.call('PUBLISH', ARGV[5], epoch .. ' ' .. spos .. ' ' .. fmt(previous) .. ' ' .. data)
return {epoch, spos}
`;

// KEYS: meta, streams... ARGV: epoch, after, maxAge, idleTtl, then the
// exclusive start position of each stream.
const REPLAY = LIB + `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'gap', 'epoch', 'the history has no epoch (lost)'} end
if epoch ~= ARGV[1] then return {'gap', 'epoch', 'epoch ' .. ARGV[1] .. ' is not ' .. epoch} end
local head = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if tonumber(ARGV[2]) > head then
  return {'gap', 'future', 'position ' .. ARGV[2] .. ' is after ' .. fmt(head)}
end
local minpos = (now - tonumber(ARGV[3])) * 1024
local out = {'ok', fmt(head)}
for i = 2, #KEYS do
  local key = KEYS[i]
  local from = tonumber(ARGV[3 + i])
  if redis.call('EXISTS', key) == 0 then
    if from < (now - tonumber(ARGV[4]) + 1000) * 1024 then
      return {'gap', 'trimmed', key .. ' expired after ' .. ARGV[3 + i]}
    end
    out[#out + 1] = {}
  else
    -- An idle stream still holds entries past the age: trim them first.
    cutbelow(key, minpos, info(key)['last-generated-id'])
    local deleted = info(key)['max-deleted-entry-id']
    if idnum(deleted) > from then
      return {'gap', 'trimmed', key .. ' lost ' .. deleted .. ' after ' .. ARGV[3 + i]}
    end
    out[#out + 1] = redis.call('XRANGE', key, '(' .. ARGV[3 + i] .. '-0', '+')
  end
end
return out
`;

// KEYS: record. ARGV: token hash, next record, window.
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if not current then return false end
local ok, record = pcall(cjson.decode, current)
if not ok or record.tokenHash ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return current
`;

function randomEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const SPACE = 0x20;
const decoder = new TextDecoder();

/** A {@linkcode RoomHistory} on Redis Streams; see the file comment. */
export class RedisHistory implements RoomHistory {
  readonly kind = "redis";
  /** Milliseconds a session record lives after its last write. */
  get window(): number {
    return this.#options.window;
  }
  readonly sessions: SessionRecords;
  #pub: RedisClient;
  #sub: RedisClient;
  #prefix: string;
  #options: Required<RedisHistoryOptions>;
  // An epoch for the script to take if the history has none (it was
  // lost): unique per append without 96 random bits each time.
  readonly #epochPrefix = randomEpoch();
  #epochs = 0;
  #nextEpoch(): string {
    return `${this.#epochPrefix}${(++this.#epochs).toString(36)}`;
  }

  // This connection's appends, numbered (see APPEND), under its own key.
  #appended = 0;
  #writer = "";
  readonly #appends = new OrderedAppends({
    // A dropped connection, a restarted server (NOSCRIPT), an append
    // ahead of one sent again (ORDER): sent again. Not a script's error.
    retryable: (error) =>
      !this.#closed && !(error instanceof RangeError) &&
      !(error instanceof TypeError) && !/^ERR/.test(errorText(error)),
    recover: async () => {
      try {
        this.#scripts.append = await this.#pub.scriptLoad(APPEND);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    giveUp: 10_000,
  });
  #scripts: { append: string; replay: string; claim: string };
  #listeners = new Map<
    string,
    { listener: Listener; handlers: Set<LiveHandler>; ready: Promise<void> }
  >();
  #stats: HistoryStats = { appended: 0, received: 0, replayed: 0, gaps: 0 };
  #closed = false;

  /**
   * Connects (two connections: commands, and live subscriptions).
   *
   * @throws Error when the first connection fails.
   */
  static async connect(
    url: string,
    options: RedisHistoryOptions,
  ): Promise<RedisHistory> {
    assertLimit("maxMessages", options.maxMessages);
    assertLimit("maxBytes", options.maxBytes);
    assertLimit("maxAge", options.maxAge);
    assertLimit("window", options.window);
    const idleTtl = options.idleTtl ?? Math.max(86_400_000, options.maxAge);
    assertLimit("idleTtl", idleTtl, options.maxAge);
    const full: Required<RedisHistoryOptions> = {
      prefix: "microsocket",
      onError: (error) => console.error("microsocket history:", error),
      ...options,
      idleTtl,
    };
    let connected = false;
    const { pub, sub, ready } = await connectRedisPair(
      url,
      { timeout: 5000, reconnectWait: 250 },
      (error) => {
        if (connected) full.onError(error);
      },
    );
    try {
      const scripts = {
        append: await pub.scriptLoad(APPEND),
        replay: await pub.scriptLoad(REPLAY),
        claim: await pub.scriptLoad(CLAIM),
      };
      connected = true;
      ready();
      return new RedisHistory(pub, sub, full, scripts);
    } catch (error) {
      pub.destroy();
      sub.destroy();
      throw error;
    }
  }

  private constructor(
    pub: RedisClient,
    sub: RedisClient,
    options: Required<RedisHistoryOptions>,
    scripts: { append: string; replay: string; claim: string },
  ) {
    this.#pub = pub;
    this.#sub = sub;
    this.#options = options;
    this.#prefix = `{${options.prefix}}`;
    this.#writer = `${this.#prefix}:w:${crypto.randomUUID()}`;
    this.#scripts = scripts;
    this.sessions = new RedisRecords(
      pub,
      this.#prefix,
      options.window,
      scripts.claim,
    );
  }

  /** Runs a loaded script, loading it again after a server restart. */
  async #script<T>(
    binary: boolean,
    name: "append" | "replay",
    source: string,
    keys: string[],
    args: (string | Buffer)[],
  ): Promise<T> {
    const run = () =>
      this.#pub.sendCommand<T>(
        ["EVALSHA", this.#scripts[name], String(keys.length), ...keys, ...args],
        binary
          ? { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } }
          : undefined,
      );
    try {
      return await run();
    } catch (error) {
      if (!String(error).includes("NOSCRIPT")) throw error;
      this.#scripts[name] = await this.#pub.scriptLoad(source);
      return await run();
    }
  }

  // Appends keep their order when a restarted server forgot the script
  // (see _ordered_appends.ts).
  #appendScript<T>(keys: string[], args: (string | Buffer)[]): Promise<T> {
    return this.#appends.run(() =>
      this.#pub.sendCommand<T>([
        "EVALSHA",
        this.#scripts.append,
        String(keys.length),
        ...keys,
        ...args,
      ])
    );
  }

  appendRoom(room: string, bytes: Uint8Array): Promise<HistoryPosition> {
    const token = roomToken(room);
    return this.#append(
      `${this.#prefix}:r:${token}`,
      `${this.#prefix}:lr:${token}`,
      bytes,
    );
  }

  appendDirect(session: number, bytes: Uint8Array): Promise<HistoryPosition> {
    assertSessionId(session);
    return this.#append(
      `${this.#prefix}:d:${session}`,
      `${this.#prefix}:ld:${session}`,
      bytes,
    );
  }

  async #append(
    key: string,
    channel: string,
    bytes: Uint8Array,
  ): Promise<HistoryPosition> {
    if (this.#closed) throw new Error("The history is closed");
    const o = this.#options;
    if (bytes.length > o.maxBytes) {
      throw new RangeError(
        `A frame of ${bytes.length} bytes is over maxBytes (${o.maxBytes})`,
      );
    }
    const n = ++this.#appended;
    const [epoch, position] = await this.#appendScript<[string, string]>(
      [`${this.#prefix}:meta`, key, this.#writer],
      [
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        String(o.maxMessages),
        String(o.maxBytes),
        String(o.maxAge),
        channel,
        this.#nextEpoch(),
        String(o.idleTtl),
        String(n),
      ],
    );
    this.#stats.appended++;
    return { epoch, position: Number(position) };
  }

  subscribeRoom(room: string, handler: LiveHandler): LiveSubscription {
    return this.#subscribe(
      `${this.#prefix}:lr:${roomToken(room)}`,
      room,
      undefined,
      handler,
    );
  }

  subscribeDirect(session: number, handler: LiveHandler): LiveSubscription {
    assertSessionId(session);
    return this.#subscribe(
      `${this.#prefix}:ld:${session}`,
      undefined,
      session,
      handler,
    );
  }

  #subscribe(
    channel: string,
    room: string | undefined,
    session: number | undefined,
    handler: LiveHandler,
  ): LiveSubscription {
    if (typeof handler !== "function") {
      throw new TypeError("The handler must be a function");
    }
    let entry = this.#listeners.get(channel);
    if (entry === undefined) {
      const handlers = new Set<LiveHandler>();
      const listener: Listener = (message) =>
        this.#receive(message, room, session, handlers);
      const ready = this.#sub.subscribe(channel, listener, true);
      ready.catch(this.#options.onError);
      entry = { listener, handlers, ready };
      this.#listeners.set(channel, entry);
    }
    const handlers = entry.handlers;
    handlers.add(handler);
    return {
      ready: entry.ready,
      unsubscribe: () => {
        if (!handlers.delete(handler) || handlers.size > 0) return;
        const current = this.#listeners.get(channel);
        if (current?.handlers !== handlers) return;
        this.#listeners.delete(channel);
        if (this.#closed) return;
        this.#sub.unsubscribe(channel, current.listener, true).catch(
          this.#options.onError,
        );
      },
    };
  }

  #receive(
    message: Buffer,
    room: string | undefined,
    session: number | undefined,
    handlers: Set<LiveHandler>,
  ): void {
    // "<epoch> <position> <previous> <frame>"
    const a = message.indexOf(SPACE);
    const b = message.indexOf(SPACE, a + 1);
    const c = message.indexOf(SPACE, b + 1);
    if (a < 0 || b < 0 || c < 0) {
      this.#options.onError(new Error("Malformed live history entry"));
      return;
    }
    const bytes = new Uint8Array(
      message.buffer,
      message.byteOffset + c + 1,
      message.length - c - 1,
    );
    const entry = {
      epoch: decoder.decode(message.subarray(0, a)),
      position: Number(decoder.decode(message.subarray(a + 1, b))),
      previous: Number(decoder.decode(message.subarray(b + 1, c))),
      room,
      session,
      bytes,
    };
    this.#stats.received++;
    for (const handler of handlers) {
      try {
        handler(entry);
      } catch (error) {
        this.#options.onError(error);
      }
    }
  }

  async head(): Promise<HistoryPosition> {
    const meta = `${this.#prefix}:meta`;
    // A new session's start must be in the epoch its first entry gets.
    await this.#pub.hSetNX(meta, "epoch", randomEpoch());
    await this.#pub.hSetNX(meta, "last", "0");
    const [epoch, last] = await this.#pub.hmGet(meta, ["epoch", "last"]);
    return { epoch: epoch ?? "", position: Number(last ?? 0) };
  }

  async replay(request: ReplayRequest): Promise<ReplayResult> {
    assertRequest(request);
    const o = this.#options;
    const keys = [`${this.#prefix}:meta`];
    const starts: string[] = [];
    const sources: [string | undefined, number | undefined][] = [];
    for (const { room, joined } of request.rooms) {
      keys.push(`${this.#prefix}:r:${roomToken(room)}`);
      starts.push(String(Math.max(request.after, joined)));
      sources.push([room, undefined]);
    }
    if (request.inbox !== undefined) {
      const { session, since } = request.inbox;
      keys.push(`${this.#prefix}:d:${session}`);
      starts.push(String(Math.max(request.after, since)));
      sources.push([undefined, session]);
    }
    const reply = await this.#script<unknown[]>(
      true,
      "replay",
      REPLAY,
      keys,
      [
        request.epoch,
        String(request.after),
        String(o.maxAge),
        String(o.idleTtl),
        ...starts,
      ],
    );
    const text = (value: unknown) => String(value);
    if (text(reply[0]) === "gap") {
      this.#stats.gaps++;
      return gap(text(reply[1]) as "epoch", text(reply[2]));
    }
    const lists: HistoryEntry[][] = [];
    for (let i = 0; i < sources.length; i++) {
      const [room, session] = sources[i]!;
      const raw = reply[2 + i] as [Buffer, Buffer[]][];
      lists.push(raw.map(([id, fields]) => {
        const data = fields[1]!;
        return {
          position: Number(text(id).split("-")[0]),
          room,
          session,
          bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
        };
      }));
    }
    this.#stats.replayed++;
    return {
      ok: true,
      entries: mergeEntries(lists),
      head: Number(text(reply[1])),
    };
  }

  stats(): HistoryStats {
    return { ...this.#stats };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    await closeRedisPair([this.#sub, this.#pub]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class RedisRecords implements SessionRecords {
  #pub: RedisClient;
  #prefix: string;
  #window: number;
  #claim: string;

  constructor(pub: RedisClient, prefix: string, window: number, claim: string) {
    this.#pub = pub;
    this.#prefix = prefix;
    this.#window = window;
    this.#claim = claim;
  }

  #key(id: number): string {
    assertSessionId(id);
    return `${this.#prefix}:s:${id}`;
  }

  async put(record: SessionRecord): Promise<void> {
    assertRecord(record);
    await this.#pub.set(this.#key(record.id), JSON.stringify(record), {
      PX: this.#window,
    });
  }

  async get(id: number): Promise<SessionRecord | undefined> {
    const text = await this.#pub.get(this.#key(id));
    return text === null ? undefined : readRecord(text);
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
    const run = () =>
      this.#pub.sendCommand<string | null>([
        "EVALSHA",
        this.#claim,
        "1",
        this.#key(id),
        tokenHash,
        JSON.stringify(next),
        String(this.#window),
      ]);
    let current: string | null;
    try {
      current = await run();
    } catch (error) {
      if (!String(error).includes("NOSCRIPT")) throw error;
      this.#claim = await this.#pub.scriptLoad(CLAIM);
      current = await run();
    }
    return current === null ? undefined : readRecord(current);
  }

  async delete(id: number): Promise<void> {
    await this.#pub.del(this.#key(id));
  }
}
