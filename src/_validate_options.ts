// Checks the options of listen() and connect() at once, so that a typo or a
// NaN fails where it was written, with the option's name, instead of cutting
// sessions later (an outboundBudget of NaN closed every session on its
// second send). No option is silent: an unknown key, a key of another
// transport (an `origins` list on a TCP server would protect nothing) and a
// key that means nothing without another one are refused, naming it.
// undefined means "the default".
//
// Each function's options are declared once, in a table of option name →
// the transports it applies to and its check; the known keys, the
// transport rules and the checks all come from it. tests/api_types_test.ts
// proves at compile time that the tables and the option types list the
// same keys for the same transports.
import { DEFAULT_OUTBOUND_BUDGET } from "./defaults.ts";
import { kindOf } from "./codec/_kind.ts";
import type { Codec } from "./codec/codec.ts";

type Options = Record<string, unknown>;

/** The transports of `listen()` and `connect()`. */
export type Transport = "tcp" | "unix" | "websocket";

/** One option: where it applies and how its value is checked. */
export interface OptionRule {
  /** The transports it applies to. */
  readonly transports: readonly Transport[];
  /** Throws when the value (not undefined) is wrong. */
  readonly check: (o: Options, key: string, where: string) => void;
  /** Added to the message refusing it on another transport. */
  readonly hint?: string;
}

const ALL = ["tcp", "unix", "websocket"] as const;
const NET = ["tcp", "websocket"] as const;
const WS = ["websocket"] as const;
const TCP = ["tcp"] as const;
const UNIX = ["unix"] as const;

const any = (): void => {};
const text = (o: Options, key: string): void => string(o, key);
const duration = (o: Options, key: string): void => void number(o, key, 0);
const timeout = { transports: ALL, check: duration } as const;
const handler = { transports: ALL, check: fn } as const;

// What listen() and connect() share: codec, limits, liveness, handlers.
const SESSION_OPTIONS = {
  codec: { transports: ALL, check: codecCheck },
  data: handler,
  signal: { transports: ALL, check: signal },
  outboundBudget: {
    transports: ALL,
    check: (o, key) => void number(o, key, 0, Infinity, key, true),
  },
  overflow: {
    transports: ALL,
    check: (o, key) => oneOf(o, key, ["close", "drop"]),
  },
  // One limit on a message for every transport (see sessionRelations).
  maxMessageBytes: {
    transports: ALL,
    check: (o, key) => integer(o, key, 0, Number.MAX_SAFE_INTEGER),
  },
  // TCP_NODELAY: a Unix socket has no Nagle to turn off.
  noDelay: { transports: NET, check: boolean },
  closeTimeout: timeout,
  idleTimeout: timeout,
  frameTimeout: timeout,
  heartbeatInterval: timeout,
  heartbeatMaxMissed: {
    transports: ALL,
    check: (o, key) => integer(o, key, 1, Number.MAX_SAFE_INTEGER),
  },
  highWaterMark: {
    transports: ALL,
    check: (o, key) => void number(o, key, 0, Infinity, key, true),
  },
  drainTimeout: timeout,
  rateLimit: { transports: ALL, check: rateLimit },
  authenticate: handler,
  authTimeout: timeout,
  onOpen: handler,
  onMessage: handler,
  onClose: handler,
  onError: handler,
} as const satisfies Record<string, OptionRule>;

/** Every option of `listen()`, by name. */
export const LISTEN_OPTIONS = {
  transport: { transports: ALL, check: any },
  hostname: { transports: NET, check: text },
  port: { transports: NET, check: port },
  backlog: {
    transports: NET,
    check: (o, key) => integer(o, key, 1, 0x7fffffff),
  },
  reusePort: { transports: NET, check: boolean },
  tls: { transports: NET, check: serverTls },
  // A socket file for "unix" (required), an upgrade path for "websocket".
  path: {
    transports: ["unix", "websocket"],
    check: (o, key) => string(o, key, o.transport === "unix"),
  },
  origins: { transports: WS, check: origins },
  protocols: { transports: WS, check: strings },
  handshakeTimeout: { transports: WS, check: duration },
  maxHeadBytes: {
    transports: WS,
    check: (o, key) => integer(o, key, 16, 1048576),
  },
  maxHeaders: {
    transports: WS,
    check: (o, key) => integer(o, key, 1, 10000),
  },
  serve: { transports: WS, check: fn },
  perMessageDeflate: { transports: WS, check: perMessageDeflate },
  onAccept: handler,
  maxConnections: { transports: ALL, check: (o, key) => limit(o, key) },
  // Counted by remote IP address: a Unix socket peer has none.
  maxConnectionsPerIp: { transports: NET, check: (o, key) => limit(o, key) },
  cluster: { transports: ALL, check: any },
  sessions: { transports: ALL, check: any },
  // Recovery (issue 17).
  recovery: { transports: ALL, check: recovery },
  ...SESSION_OPTIONS,
} as const satisfies Record<string, OptionRule>;

