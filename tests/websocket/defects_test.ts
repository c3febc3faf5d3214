// The WebSocket defects of issue 16 (A2, A3, A4, A10), each against a real
// listen({ transport: "websocket" }) server on loopback: a client-role
// webSocketMessages() codec given to connect(), codec limits over WebSocket,
// maxMessageBytes with webSocketMessages(), HTTP answers to refused
// upgrades, transport inferred from a ws: URL, exact 64-bit lengths, and
// close reasons that say which rule a peer broke.
import assert from "node:assert/strict";
import {
  CloseReason,
  connect,
  FrameTooLargeError,
  json,
  lengthPrefixed,
  lines,
  MessageTooBigError,
  type Server,
  SessionManager,
  upgradeWebSocket,
  webSocketMessages,
} from "../../mod.ts";
import { Opcode } from "../../src/websocket/_frame_writer.ts";
import { FrameParser } from "../../src/websocket/_frame_parser.ts";
import { exchange, RawWebSocket, upgradeRequest } from "./_ws_raw.ts";
import { testServer } from "../_server.ts";
import { until, within } from "../_util.ts";

// deno-lint-ignore no-explicit-any
type AnyServer = Server<any, any, any, Deno.NetAddr>;

function wsServer(options: Record<string, unknown> = {}): AnyServer {
  return testServer({
    transport: "websocket",
    path: "/ws",
    onMessage: (session, message: string) => void session.send(message),
    onError: () => {},
    ...options,
  }) as AnyServer;
}

// ---- A2: a WebSocket codec given to connect() is used as it is ----------

Deno.test('websocket: connect() with webSocketMessages({ role: "client" }) sends plain messages', async () => {
  const received: unknown[] = [];
  await using server = wsServer({
    codec: webSocketMessages(),
    onMessage: (
      session: { send(m: string | Uint8Array): boolean },
      message: string | Uint8Array,
    ) => {
      received.push(message);
      session.send(message);
    },
  });
  const replies: (string | Uint8Array)[] = [];
  const closes: string[] = [];
  await using client = await connect({
    transport: "websocket",
    url: `ws://127.0.0.1:${server.addr.port}/ws`,
    codec: webSocketMessages({ role: "client" }),
    onMessage: (_session, message) => void replies.push(message),
    onClose: (_session, reason) => void closes.push(reason),
  });
  client.send("hello");
  client.send(new Uint8Array([1, 2, 3]));
  await until(() => replies.length === 2, 5000, "two replies");
  assert.deepEqual(received, ["hello", new Uint8Array([1, 2, 3])]);
  assert.deepEqual(replies, ["hello", new Uint8Array([1, 2, 3])]);
  assert.deepEqual(closes, []);
});

Deno.test("websocket: connect() with webSocketMessages() (no role given) takes the client role", async () => {
  await using server = wsServer();
  const replies: (string | Uint8Array)[] = [];
  await using client = await connect({
    transport: "websocket",
    url: `ws://127.0.0.1:${server.addr.port}/ws`,
    codec: webSocketMessages(),
    onMessage: (_session, message) => void replies.push(message),
  });
  client.send("hello");
  await until(() => replies.length === 1, 5000, "the reply");
  assert.deepEqual(replies, ["hello"]);
});

Deno.test("websocket: a WebSocket codec of the wrong role is a TypeError naming it", async () => {
  await using server = wsServer();
  await assert.rejects(
    () =>
      connect({
        transport: "websocket",
        url: `ws://127.0.0.1:${server.addr.port}/ws`,
        codec: webSocketMessages({ role: "server" }),
      }),
    (error: Error) =>
      error instanceof TypeError && /role "server"/.test(error.message) &&
      /client/.test(error.message),
  );
  assert.throws(
    () => wsServer({ codec: webSocketMessages({ role: "client" }) }),
    (error: Error) =>
      error instanceof TypeError && /role "client"/.test(error.message) &&
      /server/.test(error.message),
  );
});

// ---- A3: the inner codec's limit applies to each WebSocket message --------

