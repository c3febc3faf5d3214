// Type-level and small run-time checks of the public API's shape: server.addr
// typed by the listen options, Server.closed (and its deprecated alias),
// CloseReason as constants and as a literal union. `deno check tests/`
// fails when an `@ts-expect-error` below stops meeting an error.
import assert from "node:assert/strict";
import {
  type ClientCloseReason,
  type ClientOptions,
  CloseReason,
  connect,
  type ConnectOptions,
  listen,
  type ListenOptions,
  type ServerOptions,
  type TcpConnectOptions,
  type TcpListenOptions,
  type UnixConnectOptions,
  type UnixListenOptions,
  type UpgradeWebSocketOptions,
  type WebSocketConnectOptions,
  type WebSocketListenOptions,
} from "../mod.ts";
import type {
  CONNECT_OPTIONS,
  LISTEN_OPTIONS,
  UPGRADE_OPTIONS,
} from "../src/_validate_options.ts";

Deno.test("server.addr is a Deno.NetAddr for TCP options and a Deno.UnixAddr for a socket path", async () => {
  await using tcp = listen({ hostname: "127.0.0.1", port: 0 });
  const port: number = tcp.addr.port; // no cast
  const hostname: string = tcp.addr.hostname;
  assert.ok(port > 0);
  assert.equal(hostname, "127.0.0.1");
  const dir = await Deno.makeTempDir();
  try {
    await using unix = listen({ transport: "unix", path: `${dir}/s.sock` });
    const path: string = unix.addr.path;
    assert.equal(path, `${dir}/s.sock`);
    // @ts-expect-error: a Unix socket has no port
    void unix.addr.port;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Options whose transport is decided at run time: the general type.
  const policy: ServerOptions<unknown, string, string> = {};
  const where = Math.random() < 2
    ? { hostname: "127.0.0.1", port: 0 }
    : { transport: "unix" as const, path: "/nowhere" };
  await using either = listen({ ...where, ...policy });
  // @ts-expect-error: may be a Unix address
  void either.addr.port;
  assert.equal(either.addr.transport, "tcp");
});

Deno.test("Server.closed resolves after shutdown; finished is gone (it was never released)", async () => {
  const server = listen({ hostname: "127.0.0.1", port: 0 });
  // @ts-expect-error: dropped, Server.closed is the one promise
  assert.equal(server.finished, undefined);
  await server.shutdown();
  await server.closed;
});

Deno.test("CloseReason is a constants object and a literal union of its values", async () => {
  const reason: CloseReason = CloseReason.SlowConsumer;
  // @ts-expect-error: not a reason the library gives
  const wrong: CloseReason = "slow";
  void wrong;
  assert.equal(reason, "slow consumer");
  await using server = listen({ hostname: "127.0.0.1", port: 0 });
  const client = await connect({ port: server.addr.port });
  await client.close("bye");
  const closed: ClientCloseReason = await client.closed;
  assert.equal(closed, "bye");
});

Deno.test("listen() options are typed per transport: another transport's keys are type errors", async () => {
  // The server: WebSocket options on a TCP server type-checked and
  // did nothing. Both the call and options built apart are refused.
  assert.throws(() =>
    // @ts-expect-error: origins is for transport "websocket"
    listen({ port: 0, path: "/ws", origins: ["https://my.app"] })
  );
  const tcp: TcpListenOptions = {
    port: 0,
    // @ts-expect-error: handshakeTimeout is for transport "websocket"
    handshakeTimeout: 1000,
  };
  void tcp;
  const unix: UnixListenOptions = {
    transport: "unix",
    path: "/nowhere",
    // @ts-expect-error: a Unix socket has no port
    port: 0,
  };
  void unix;
  assert.throws(() =>
    // @ts-expect-error: nor Nagle's algorithm
    listen({ transport: "unix", path: "/nowhere", noDelay: true })
  );
  assert.throws(() =>
    // @ts-expect-error: onMessage, not onmessage
    listen({ port: 0, onmessage: () => {} })
  );
  // Built apart, spread in: still checked against the transport.
  const where = { hostname: "127.0.0.1", port: 0, serve: () => new Response() };
  // @ts-expect-error: serve is for transport "websocket"
  assert.throws(() => listen({ ...where }));
  // The right transport takes them.
  await using ws = listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    path: "/ws",
    origins: ["https://my.app"],
    noDelay: true,
  });
  assert.ok(ws.addr.port > 0);
});