const WHERE_URL = "the url says where";

/** Every option of `connect()`, by name. */
export const CONNECT_OPTIONS = {
  transport: { transports: ALL, check: any },
  hostname: { transports: TCP, check: text, hint: WHERE_URL },
  port: { transports: TCP, check: port, hint: WHERE_URL },
  path: {
    transports: UNIX,
    check: (o, key) => string(o, key, true),
  },
  url: { transports: WS, check: any },
  protocols: { transports: WS, check: strings },
  origin: { transports: WS, check: text },
  perMessageDeflate: { transports: WS, check: perMessageDeflate },
  tls: { transports: NET, check: clientTls },
  keepAlive: { transports: NET, check: boolean },
  connectTimeout: timeout,
  refusalOf: handler,
  reconnect: { transports: ALL, check: reconnect },
  sendBuffer: { transports: ALL, check: sendBuffer },
  recovery: { transports: ALL, check: clientRecovery },
  ...SESSION_OPTIONS,
} as const satisfies Record<string, OptionRule>;

// Where a key of the session options means nothing: upgradeWebSocket()'s
// native socket has no Nagle to turn off, never holds a partial frame, and
// pings on its own clock (see src/transport/native.ts).
const notOnNative = (why: string) => ({
  transports: [] as const,
  check: any,
  hint: why,
});

/** Every option of `upgradeWebSocket()`, by name. */
export const UPGRADE_OPTIONS = {
  ...SESSION_OPTIONS,
  // Not a run-time signal: the app's own server ends the sessions.
  signal: notOnNative("close the sessions through their manager"),
  noDelay: notOnNative("Deno's server sets up the socket"),
  frameTimeout: notOnNative("messages arrive whole"),
  heartbeatMaxMissed: notOnNative("Deno's ping closes a peer after one miss"),
  protocol: { transports: WS, check: text },
  remoteAddr: { transports: WS, check: (o, key) => void record(o[key], key) },
  maxBufferedAmount: {
    transports: WS,
    check: (o, key) => void number(o, key, 0),
  },
} as const satisfies Record<string, OptionRule>;

const RATE_LIMIT_OPTIONS = [
  "messagesPerSecond",
  "messageBurst",
  "bytesPerSecond",
  "byteBurst",
  "policy",
] as const;
const RECONNECT_OPTIONS = [
  "initialDelay",
  "maxDelay",
  "factor",
  "jitter",
  "maxAttempts",
  "stableAfter",
] as const;
const SEND_BUFFER_OPTIONS = ["maxMessages", "whenFull"] as const;
const DEFLATE_OPTIONS = ["threshold", "level"] as const;

/**
 * Validates the options of `listen()` (and `new Server()`).
 *
 * @param options The options as passed.
 * @throws {TypeError} When an option is unknown or has the wrong type.
 * @throws {RangeError} When a number is out of range, an enum value is
 * unknown, an option belongs to another transport or needs another one,
 * or `heartbeatInterval` is set with a codec without a heartbeat.
 */
export function validateListenOptions(options: object): void {
  const o = record(options, "listen() options");
  const transport = transportOf(o);
  if (transport === "unix") string(o, "path", true);
  checkAll(o, LISTEN_OPTIONS, transport, "listen()");
  noDropWithRecovery(o);
  // A WebSocket server's codec is wrapped in an adapter that has a
  // heartbeat (ping/pong frames).
  sessionRelations(o, transport === "websocket");
}

