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
} from "../mod.ts";

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
      rateLimit: { messagesPerSecond: 10, byteBurst: 0, policy: "close" },
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
      () => connect(options as Parameters<typeof connect>[0]),
      (error: unknown) =>
        error instanceof TypeError || error instanceof RangeError,
      JSON.stringify(options),
    );
  }
});
