// listen() and connect() reject bad options at once, naming the option,
// instead of misbehaving later (a NaN budget cut every session on its
// second send; maxConnections: -1 silently refused everyone).
import assert from "node:assert/strict";
import {
  connect,
  json,
  lengthPrefixed,
  lines,
  listen,
  microSocket,
} from "../../mod.ts";

type AnyOptions = Parameters<typeof listen>[0];

function refuses(
  extra: Record<string, unknown>,
  type: typeof TypeError | typeof RangeError,
  name: RegExp,
): void {
  assert.throws(
    () => listen({ hostname: "127.0.0.1", port: 0, ...extra } as AnyOptions),
    (error: unknown) => {
      assert.ok(error instanceof type, `${error} is a ${type.name}`);
      assert.match((error as Error).message, name);
      return true;
    },
    JSON.stringify(extra),
  );
}

Deno.test("listen() refuses out-of-range numbers, naming the option", () => {
  refuses({ outboundBudget: -1 }, RangeError, /^outboundBudget must be/);
  refuses({ outboundBudget: NaN }, RangeError, /^outboundBudget .* NaN/);
  refuses({ outboundBudget: 0 }, RangeError, /^outboundBudget/);
  refuses({ outboundBudget: "1mb" }, TypeError, /^outboundBudget/);
  refuses({ maxConnections: -1 }, RangeError, /^maxConnections/);
  refuses({ maxConnections: 0 }, RangeError, /^maxConnections/);
  refuses({ maxConnections: 1.5 }, RangeError, /^maxConnections/);
  refuses({ maxConnectionsPerIp: NaN }, RangeError, /^maxConnectionsPerIp/);
  refuses({ idleTimeout: -5 }, RangeError, /^idleTimeout/);
  refuses({ frameTimeout: Infinity }, RangeError, /^frameTimeout/);
  refuses({ closeTimeout: -1 }, RangeError, /^closeTimeout/);
  refuses({ heartbeatMaxMissed: 0 }, RangeError, /^heartbeatMaxMissed/);
  refuses({ heartbeatMaxMissed: 2.5 }, RangeError, /^heartbeatMaxMissed/);
  refuses({ port: 70000 }, RangeError, /^port/);
  refuses({ backlog: 0 }, RangeError, /^backlog/);
  refuses({ transport: "udp" }, RangeError, /^transport/);
});

Deno.test("listen() refuses unknown enum values and non-functions", () => {
  refuses(
    { overflow: "block" },
    RangeError,
    /^overflow must be "close" or "drop", got "block"/,
  );
  refuses({ onMessage: "nope" }, TypeError, /^onMessage must be a function/);
  refuses({ onAccept: 1 }, TypeError, /^onAccept/);
  refuses({ data: {} }, TypeError, /^data/);
  refuses({ onError: null }, TypeError, /^onError/);
  refuses({ codec: "lines" }, TypeError, /^codec/);
  refuses({ codec: { name: "x" } }, TypeError, /^codec/);
  refuses({ noDelay: "yes" }, TypeError, /^noDelay/);
  refuses({ signal: {} }, TypeError, /^signal/);
});

Deno.test("listen() validates the flow-control and rate-limit options", () => {
  refuses({ highWaterMark: 0 }, RangeError, /^highWaterMark/);
  refuses(
    { highWaterMark: 2 << 20 },
    RangeError,
    /^highWaterMark must not exceed outboundBudget/,
  );
  refuses(
    { highWaterMark: 512, outboundBudget: 256 },
    RangeError,
    /^highWaterMark/,
  );
  refuses({ drainTimeout: -1 }, RangeError, /^drainTimeout/);
  refuses({ rateLimit: 10 }, TypeError, /^rateLimit/);
  refuses(
    { rateLimit: { messagesPerSecond: -1 } },
    RangeError,
    /^rateLimit\.messagesPerSecond/,
  );
  refuses(
    { rateLimit: { byteBurst: NaN } },
    RangeError,
    /^rateLimit\.byteBurst/,
  );
  refuses({ rateLimit: { policy: "drop" } }, RangeError, /^rateLimit\.policy/);
});

Deno.test("listen() refuses heartbeatInterval with a codec that has no heartbeat", () => {
  for (const codec of [undefined, lines(), json(), lengthPrefixed()]) {
    refuses(
      { codec, heartbeatInterval: 1000 },
      RangeError,
      /^heartbeatInterval needs a codec with a heartbeat/,
    );
  }
});