// Recovery promises every message once; "drop" would refuse some without
// the peer ever learning of the gap.
function noDropWithRecovery(o: Record<string, unknown>): void {
  if (
    o.overflow === "drop" && o.recovery !== undefined && o.recovery !== false
  ) {
    throw new TypeError(
      'overflow: "drop" can\'t be used with recovery: a dropped message would be a gap its peer never learns of (use "close")',
    );
  }
}

/**
 * Validates the options of `upgradeWebSocket()`: the session's options and
 * its own; no key of `listen()` (`port`, `origins`, `transport`...).
 *
 * @param options The options as passed.
 * @throws {TypeError} When an option is unknown, does not apply to a native
 * WebSocket, or has the wrong type.
 * @throws {RangeError} When a number is out of range.
 */
export function validateUpgradeOptions(options: object): void {
  const o = record(options, "upgradeWebSocket() options");
  checkAll(o, UPGRADE_OPTIONS, "websocket", "upgradeWebSocket()");
  sessionRelations(o, true);
}

/**
 * Validates the options of `connect()` (and `new Client()`).
 *
 * @param options The options as passed.
 * @throws {TypeError} When an option is unknown, has the wrong type, or a
 * required one is missing.
 * @throws {RangeError} When a number is out of range, an enum value is
 * unknown, or an option belongs to another transport or needs another one.
 */
export function validateConnectOptions(options: object): void {
  const o = record(options, "connect() options");
  const transport = transportOf(o);
  // Foreign keys first: `{ url }` without a transport is told that url is
  // for "websocket", rather than that a port is missing.
  checkAll(o, CONNECT_OPTIONS, transport, "connect()");
  noDropWithRecovery(o);
  if (transport === "websocket") {
    const url = o.url;
    if (typeof url !== "string" && !(url instanceof URL)) {
      throw new TypeError(
        `url is required for a websocket connection, got ${show(url)}`,
      );
    }
  } else if (transport === "tcp" && o.port === undefined) {
    throw new TypeError("port is required for a tcp connection");
  } else if (transport === "unix") {
    string(o, "path", true);
  }
  sessionRelations(o, transport === "websocket");
  const buffer = o.sendBuffer;
  const reconnect = o.reconnect;
  if (
    buffer !== undefined && buffer !== false &&
    (reconnect === undefined || reconnect === false)
  ) {
    throw new RangeError(
      "sendBuffer needs reconnect (a client without it is closed for good with its first connection)",
    );
  }
}

function transportOf(o: Options): Transport {
  const transport = o.transport ?? "tcp";
  if (!(ALL as readonly unknown[]).includes(transport)) {
    throw new RangeError(
      `transport must be "tcp", "unix" or "websocket", got ${show(transport)}`,
    );
  }
  return transport as Transport;
}

// Every key known, applying to this transport, then its value checked.
function checkAll(
  o: Options,
  rules: Readonly<Record<string, OptionRule>>,
  transport: Transport,
  where: string,
): void {
  for (const key of Object.keys(o)) {
    const rule = Object.hasOwn(rules, key) ? rules[key] : undefined;
    if (rule === undefined) unknown(key, Object.keys(rules), where);
    if (o[key] === undefined) continue;
    if (!rule.transports.includes(transport)) {
      const list = rule.transports;
      if (list.length === 0) {
        throw new TypeError(
          `"${key}" does not apply to ${where}${
            rule.hint === undefined ? "" : ` (${rule.hint})`
          }`,
        );
      }
      throw new TypeError(
        `"${key}" applies only to transport${list.length > 1 ? "s" : ""} ${
          list.map((t) => `"${t}"`).join(" and ")
        }, not "${transport}"${
          rule.hint === undefined ? "" : ` (${rule.hint})`
        }`,
      );
    }
    rule.check(o, key, where);
  }
}

// Keys of a nested options object (`rateLimit.burst`).
function known(
  o: Options,
  keys: readonly string[],
  prefix: string,
  where: string,
): void {
  for (const key of Object.keys(o)) {
    if (!keys.includes(key)) {
      unknown(
        `${prefix}.${key}`,
        keys.map((k) => `${prefix}.${k}`),
        where,
      );
    }
  }
}