Deno.test("websocket: lines({ maxLineBytes }) limits each text message, with 1009 naming it", async () => {
  const errors: unknown[] = [];
  await using server = wsServer({
    codec: lines({ maxLineBytes: 4096 }),
    onError: (error: unknown) => void errors.push(error),
  });
  const ok = await RawWebSocket.open(server.addr.port);
  await ok.frame(Opcode.text, "x".repeat(4096));
  assert.deepEqual(await ok.messages(1), ["x".repeat(4096)]);
  await ok.dispose();
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.text, "x".repeat(100_000));
  const outcome = await raw.ended();
  assert.equal(outcome.closeCode, 1009);
  assert.equal(
    outcome.closeReason,
    "message of 100000 bytes exceeds maxLineBytes (4096)",
  );
  assert.deepEqual(outcome.messages, []);
  await until(() => server.stats().sessionsOpen === 0);
  assert.equal(server.stats().closedByReason[CloseReason.FrameTooLarge], 1);
  const error = errors.find((e) => e instanceof MessageTooBigError);
  assert.ok(error instanceof MessageTooBigError);
  assert.equal(error.option, "maxLineBytes");
  assert.equal(error.limit, 4096);
});

Deno.test("websocket: json({ maxFrameBytes }) limits each message; a header over it is refused before its payload", async () => {
  await using server = wsServer({ codec: json({ maxFrameBytes: 1000 }) });
  const big = JSON.stringify({ a: "y".repeat(500_000) });
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.text, big);
  const outcome = await raw.ended();
  assert.equal(outcome.closeCode, 1009);
  assert.match(outcome.closeReason ?? "", /exceeds maxFrameBytes \(1000\)/);
  // Only the header of a 2000-byte frame: refused without waiting for it.
  const header = await RawWebSocket.open(server.addr.port);
  await header.write(new Uint8Array([0x81, 0xfe, 0x07, 0xd0, 1, 2, 3, 4]));
  const early = await header.ended(3000);
  assert.equal(early.closeCode, 1009);
  assert.equal(
    early.closeReason,
    "message of 2000 bytes exceeds maxFrameBytes (1000)",
  );
});

Deno.test("websocket: lengthPrefixed({ maxFrameBytes }) limits each binary message", async () => {
  await using server = wsServer({
    codec: lengthPrefixed({ maxFrameBytes: 16 }),
    onMessage: () => {},
  });
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.binary, new Uint8Array(17));
  const outcome = await raw.ended();
  assert.equal(outcome.closeCode, 1009);
  assert.equal(
    outcome.closeReason,
    "message of 17 bytes exceeds maxFrameBytes (16)",
  );
});

Deno.test("websocket: the smaller of maxMessageBytes and the codec's limit applies, and is the one named", async () => {
  await using server = wsServer({
    codec: lines({ maxLineBytes: 4096 }),
    maxMessageBytes: 100,
  });
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.text, "x".repeat(101));
  const outcome = await raw.ended();
  assert.equal(outcome.closeCode, 1009);
  assert.equal(
    outcome.closeReason,
    "message of 101 bytes exceeds maxMessageBytes (100)",
  );
});

Deno.test("websocket: a connect() client applies its codec's limit to server messages", async () => {
  await using server = wsServer({
    onOpen: (session: { send(m: string): boolean }) =>
      void session.send("z".repeat(64)),
  });
  const closed = Promise.withResolvers<string>();
  await using _client = await connect({
    transport: "websocket",
    url: `ws://127.0.0.1:${server.addr.port}/ws`,
    codec: lines({ maxLineBytes: 10 }),
    onError: () => {},
    onClose: (_session, reason) => closed.resolve(reason),
  });
  assert.equal(
    await within(closed.promise, 5000, "close"),
    CloseReason.FrameTooLarge,
  );
});

// ---- A4: maxMessageBytes of listen() applies to webSocketMessages() -------