Deno.test("listen() refuses a codec heartbeat of the old shape (ping and isPong only)", () => {
  const inner = lines();
  const oldShape = {
    ...inner,
    heartbeat: { ping: new Uint8Array(1), isPong: () => false },
  };
  refuses({ codec: oldShape }, TypeError, /^codec\.heartbeat must have/);
});

Deno.test("listen() accepts valid options, the new ones included", async () => {
  const controller = new AbortController();
  const server = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: microSocket(),
    outboundBudget: 4096,
    overflow: "drop",
    maxConnections: Infinity,
    maxConnectionsPerIp: 4,
    idleTimeout: 0,
    heartbeatInterval: 1000,
    heartbeatMaxMissed: 1,
    signal: controller.signal,
    ...{
      highWaterMark: 4096,
      drainTimeout: 0,
      rateLimit: {
        messagesPerSecond: 10,
        bytesPerSecond: 65536,
        byteBurst: 0,
        policy: "close",
      },
    },
  });
  await server.shutdown();
});

Deno.test("connect() refuses bad options before dialling", async () => {
  const bad: Record<string, unknown>[] = [
    { port: 1, outboundBudget: -1 },
    { port: 1, overflow: "block" },
    { port: 1, onMessage: "nope" },
    { port: "80" },
    { port: 1, reconnect: { factor: 0.5 } },
    { port: 1, reconnect: { jitter: 2 } },
    { port: 1, reconnect: { maxAttempts: 0 } },
    { port: 1, connectTimeout: -1 },
    { port: 1, heartbeatInterval: 100 },
    {},
  ];
  for (const options of bad) {
    await assert.rejects(
      () => connect(options as unknown as Parameters<typeof connect>[0]),
      (error: unknown) =>
        error instanceof TypeError || error instanceof RangeError,
      JSON.stringify(options),
    );
  }
});

Deno.test("listen() refuses an unknown option, naming it and the likely intended one", () => {
  refuses(
    { onmessage: () => {} },
    TypeError,
    /^Unknown option "onmessage" for listen\(\) \(did you mean "onMessage"\?\)$/,
  );
  refuses(
    { idleTimout: 1000 },
    TypeError,
    /^Unknown option "idleTimout" for listen\(\) \(did you mean "idleTimeout"\?\)$/,
  );
  refuses(
    { colour: "red" },
    TypeError,
    /^Unknown option "colour" for listen\(\)$/,
  );
  // Nested option objects are checked the same way.
  refuses(
    { rateLimit: { messagesPerSecond: 10, burst: 20 } },
    TypeError,
    /^Unknown option "rateLimit\.burst" for listen\(\)/,
  );
  refuses(
    {
      tls: {
        cert: "-----BEGIN CERTIFICATE-----",
        key: "-----BEGIN PRIVATE KEY-----",
        ca: "",
      },
    },
    TypeError,
    /^Unknown option "tls\.ca" for listen\(\)/,
  );
});

Deno.test("listen() refuses WebSocket-only options on a TCP server, naming the option and the transport", () => {
  // The server: it ran as a plain lines server, the origin list
  // doing nothing.
  refuses(
    { path: "/ws", origins: ["https://my.app"] },
    TypeError,
    /^"path" applies only to transports "unix" and "websocket", not "tcp"/,
  );
  for (
    const key of [
      "origins",
      "protocols",
      "handshakeTimeout",
      "maxHeadBytes",
      "maxHeaders",
      "serve",
    ]
  ) {
    const value = key === "serve"
      ? () => new Response()
      : key === "origins" || key === "protocols"
      ? ["x"]
      : 10;
    refuses(
      { [key]: value },
      TypeError,
      new RegExp(`^"${key}" applies only to transport "websocket", not "tcp"`),
    );
    refuses(
      { transport: "tcp", [key]: value },
      TypeError,
      new RegExp(`^"${key}" applies only to transport "websocket"`),
    );
  }
});

Deno.test("listen() refuses network options on a Unix socket server", () => {
  for (
    const [key, value] of [
      ["port", 0],
      ["hostname", "127.0.0.1"],
      ["backlog", 10],
      ["reusePort", true],
      ["tls", { cert: "", key: "" }],
      ["noDelay", true],
      ["maxConnectionsPerIp", 4],
      ["origins", ["https://my.app"]],
    ] as const
  ) {
    assert.throws(
      () =>
        listen(
          { transport: "unix", path: "/nowhere", [key]: value } as AnyOptions,
        ),
      (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(
          error.message,
          new RegExp(`^"${key}" applies only to transports? .*, not "unix"`),
        );
        return true;
      },
      key,
    );
  }
});