function unknown(key: string, keys: readonly string[], where: string): never {
  const like = closest(key, keys);
  throw new TypeError(
    `Unknown option "${key}" for ${where}${
      like === undefined ? "" : ` (did you mean "${like}"?)`
    }`,
  );
}

// The known key a typo most likely meant: the same but for case, or within
// two edits.
function closest(key: string, keys: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const sameCase = keys.find((k) => k.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of keys) {
    const d = distance(lower, k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

// Levenshtein distance, for option names (short strings).
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length]!;
}

// Options that mean something only together with others.
function sessionRelations(o: Options, webSocket: boolean): void {
  const codec = o.codec;
  const beat = codec === undefined
    ? undefined
    : (codec as { heartbeat?: unknown }).heartbeat;
  const interval = o.heartbeatInterval as number | undefined;
  if (interval !== undefined && interval > 0) {
    // Without a ping, a heartbeat would only be an idle timeout in disguise.
    if (beat === undefined && !webSocket) {
      throw new RangeError(
        `heartbeatInterval needs a codec with a heartbeat: ${
          codec === undefined
            ? "the default lines()"
            : `codec ${show((codec as { name?: unknown }).name)}`
        } has none (configure one, e.g. lines({ heartbeat: { ping: "PING", pong: "PONG" } }), or use idleTimeout)`,
      );
    }
  } else if (o.heartbeatMaxMissed !== undefined) {
    throw new TypeError(
      "heartbeatMaxMissed applies only with heartbeatInterval (heartbeats are off)",
    );
  }
  const budget = o.outboundBudget as number | undefined;
  const highWaterMark = o.highWaterMark as number | undefined;
  if (
    highWaterMark !== undefined &&
    highWaterMark > (budget ?? DEFAULT_OUTBOUND_BUDGET)
  ) {
    throw new RangeError(
      `highWaterMark must not exceed outboundBudget (${
        budget ?? DEFAULT_OUTBOUND_BUDGET
      }), got ${highWaterMark}`,
    );
  }
  // Over WebSocket the frame parser bounds any codec's messages; over a
  // byte stream only the codec can tell where a message ends, so the limit
  // needs a codec that takes one (the built-in ones do).
  if (
    o.maxMessageBytes !== undefined && !webSocket && codec !== undefined &&
    // deno-lint-ignore no-explicit-any
    kindOf(codec as Codec<any, any>) === undefined
  ) {
    throw new TypeError(
      `maxMessageBytes needs a codec that takes a message limit: codec ${
        show((codec as { name?: unknown }).name)
      } has none (bound its messages in its own decoder, or use transport "websocket")`,
    );
  }
  if (o.authTimeout !== undefined && o.authenticate === undefined) {
    throw new TypeError(
      "authTimeout applies only with authenticate (there is nothing to wait for)",
    );
  }
}

function codecCheck(o: Options, key: string): void {
  const c = record(o[key], key);
  if (typeof c.encode !== "function" || typeof c.decoder !== "function") {
    throw new TypeError(
      "codec must have encode() and decoder() functions (see the Codec interface)",
    );
  }
  const beat = c.heartbeat;
  if (beat !== undefined) {
    const b = record(beat, "codec.heartbeat");
    if (
      !(b.ping instanceof Uint8Array) || !(b.pong instanceof Uint8Array) ||
      typeof b.isPing !== "function" || typeof b.isPong !== "function"
    ) {
      throw new TypeError(
        "codec.heartbeat must have ping and pong bytes and isPing() and isPong() functions (see the Heartbeat interface)",
      );
    }
  }
}

function rateLimit(o: Options, key: string, where: string): void {
  const r = record(o[key], key);
  known(r, RATE_LIMIT_OPTIONS, key, where);
  for (const name of RATE_LIMIT_OPTIONS) {
    if (name !== "policy") number(r, name, 0, Infinity, `${key}.${name}`);
  }
  oneOf(r, "policy", ["throttle", "close"], `${key}.policy`);
  for (
    const [burst, rate] of [
      ["messageBurst", "messagesPerSecond"],
      ["byteBurst", "bytesPerSecond"],
    ] as const
  ) {
    if (r[burst] !== undefined && r[rate] === undefined) {
      throw new TypeError(
        `${key}.${burst} applies only with ${key}.${rate} (without it that rate is unlimited)`,
      );
    }
  }
  if (
    r.policy !== undefined && r.messagesPerSecond === undefined &&
    r.bytesPerSecond === undefined
  ) {
    throw new TypeError(
      `${key}.policy applies only with a rate (${key}.messagesPerSecond or ${key}.bytesPerSecond)`,
    );
  }
}

function serverTls(o: Options, key: string, where: string): void {
  const tls = record(o[key], key);
  known(tls, ["cert", "key"], key, where);
  pem(tls, "cert", "tls.cert", "CERTIFICATE");
  pem(tls, "key", "tls.key", "PRIVATE KEY");
}

function clientTls(o: Options, key: string, where: string): void {
  const tls = o[key];
  if (tls === true) return;
  const t = record(tls, key);
  known(t, ["caCerts"], key, where);
  const caCerts = t.caCerts;
  if (caCerts !== undefined) {
    if (!Array.isArray(caCerts)) {
      throw new TypeError(
        `tls.caCerts must be an array of PEM strings, got ${show(caCerts)}`,
      );
    }
    caCerts.forEach((_, i) =>
      pem(caCerts, i, `tls.caCerts[${i}]`, "CERTIFICATE")
    );
  }
}

function reconnect(o: Options, key: string, where: string): void {
  const value = o[key];
  if (typeof value === "boolean") return;
  const r = record(value, key);
  known(r, RECONNECT_OPTIONS, key, where);
  number(r, "initialDelay", 0, Infinity, "reconnect.initialDelay");
  number(r, "maxDelay", 0, Infinity, "reconnect.maxDelay");
  number(r, "factor", 1, Infinity, "reconnect.factor");
  number(r, "jitter", 0, 1, "reconnect.jitter");
  limit(r, "maxAttempts", "reconnect.maxAttempts");
  number(r, "stableAfter", 0, Infinity, "reconnect.stableAfter");
}

const RECOVERY_OPTIONS = [
  "window",
  "maxMessages",
  "maxBytes",
  "helloTimeout",
  "onResume",
  "onDetach",
] as const;

function recovery(o: Options, key: string, where: string): void {
  const r = record(o[key], key);
  known(r, RECOVERY_OPTIONS, key, where);
  number(r, "window", 1, 2_147_483_647, "recovery.window");
  integer(r, "maxMessages", 1, 2 ** 30, "recovery.maxMessages");
  integer(r, "maxBytes", 1, Number.MAX_SAFE_INTEGER, "recovery.maxBytes");
  number(r, "helloTimeout", 1, 2_147_483_647, "recovery.helloTimeout");
  for (const name of ["onResume", "onDetach"] as const) {
    const value = r[name];
    if (value !== undefined && typeof value !== "function") {
      throw new TypeError(
        `recovery.${name} must be a function, got ${show(value)}`,
      );
    }
  }
}

const CLIENT_RECOVERY_OPTIONS = ["maxMessages", "maxBytes"] as const;

// connect(): `true`, or the bounds of the client's own send log.
function clientRecovery(o: Options, key: string, where: string): void {
  const value = o[key];
  if (typeof value === "boolean") return;
  const r = record(value, key);
  known(r, CLIENT_RECOVERY_OPTIONS, key, where);
  integer(r, "maxMessages", 1, 2 ** 30, "recovery.maxMessages");
  integer(r, "maxBytes", 1, Number.MAX_SAFE_INTEGER, "recovery.maxBytes");
}

function sendBuffer(o: Options, key: string, where: string): void {
  const value = o[key];
  if (typeof value === "boolean") return;
  const b = record(value, key);
  known(b, SEND_BUFFER_OPTIONS, key, where);
  limit(b, "maxMessages", "sendBuffer.maxMessages");
  oneOf(b, "whenFull", ["drop-oldest", "drop-newest"], "sendBuffer.whenFull");
}

function perMessageDeflate(o: Options, key: string, where: string): void {
  const value = o[key];
  if (typeof value === "boolean") return;
  const d = record(value, key);
  known(d, DEFLATE_OPTIONS, key, where);
  integer(d, "threshold", 0, Number.MAX_SAFE_INTEGER, `${key}.threshold`);
  integer(d, "level", 1, 9, `${key}.level`);
}

function origins(o: Options, key: string): void {
  if (typeof o[key] !== "function") strings(o, key);
}

function strings(o: Options, key: string): void {
  const value = o[key];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new TypeError(
      `${key} must be an array of strings${
        key === "origins" ? " or a function" : ""
      }, got ${show(value)}`,
    );
  }
}