Deno.test("connect() options are typed per transport: another transport's keys are type errors", async () => {
  await assert.rejects(() =>
    // @ts-expect-error: origin is for transport "websocket"
    connect({ port: 1, origin: "https://my.app" })
  );
  await assert.rejects(() =>
    // @ts-expect-error: the url says where
    connect({ transport: "websocket", url: "ws://127.0.0.1:1/", port: 1 })
  );
  await assert.rejects(() =>
    // @ts-expect-error: keep-alive is for TCP connections
    connect({ transport: "unix", path: "/nowhere", keepAlive: true })
  );
  // One message limit for every transport: maxMessageBytes is no longer
  // WebSocket-only.
  const tcp: TcpConnectOptions & ClientOptions<unknown, string, string> = {
    port: 1,
    maxMessageBytes: 10,
  };
  void tcp;
  const ws: WebSocketConnectOptions = {
    transport: "websocket",
    url: "ws://127.0.0.1:1/",
    // @ts-expect-error: hostname comes from the url
    hostname: "127.0.0.1",
  };
  void ws;
});

// The validator's tables and the option types list the same keys for the
// same transports: adding an option to one without the other fails here.
type KeysOf<T> = T extends unknown ? keyof T : never;
// The keys a type accepts (not those typed `?: never`).
type Accepted<T> = {
  [K in keyof T]-?: [Exclude<T[K], undefined>] extends [never] ? never : K;
}[keyof T];
type RuleKeys<Rules, T extends string> = {
  [K in keyof Rules]: Rules[K] extends { transports: readonly (infer U)[] }
    ? T extends U ? K : never
    : never;
}[keyof Rules];
type Same<A, B> = [A] extends [B] ? [B] extends [A] ? true : false : false;
type Server = ServerOptions<unknown, string, string>;
type Client = ClientOptions<unknown, string, string>;
const listenKeys: [
  Same<
    Accepted<TcpListenOptions & Server>,
    RuleKeys<typeof LISTEN_OPTIONS, "tcp">
  >,
  Same<
    Accepted<UnixListenOptions & Server>,
    RuleKeys<typeof LISTEN_OPTIONS, "unix">
  >,
  Same<
    Accepted<WebSocketListenOptions & Server>,
    RuleKeys<typeof LISTEN_OPTIONS, "websocket">
  >,
  Same<
    KeysOf<ListenOptions<unknown, string, string>>,
    keyof typeof LISTEN_OPTIONS
  >,
] = [true, true, true, true];
const connectKeys: [
  Same<
    Accepted<TcpConnectOptions & Client>,
    RuleKeys<typeof CONNECT_OPTIONS, "tcp">
  >,
  Same<
    Accepted<UnixConnectOptions & Client>,
    RuleKeys<typeof CONNECT_OPTIONS, "unix">
  >,
  Same<
    Accepted<WebSocketConnectOptions & Client>,
    RuleKeys<typeof CONNECT_OPTIONS, "websocket">
  >,
  Same<
    KeysOf<ConnectOptions<unknown, string, string>>,
    keyof typeof CONNECT_OPTIONS
  >,
] = [true, true, true, true];
// upgradeWebSocket(): the keys its type takes are those its table accepts.
const upgradeKeys: [
  Same<
    Accepted<UpgradeWebSocketOptions<unknown, string, string>>,
    RuleKeys<typeof UPGRADE_OPTIONS, "websocket">
  >,
  Same<
    KeysOf<UpgradeWebSocketOptions<unknown, string, string>>,
    RuleKeys<typeof UPGRADE_OPTIONS, "websocket">
  >,
] = [true, true];
void listenKeys;
void connectKeys;
void upgradeKeys;