Deno.test("listen() refuses options that mean nothing without another one", () => {
  refuses(
    { authTimeout: 1000 },
    TypeError,
    /^authTimeout applies only with authenticate/,
  );
  refuses(
    { heartbeatMaxMissed: 2 },
    TypeError,
    /^heartbeatMaxMissed applies only with heartbeatInterval/,
  );
  refuses(
    { rateLimit: { messageBurst: 20 } },
    TypeError,
    /^rateLimit\.messageBurst applies only with rateLimit\.messagesPerSecond/,
  );
  refuses(
    { rateLimit: { byteBurst: 1024 } },
    TypeError,
    /^rateLimit\.byteBurst applies only with rateLimit\.bytesPerSecond/,
  );
  refuses(
    { rateLimit: { policy: "close" } },
    TypeError,
    /^rateLimit\.policy applies only with a rate/,
  );
});

Deno.test("listen() accepts every WebSocket option on a WebSocket server", async () => {
  await using server = listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    backlog: 16,
    path: "/ws",
    origins: ["https://my.app"],
    protocols: ["chat"],
    handshakeTimeout: 1000,
    maxHeadBytes: 4096,
    maxHeaders: 32,
    maxMessageBytes: 4096,
    serve: () => new Response("hi"),
    authenticate: () => ({}),
    authTimeout: 1000,
  });
  assert.ok(server.addr.port > 0);
});

Deno.test("listen() refuses WebSocket handshake limits of the wrong type", () => {
  const ws = { transport: "websocket" };
  refuses({ ...ws, origins: "https://my.app" }, TypeError, /^origins must be/);
  refuses({ ...ws, protocols: "chat" }, TypeError, /^protocols must be/);
  refuses({ ...ws, maxHeaders: 0 }, RangeError, /^maxHeaders/);
  refuses({ ...ws, maxHeadBytes: -1 }, RangeError, /^maxHeadBytes/);
});

Deno.test("connect() refuses unknown options and options of another transport, naming them", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { port: 1, onmesage: () => {} },
      /^Unknown option "onmesage" for connect\(\) \(did you mean "onMessage"\?\)$/,
    ],
    [
      { port: 1, origin: "https://my.app" },
      /^"origin" applies only to transport "websocket", not "tcp"/,
    ],
    [
      // One limit for every transport, but a byte stream needs a codec
      // that can hold it.
      {
        port: 1,
        maxMessageBytes: 10,
        codec: {
          name: "raw",
          encode: () => new Uint8Array(0),
          decoder: () => ({ buffered: 0, decode() {} }),
        },
      },
      /^maxMessageBytes needs a codec that takes a message limit: codec "raw" has none/,
    ],
    [
      { port: 1, path: "/tmp/s.sock" },
      /^"path" applies only to transport "unix", not "tcp"/,
    ],
    [
      { transport: "unix", path: "/tmp/s.sock", keepAlive: true },
      /^"keepAlive" applies only to transports "tcp" and "websocket", not "unix"/,
    ],
    [
      { transport: "websocket", url: "ws://127.0.0.1:1/", port: 1 },
      /^"port" applies only to transport "tcp", not "websocket" \(the url says where\)/,
    ],
    [
      { transport: "websocket", url: "ws://127.0.0.1:1/", hostname: "x" },
      /^"hostname" applies only to transport "tcp", not "websocket"/,
    ],
    [
      { port: 1, reconnect: { intialDelay: 5 } },
      /^Unknown option "reconnect\.intialDelay" for connect\(\) \(did you mean "reconnect\.initialDelay"\?\)/,
    ],
    [{ port: 1, sendBuffer: true }, /^sendBuffer needs reconnect/],
    [
      { transport: "tcp", port: 1, url: "ws://127.0.0.1:1/" },
      /^"url" applies only to transport "websocket", not "tcp"/,
    ],
    [
      { port: 1, authTimeout: 1000 },
      /^authTimeout applies only with authenticate/,
    ],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(
      () => connect(options as unknown as Parameters<typeof connect>[0]),
      (error: unknown) => {
        assert.ok(
          error instanceof TypeError || error instanceof RangeError,
          String(error),
        );
        assert.match(error.message, message);
        return true;
      },
      JSON.stringify(options),
    );
  }
});