function record(value: unknown, name: string): Options {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${name} must be an object, got ${show(value)}`);
  }
  return value as Options;
}

// A finite number in [min, max] (or (min, max] when `exclusiveMin`).
function number(
  o: Options,
  key: string,
  min: number,
  max = Infinity,
  name = key,
  exclusiveMin = false,
): number | undefined {
  const value = o[key];
  if (value === undefined) return undefined;
  if (typeof value !== "number") {
    throw new TypeError(`${name} must be a number, got ${show(value)}`);
  }
  if (
    !Number.isFinite(value) || value > max ||
    (exclusiveMin ? value <= min : value < min)
  ) {
    const range = max === Infinity
      ? `${exclusiveMin ? "greater than" : "at least"} ${min}`
      : `from ${min} to ${max}`;
    throw new RangeError(
      `${name} must be a finite number ${range}, got ${show(value)}`,
    );
  }
  return value;
}

function integer(
  o: Options,
  key: string,
  min: number,
  max: number,
  name = key,
): void {
  const value = number(o, key, min, max, name);
  if (value !== undefined && !Number.isInteger(value)) {
    throw new RangeError(`${name} must be an integer, got ${value}`);
  }
}

// A count limit: an integer of at least 1, or Infinity for none.
function limit(o: Options, key: string, name = key): void {
  const value = o[key];
  if (value === undefined || value === Infinity) return;
  if (typeof value !== "number") {
    throw new TypeError(`${name} must be a number, got ${show(value)}`);
  }
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `${name} must be an integer of at least 1 (or Infinity), got ${
        show(value)
      }`,
    );
  }
}

function port(o: Options, key: string): void {
  integer(o, key, 0, 65535);
}

function string(o: Options, key: string, required = false): void {
  const value = o[key];
  if (value === undefined && !required) return;
  if (typeof value !== "string") {
    throw new TypeError(`${key} must be a string, got ${show(value)}`);
  }
}

function boolean(o: Options, key: string): void {
  const value = o[key];
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(`${key} must be a boolean, got ${show(value)}`);
  }
}

function fn(o: Options, key: string): void {
  const value = o[key];
  if (value !== undefined && typeof value !== "function") {
    throw new TypeError(`${key} must be a function, got ${show(value)}`);
  }
}

function oneOf(
  o: Options,
  key: string,
  values: readonly string[],
  name = key,
): void {
  const value = o[key];
  if (value === undefined) return;
  if (!values.includes(value as string)) {
    throw new RangeError(
      `${name} must be ${values.map((v) => `"${v}"`).join(" or ")}, got ${
        show(value)
      }`,
    );
  }
}

function signal(o: Options, key: string): void {
  const value = o[key];
  if (value !== undefined && !(value instanceof AbortSignal)) {
    throw new TypeError(`signal must be an AbortSignal, got ${show(value)}`);
  }
}

// PEM text, not a file name: Deno's TLS functions take the contents, and a
// path there fails late with an obscure error.
function pem(
  o: Options | unknown[],
  key: string | number,
  name: string,
  kind: string,
): void {
  const value = (o as Record<string | number, unknown>)[key];
  if (typeof value !== "string") {
    throw new TypeError(
      `${name} must be a string of PEM text, got ${show(value)}`,
    );
  }
  if (!value.includes("-----BEGIN ")) {
    const looksLikePath = !/\s/.test(value.trim()) &&
      /[\\/.]/.test(value) && value.length < 4096;
    throw new TypeError(
      looksLikePath
        ? `${name} must be PEM text, not a file path: pass await Deno.readTextFile(${
          JSON.stringify(value)
        })`
        : `${name} must be PEM text (-----BEGIN ${kind}-----...)`,
    );
  }
}

function show(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value);
  }
  if (typeof value === "function") return "a function";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "bigint") return `${value}n`;
  return String(value);
}