Deno.test("websocket: maxMessageBytes given to listen() applies with webSocketMessages(); 1009 and onError name it", async () => {
  const errors: unknown[] = [];
  await using server = wsServer({
    codec: webSocketMessages(),
    maxMessageBytes: 1000,
    onError: (error: unknown) => void errors.push(error),
  });
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.binary, new Uint8Array(2000));
  const outcome = await raw.ended();
  assert.equal(outcome.closeCode, 1009);
  assert.equal(
    outcome.closeReason,
    "message of 2000 bytes exceeds maxMessageBytes (1000)",
  );
  await until(() => errors.length > 0);
  const error = errors[0];
  assert.ok(error instanceof MessageTooBigError);
  assert.ok(error instanceof FrameTooLargeError);
  assert.equal(error.name, "MessageTooBigError");
  assert.equal(error.option, "maxMessageBytes");
  assert.equal(error.size, 2000);
  assert.equal(error.limit, 1000);
  assert.equal(error.closeCode, 1009);
  assert.match(error.message, /exceeds maxMessageBytes \(1000\)/);
});

Deno.test("websocket: a maxMessageBytes above the default applies to webSocketMessages() too", async () => {
  await using server = wsServer({
    codec: webSocketMessages(),
    maxMessageBytes: 2 << 20,
    onMessage: (
      session: { send(m: string | Uint8Array): boolean },
      message: Uint8Array,
    ) => void session.send(String(message.length)),
  });
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.binary, new Uint8Array(1_500_000));
  assert.deepEqual(await raw.messages(1), ["1500000"]);
  await raw.dispose();
});

Deno.test("upgradeWebSocket: maxMessageBytes applies with webSocketMessages() too", async () => {
  const sessions = new SessionManager<unknown, string | Uint8Array>();
  const errors: unknown[] = [];
  const codec = webSocketMessages();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      upgradeWebSocket(request, sessions, {
        codec,
        maxMessageBytes: 1000,
        onError: (error) => void errors.push(error),
      }).response,
  );
  const ws = new WebSocket(`ws://127.0.0.1:${http.addr.port}/`);
  const closed = new Promise<[number, string]>((resolve) => {
    ws.onclose = (e) => resolve([e.code, e.reason]);
  });
  await within(new Promise((r) => (ws.onopen = r)), 5000, "open");
  ws.send(new Uint8Array(2000));
  const [code] = await within(closed, 5000, "close");
  assert.equal(code, 1009);
  await until(() => errors.length > 0);
  assert.ok(errors[0] instanceof MessageTooBigError);
  assert.equal(errors[0].option, "maxMessageBytes");
});

// ---- A10 (a): a refused upgrade gets an HTTP answer ------------------------

Deno.test("websocket: an upgrade over maxConnectionsPerIp gets 429, over maxConnections 503", async () => {
  await using perIp = wsServer({ maxConnectionsPerIp: 1 });
  const first = await RawWebSocket.open(perIp.addr.port);
  const answer = await exchange(perIp.addr.port, upgradeRequest());
  assert.match(answer, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
  assert.match(answer, /\r\nConnection: close\r\n/i);
  assert.match(answer, /\r\n\r\n.+/);
  await first.dispose();
  await using full = wsServer({ maxConnections: 1 });
  const one = await RawWebSocket.open(full.addr.port);
  const busy = await exchange(full.addr.port, upgradeRequest());
  assert.match(busy, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  assert.match(busy, /\r\nConnection: close\r\n/i);
  await one.dispose();
  assert.equal(perIp.stats().rejected.maxConnectionsPerIp, 1);
  assert.equal(full.stats().rejected.maxConnections, 1);
});

Deno.test("websocket: a browser-like client over maxConnections sees the upgrade fail", async () => {
  await using server = wsServer({ maxConnections: 1 });
  const first = await RawWebSocket.open(server.addr.port);
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/ws`);
  const ended = new Promise<string>((resolve) => {
    ws.onerror = () => resolve("error");
    ws.onopen = () => resolve("open");
  });
  const closed = new Promise((resolve) => (ws.onclose = resolve));
  assert.equal(await within(ended, 5000, "the refusal"), "error");
  await within(closed, 5000, "close");
  await first.dispose();
});

// ---- A10 (b): the transport follows a ws: URL ------------------------------

Deno.test('websocket: connect({ url: "ws://…" }) without transport connects over WebSocket', async () => {
  await using server = wsServer();
  const replies: string[] = [];
  await using client = await connect({
    url: `ws://127.0.0.1:${server.addr.port}/ws`,
    onMessage: (_session, line: string) => void replies.push(line),
  });
  client.send("hi");
  await until(() => replies.length === 1, 5000, "the reply");
  assert.deepEqual(replies, ["hi"]);
});

