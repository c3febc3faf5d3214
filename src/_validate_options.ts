// Checks the options of listen() and connect() at once, so that a typo or a
// NaN fails where it was written, with the option's name, instead of cutting
// sessions later (an outboundBudget of NaN closed every session on its
// second send). Unknown options are ignored; undefined means "the default".

type Options = Record<string, unknown>;

const SESSION_HANDLERS = [
  "onOpen",
  "onMessage",
  "onClose",
  "onError",
  "authenticate",
];

/**
 * Validates the options of `listen()` (and `new Server()`).
 *
 * @param options The options as passed.
 * @throws {TypeError} When an option has the wrong type.
 * @throws {RangeError} When a number is out of range, an enum value is
 * unknown, or `heartbeatInterval` is set with a codec without a heartbeat.
 */
export function validateListenOptions(options: object): void {
  const o = record(options, "listen() options");
  const transport = o.transport;
  if (transport === "unix") {
    string(o, "path", true);
  } else if (
    transport === undefined || transport === "tcp" ||
    transport === "websocket"
  ) {
    string(o, "hostname");
    port(o);
    integer(o, "backlog", 1, 0x7fffffff);
    boolean(o, "reusePort");
    if (transport === "websocket") {
      string(o, "path");
      number(o, "handshakeTimeout", 0);
      integer(o, "maxMessageBytes", 0, Number.MAX_SAFE_INTEGER);
      fn(o, "serve");
    }
    if (o.tls !== undefined) {
      const tls = record(o.tls, "tls");
      pem(tls, "cert", "tls.cert", "CERTIFICATE");
      pem(tls, "key", "tls.key", "PRIVATE KEY");
    }
  } else {
    throw new RangeError(
      `transport must be "tcp", "unix" or "websocket", got ${show(transport)}`,
    );
  }
  // A WebSocket server's codec is wrapped in an adapter that has a
  // heartbeat (ping/pong frames).
  sessionOptions(o, transport === "websocket");
  fn(o, "data");
  fn(o, "onAccept");
  limit(o, "maxConnections");
  limit(o, "maxConnectionsPerIp");
  signal(o);
}

/**
 * Validates the options of `connect()` (and `new Client()`).
 *
 * @param options The options as passed.
 * @throws {TypeError} When an option has the wrong type.
 * @throws {RangeError} When a number is out of range or an enum value is
 * unknown.
 */
export function validateConnectOptions(options: object): void {
  const o = record(options, "connect() options");
  const transport = o.transport;
  if (transport === "unix") {
    string(o, "path", true);
  } else if (transport === "websocket") {
    const url = o.url;
    if (typeof url !== "string" && !(url instanceof URL)) {
      throw new TypeError(
        `url is required for a websocket connection, got ${show(url)}`,
      );
    }
    string(o, "origin");
    integer(o, "maxMessageBytes", 0, Number.MAX_SAFE_INTEGER);
  } else if (transport === undefined || transport === "tcp") {
    string(o, "hostname");
    if (o.port === undefined) {
      throw new TypeError("port is required for a tcp connection");
    }
    port(o);
    const tls = o.tls;
    if (tls !== undefined && tls !== true) {
      const t = record(tls, "tls");
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
  } else {
    throw new RangeError(
      `transport must be "tcp", "unix" or "websocket", got ${show(transport)}`,
    );
  }
  sessionOptions(o, transport === "websocket");
  fn(o, "data");
  fn(o, "refusalOf");
  signal(o);
  number(o, "connectTimeout", 0);
  boolean(o, "keepAlive");
  const reconnect = o.reconnect;
  if (reconnect !== undefined && typeof reconnect !== "boolean") {
    const r = record(reconnect, "reconnect");
    number(r, "initialDelay", 0, Infinity, "reconnect.initialDelay");
    number(r, "maxDelay", 0, Infinity, "reconnect.maxDelay");
    number(r, "factor", 1, Infinity, "reconnect.factor");
    number(r, "jitter", 0, 1, "reconnect.jitter");
    limit(r, "maxAttempts", "reconnect.maxAttempts");
    number(r, "stableAfter", 0, Infinity, "reconnect.stableAfter");
  }
  const buffer = o.sendBuffer;
  if (buffer !== undefined && typeof buffer !== "boolean") {
    const b = record(buffer, "sendBuffer");
    limit(b, "maxMessages", "sendBuffer.maxMessages");
    oneOf(b, "whenFull", ["drop-oldest", "drop-newest"], "sendBuffer.whenFull");
  }
}

// What listen() and connect() share: codec, limits, liveness, handlers.
function sessionOptions(o: Options, webSocket = false): void {
  const codec = o.codec;
  if (codec !== undefined) {
    const c = record(codec, "codec");
    if (typeof c.encode !== "function" || typeof c.decoder !== "function") {
      throw new TypeError(
        "codec must have encode() and decoder() functions (see the Codec interface)",
      );
    }
  }
  const beat = codec === undefined
    ? undefined
    : (codec as { heartbeat?: unknown }).heartbeat;
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
  const budget = number(o, "outboundBudget", 0, Infinity, undefined, true);
  oneOf(o, "overflow", ["close", "drop"]);
  boolean(o, "noDelay");
  number(o, "closeTimeout", 0);
  number(o, "idleTimeout", 0);
  number(o, "frameTimeout", 0);
  const interval = number(o, "heartbeatInterval", 0);
  integer(o, "heartbeatMaxMissed", 1, Number.MAX_SAFE_INTEGER);
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
  }
  const highWaterMark = number(
    o,
    "highWaterMark",
    0,
    Infinity,
    undefined,
    true,
  );
  if (highWaterMark !== undefined && highWaterMark > (budget ?? 1048576)) {
    throw new RangeError(
      `highWaterMark must not exceed outboundBudget (${
        budget ?? 1048576
      }), got ${highWaterMark}`,
    );
  }
  number(o, "drainTimeout", 0);
  number(o, "authTimeout", 0);
  const rate = o.rateLimit;
  if (rate !== undefined) {
    const r = record(rate, "rateLimit");
    for (
      const name of [
        "messagesPerSecond",
        "messageBurst",
        "bytesPerSecond",
        "byteBurst",
      ]
    ) {
      number(r, name, 0, Infinity, `rateLimit.${name}`);
    }
    oneOf(r, "policy", ["throttle", "close"], "rateLimit.policy");
  }
  for (const name of SESSION_HANDLERS) fn(o, name);
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

function port(o: Options): void {
  integer(o, "port", 0, 65535);
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

function signal(o: Options): void {
  const value = o.signal;
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