Deno.test("websocket: connect() with a url and a non-websocket transport is a TypeError naming both", async () => {
  for (const transport of ["tcp", "unix"] as const) {
    await assert.rejects(
      () =>
        connect(
          {
            transport,
            url: "ws://127.0.0.1:1/ws",
            port: 1,
            path: "/tmp/x.sock",
          } as Parameters<typeof connect>[0],
        ),
      (error: Error) =>
        error instanceof TypeError && /url/.test(error.message) &&
        error.message.includes(`"${transport}"`),
    );
  }
});

// ---- A10 (c): a 64-bit length prints exactly -------------------------------

Deno.test("websocket: a 2^63-1 length header is reported exactly", async () => {
  const parser = new FrameParser({ role: "server" });
  const header = new Uint8Array([
    0x82,
    0xff,
    0x7f,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    1,
    2,
    3,
    4,
  ]);
  assert.throws(
    () => parser.decode(header.slice(), () => {}),
    (error: Error) =>
      error instanceof MessageTooBigError &&
      error.message.includes("9223372036854775807"),
  );
  await using server = wsServer({ codec: webSocketMessages() });
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.write(header.slice());
  const outcome = await raw.ended();
  assert.equal(outcome.closeCode, 1009);
  assert.equal(
    outcome.closeReason,
    "message of 9223372036854775807 bytes exceeds maxMessageBytes (1048576)",
  );
});

// ---- A10 (d): each protocol violation says which rule ---------------------

Deno.test("websocket: each protocol violation closes with its own code and reason", async () => {
  const reasons: string[] = [];
  await using server = wsServer({
    onClose: (_s: unknown, reason: string) => void reasons.push(reason),
  });
  const port = server.addr.port;
  const m = (b0: number, ...rest: number[]) =>
    new Uint8Array([b0, 0x80 | (rest[0] ?? 0), 0, 0, 0, 0, ...rest.slice(1)]);
  const cases: [Uint8Array, number, string][] = [
    [new Uint8Array([0x81, 0x02, 0x68, 0x69]), 1002, "unmasked client frame"],
    [m(0xc1), 1002, "reserved bits set"],
    [m(0x83), 1002, "reserved opcode 3"],
    [m(0x8b), 1002, "reserved opcode 11"],
    [m(0x09, 1, 0x78), 1002, "fragmented control frame"],
    [m(0x89, 126, 0, 126), 1002, "control frame too long"],
    [m(0x80, 1, 0x78), 1002, "continuation without start"],
    [
      new Uint8Array([...m(0x01, 1, 0x78), ...m(0x81, 1, 0x78)]),
      1002,
      "new message inside a fragmented one",
    ],
    [m(0x81, 2, 0xc3, 0x28), 1007, "invalid utf-8"],
    [m(0x88, 2, 0x03, 0xed), 1002, "bad close code"],
    [m(0x88, 1, 0x03), 1002, "bad close frame"],
    [
      new Uint8Array([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
      1002,
      "bad frame length",
    ],
  ];
  for (const [bytes, code, reason] of cases) {
    const raw = await RawWebSocket.open(port);
    await raw.write(bytes);
    const outcome = await raw.ended();
    assert.equal(outcome.closeCode, code, reason);
    assert.equal(outcome.closeReason, reason);
  }
  await until(() => reasons.length === cases.length);
  // The session's close reason stays one stable constant.
  assert.deepEqual(
    new Set(reasons),
    new Set([CloseReason.DecodeError]),
  );
});

Deno.test("websocket: a codec mapping refusal says which rule too", async () => {
  await using jsonServer = wsServer({ codec: json() });
  const bad = await RawWebSocket.open(jsonServer.addr.port);
  await bad.frame(Opcode.text, "{nope");
  const invalid = await bad.ended();
  assert.equal(invalid.closeCode, 1007);
  assert.equal(invalid.closeReason, "invalid json");
  const binary = await RawWebSocket.open(jsonServer.addr.port);
  await binary.frame(Opcode.binary, new Uint8Array([1]));
  const unsupported = await binary.ended();
  assert.equal(unsupported.closeCode, 1003);
  assert.equal(unsupported.closeReason, "binary message for json()");
});
