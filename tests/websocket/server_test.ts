// listen({ transport: "websocket" }) end to end on loopback: the codec
// mappings, the hostile-peer rules of RFC 6455 (each answered with the
// right close code or HTTP status), the handshake's limits and timeout,
// fuzzing, a shared SessionManager with a TCP server, shutdown, and
// connect({ transport: "websocket" }).
import assert from "node:assert/strict";
import {
  closeWebSocket,
  connect,
  json,
  lengthPrefixed,
  lines,
  microSocket,
  type MicroSocketMessage,
  peerCloseCode,
  type Server,
  SessionManager,
  webSocketMessages,
  webSocketRequest,
} from "../../mod.ts";
import { Opcode } from "../../src/websocket/_frame_writer.ts";
import { testCertificates } from "../_tls_certs.ts";
import { exchange, RawWebSocket, upgradeRequest } from "./_ws_raw.ts";
import { dial, testServer } from "../_server.ts";
import {
  delay,
  LineReader,
  seededRandom,
  until,
  utf8,
  within,
  writeAll,
} from "../_util.ts";

function echoServer(
  options: Record<string, unknown> = {},
): Server<unknown, string, string, Deno.NetAddr> {
  return testServer({
    transport: "websocket",
    path: "/ws",
    onMessage: (session, line: string) => void session.send(line),
    onError: () => {},
    ...options,
  }) as Server<unknown, string, string, Deno.NetAddr>;
}

/** Opens Deno's WebSocket and collects what it receives. */
async function browserLike(url: string) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const got: (string | Uint8Array)[] = [];
  ws.onmessage = (e) =>
    got.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
  const closed = new Promise<[number, string]>((resolve) => {
    ws.onclose = (e) => resolve([e.code, e.reason]);
  });
  await within(
    new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    }),
    5000,
    "open",
  );
  return { ws, got, closed };
}

Deno.test("websocket: lines() maps one text message per line, split on line feeds", async () => {
  await using server = echoServer();
  const { ws, got, closed } = await browserLike(
    `ws://127.0.0.1:${server.addr.port}/ws`,
  );
  ws.send("hello ✓");
  ws.send("a\nb\r\n");
  await until(() => got.length === 3, 5000, "echoes");
  assert.deepEqual(got, ["hello ✓", "a", "b"]);
  ws.close(1000);
  assert.deepEqual(await closed, [1000, ""]);
  await until(() => server.stats().sessionsOpen === 0);
  assert.deepEqual(server.stats().closedByReason, { eof: 1 });
});

Deno.test("websocket: json() maps one text message per value; invalid JSON closes with 1007", async () => {
  await using server = testServer({
    transport: "websocket",
    codec: json<{ n: number }>(),
    onMessage: (session, value) => void session.send({ n: value.n + 1 }),
    onError: () => {},
  });
  const { ws, got, closed } = await browserLike(
    `ws://127.0.0.1:${server.addr.port}/`,
  );
  ws.send('{"n":1}');
  await until(() => got.length === 1);
  assert.deepEqual(got, ['{"n":2}']);
  ws.send("{oops");
  assert.equal((await closed)[0], 1007);
});

Deno.test("websocket: lengthPrefixed() maps binary payloads; a text message closes with 1003", async () => {
  await using server = testServer({
    transport: "websocket",
    codec: lengthPrefixed(),
    onMessage: (session, payload) => void session.send(payload.reverse()),
    onError: () => {},
  });
  const { ws, got, closed } = await browserLike(
    `ws://127.0.0.1:${server.addr.port}/`,
  );
  ws.send(new Uint8Array([1, 2, 3]));
  await until(() => got.length === 1);
  assert.deepEqual(got, [new Uint8Array([3, 2, 1])]);
  ws.send("text");
  assert.equal((await closed)[0], 1003);
});

Deno.test("websocket: microSocket() frames travel one per binary message, client to server", async () => {
  const seen: MicroSocketMessage[] = [];
  await using server = testServer({
    transport: "websocket",
    codec: microSocket(),
    onMessage: (session, message) => {
      seen.push({ ...message });
      session.send({ ...message, method: "Reply" });
    },
  });
  const got: MicroSocketMessage[] = [];
  await using client = await connect({
    transport: "websocket",
    url: `ws://127.0.0.1:${server.addr.port}/`,
    codec: microSocket(),
    onMessage: (_session, message) => void got.push({ ...message }),
  });
  client.send({ module: "user", method: "Login", name: "ada" });
  await until(() => got.length === 1);
  assert.deepEqual(seen, [{ module: "user", method: "Login", name: "ada" }]);
  assert.deepEqual(got, [{ module: "user", method: "Reply", name: "ada" }]);
});

Deno.test("websocket: webSocketMessages() echoes text and binary as they are; closeWebSocket sends a chosen code", async () => {
  await using server = testServer({
    transport: "websocket",
    codec: webSocketMessages(),
    onMessage: (session, message) => {
      if (message === "bye") void closeWebSocket(session, 4001, "as asked");
      else session.send(message);
    },
  });
  const { ws, got, closed } = await browserLike(
    `ws://127.0.0.1:${server.addr.port}/`,
  );
  ws.send("text");
  ws.send(new Uint8Array([9, 8]));
  await until(() => got.length === 2);
  assert.deepEqual(got, ["text", new Uint8Array([9, 8])]);
  ws.send("bye");
  assert.deepEqual(await closed, [4001, "as asked"]);
});

Deno.test("websocket: an unmasked client frame is closed with 1002", async () => {
  await using server = echoServer();
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.text, "hi", true, false);
  const outcome = await raw.ended();
  assert.equal(outcome.closeCode, 1002);
  assert.deepEqual(outcome.messages, []);
});

Deno.test("websocket: a message over maxMessageBytes, or a 64-bit length, closes with 1009 before it is stored", async () => {
  await using server = echoServer({ maxMessageBytes: 1024 });
  // A header announcing 2^62 bytes, and nothing else.
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.write(
    new Uint8Array([0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
  );
  assert.equal((await raw.ended()).closeCode, 1009);
  // Fragments that add up past the limit.
  const raw2 = await RawWebSocket.open(server.addr.port);
  await raw2.frame(Opcode.text, "x".repeat(600), false);
  await raw2.frame(Opcode.continuation, "x".repeat(600), true);
  assert.equal((await raw2.ended()).closeCode, 1009);
  await until(() => server.stats().sessionsOpen === 0);
  assert.equal(server.stats().closedByReason["frame too large"], 2);
});

Deno.test("websocket: invalid UTF-8 in a text message closes with 1007", async () => {
  await using server = echoServer();
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.text, new Uint8Array([0x61, 0xff, 0xfe]));
  assert.equal((await raw.ended()).closeCode, 1007);
});

Deno.test("websocket: fragmented or oversized control frames, reserved bits and opcodes close with 1002", async () => {
  await using server = echoServer();
  const port = server.addr.port;
  const cases: [string, (raw: RawWebSocket) => Promise<void>][] = [
    [
      "fragmented ping",
      (raw) => raw.write(new Uint8Array([0x09, 0x81, 0, 0, 0, 0, 0x78])),
    ],
    ["126-byte ping", (raw) =>
      raw.write(
        new Uint8Array([
          0x89,
          0xfe,
          0,
          126,
          0,
          0,
          0,
          0,
          ...new Uint8Array(126),
        ]),
      )],
    // RSV1 set on a text frame (no extension was negotiated).
    [
      "reserved bit",
      (raw) => raw.write(new Uint8Array([0xc1, 0x80, 0, 0, 0, 0])),
    ],
    ["opcode 3", (raw) => raw.write(new Uint8Array([0x83, 0x80, 0, 0, 0, 0]))],
    ["opcode 11", (raw) => raw.write(new Uint8Array([0x8b, 0x80, 0, 0, 0, 0]))],
    ["stray continuation", (raw) => raw.frame(Opcode.continuation, "x")],
  ];
  for (const [name, send] of cases) {
    const raw = await RawWebSocket.open(port);
    await send(raw);
    assert.equal((await raw.ended()).closeCode, 1002, name);
  }
});

Deno.test("websocket: pings are answered with the same payload, a ping flood is closed with 1008", async () => {
  await using server = echoServer();
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.ping, "one");
  await until(() => raw.outcome.pongs.length === 1);
  assert.deepEqual(raw.outcome.pongs, ["one"]);
  const flood = new Uint8Array(6 * 200);
  for (let i = 0; i < 200; i++) flood.set([0x89, 0x80, 1, 2, 3, 4], i * 6);
  await raw.write(flood);
  const outcome = await raw.ended();
  assert.equal(outcome.closeCode, 1008);
  assert.ok(outcome.pongs.length <= 33, `${outcome.pongs.length} pongs`);
});

Deno.test("websocket: a slowloris handshake is cut by handshakeTimeout and holds no slot after", async () => {
  await using server = echoServer({ handshakeTimeout: 200, maxConnections: 1 });
  const started = Date.now();
  const text = await exchange(
    server.addr.port,
    utf8("GET /ws HTTP/1.1\r\nHost: x\r\n"),
    3000,
  );
  assert.equal(text, "");
  const took = Date.now() - started;
  assert.ok(took >= 150 && took < 2000, `${took} ms`);
  await until(() => server.stats().websocket?.handshakeFailed === 1);
  // The slot is free again: a real client gets in.
  const raw = await RawWebSocket.open(server.addr.port);
  await raw.frame(Opcode.text, "ok");
  assert.deepEqual(await raw.messages(1), ["ok"]);
  await raw.dispose();
});

Deno.test("websocket: head size and header count limits answer 431", async () => {
  await using server = echoServer({ maxHeadBytes: 1024, maxHeaders: 8 });
  const port = server.addr.port;
  const big = await exchange(
    port,
    upgradeRequest("/ws", `X-Big: ${"a".repeat(2000)}\r\n`),
  );
  assert.match(big, /^HTTP\/1\.1 431 /);
  let many = "";
  for (let i = 0; i < 20; i++) many += `X-${i}: ${i}\r\n`;
  assert.match(
    await exchange(port, upgradeRequest("/ws", many)),
    /^HTTP\/1\.1 431 /,
  );
  await until(() => server.stats().websocket?.handshakeRefused === 2);
});

Deno.test("websocket: plain HTTP gets serve()'s answer or 404; bad upgrades get 400/403/404/426", async () => {
  await using server = echoServer({
    origins: ["http://good.example"],
    serve: (request: Request) =>
      new URL(request.url).pathname === "/"
        ? new Response("<p>page</p>", {
          headers: { "content-type": "text/html" },
        })
        : new Response("nope", { status: 404 }),
  });
  const port = server.addr.port;
  const page = await exchange(port, utf8("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  assert.match(page, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(page, /Content-Type: text\/html\r\n/);
  assert.ok(page.endsWith("<p>page</p>"));
  assert.match(
    await exchange(port, utf8("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")),
    /^HTTP\/1\.1 404 /,
  );
  assert.match(
    await exchange(
      port,
      upgradeRequest("/ws", "Origin: http://evil.example\r\n"),
    ),
    /^HTTP\/1\.1 403 /,
  );
  assert.match(
    await exchange(port, upgradeRequest("/other")),
    /^HTTP\/1\.1 404 /,
  );
  assert.match(
    await exchange(
      port,
      utf8(
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
      ),
    ),
    /^HTTP\/1\.1 426 /,
  );
  assert.match(
    await exchange(port, utf8("garbage\r\n\r\n")),
    /^HTTP\/1\.1 400 /,
  );
  // Without serve(): 404.
  await using bare = echoServer();
  assert.match(
    await exchange(bare.addr.port, utf8("GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
    /^HTTP\/1\.1 404 /,
  );
  const stats = server.stats();
  assert.equal(stats.sessionsTotal, 0);
  assert.equal(stats.websocket?.httpRequests, 2);
  assert.equal(stats.websocket?.handshakeRefused, 4);
  assert.equal(stats.websocket?.handshakeFailed, 0);
  assert.equal(bare.stats().websocket?.httpRequests, 1);
});

Deno.test("websocket: peers that hang up during the handshake, or send garbage, harm no one", async () => {
  let errors = 0;
  await using server = echoServer({ onError: () => errors++ });
  const port = server.addr.port;
  const good = await RawWebSocket.open(port);
  const random = seededRandom(10);
  const request = upgradeRequest();
  for (let i = 0; i < 40; i++) {
    const conn = await dial(port);
    const cut = Math.floor(random() * request.length);
    await writeAll(conn, request.subarray(0, cut)).catch(() => {});
    if (i % 2 === 0) {
      const garbage = new Uint8Array(1 + Math.floor(random() * 300));
      for (let j = 0; j < garbage.length; j++) {
        garbage[j] = Math.floor(random() * 256);
      }
      await writeAll(conn, garbage).catch(() => {});
    }
    conn.close();
  }
  await good.frame(Opcode.text, "still here");
  assert.deepEqual(await good.messages(1), ["still here"]);
  await good.dispose();
  await until(() => server.stats().sessionsOpen === 0);
  assert.equal(errors, 0);
  // Each of the 40 is counted: cut short, or refused for its garbage.
  const counted = () => {
    const { handshakeFailed, handshakeRefused } = server.stats().websocket!;
    return handshakeFailed + handshakeRefused;
  };
  await until(() => counted() === 40, 5000, "40 handshakes counted");
});

Deno.test("websocket: fuzz — random frames and garbage cut at random close only their own session", async () => {
  await using server = echoServer({ maxMessageBytes: 4096 });
  const port = server.addr.port;
  const good = await RawWebSocket.open(port);
  const random = seededRandom(7);
  const opcodes = [0, 1, 2, 3, 8, 9, 10, 15];
  for (let round = 0; round < 30; round++) {
    const raw = await RawWebSocket.open(port);
    const parts: number[] = [];
    for (let f = 0; f < 1 + Math.floor(random() * 6); f++) {
      if (random() < 0.3) {
        for (let j = 0; j < 1 + random() * 40; j++) {
          parts.push(Math.floor(random() * 256));
        }
        continue;
      }
      const op = opcodes[Math.floor(random() * opcodes.length)]!;
      const fin = random() < 0.7 ? 0x80 : 0;
      const len = Math.floor(random() * 200);
      parts.push(fin | op, 0x80 | Math.min(len, 125), 1, 2, 3, 4);
      for (let j = 0; j < Math.min(len, 125); j++) {
        parts.push(Math.floor(random() * 256));
      }
    }
    const bytes = new Uint8Array(parts);
    let at = 0;
    while (at < bytes.length) {
      const size = 1 + Math.floor(random() * 16);
      await raw.write(bytes.subarray(at, at + size));
      at += size;
    }
    await raw.dispose();
    await good.frame(Opcode.text, `round ${round}`);
  }
  const got = await good.messages(30);
  assert.equal(got.length, 30);
  assert.equal(got[29], "round 29");
  await good.dispose();
  await until(() => server.stats().sessionsOpen === 0);
});

Deno.test("websocket: one SessionManager holds TCP and WebSocket sessions; a broadcast reaches both", async () => {
  const sessions = new SessionManager<unknown, string, string>();
  const common = {
    sessions,
    onMessage: (_s: unknown, line: string) =>
      void sessions.broadcast(`all: ${line}`),
  };
  await using tcp = testServer({ ...common, codec: lines() });
  await using web = testServer({ ...common, transport: "websocket" });
  const conn = await dial(tcp.addr.port);
  const reader = new LineReader(conn);
  const { ws, got } = await browserLike(`ws://127.0.0.1:${web.addr.port}/`);
  await until(() => sessions.size === 2);
  const ids = [...sessions].map((s) => s.id);
  assert.equal(new Set(ids).size, 2, "ids are unique across both servers");
  ws.send("from web");
  assert.equal(await reader.next(), "all: from web");
  await writeAll(conn, utf8("from tcp\n"));
  assert.equal(await reader.next(), "all: from tcp");
  await until(() => got.length === 2);
  assert.deepEqual(got, ["all: from web", "all: from tcp"]);
  assert.equal(tcp.stats().sessionsOpen, 1);
  assert.equal(web.stats().sessionsOpen, 1);
  conn.close();
  ws.close();
  await until(() => sessions.size === 0);
});

Deno.test("websocket: shutdown sends 1001 after what is queued; onClose sees the reason", async () => {
  const reasons: string[] = [];
  const server = echoServer({
    onClose: (_s: unknown, r: string) => void reasons.push(r),
  });
  const { ws, got, closed } = await browserLike(
    `ws://127.0.0.1:${server.addr.port}/ws`,
  );
  ws.send("x");
  await until(() => got.length === 1);
  for (const session of server.sessions) session.send("last");
  await server.shutdown();
  assert.deepEqual(await closed, [1001, "server shutdown"]);
  assert.deepEqual(got, ["x", "last"]);
  assert.deepEqual(reasons, ["server shutdown"]);
});

Deno.test("websocket: connect() masks its frames, keeps a heartbeat, reconnects, and reads the peer's close code", async () => {
  const codes: (number | undefined)[] = [];
  const server = echoServer({
    onClose: (s: Parameters<typeof peerCloseCode>[0]) =>
      void codes.push(peerCloseCode(s)),
  });
  const port = server.addr.port;
  const got: string[] = [];
  let opened = 0;
  const client = await connect({
    transport: "websocket",
    url: `ws://127.0.0.1:${port}/ws`,
    heartbeatInterval: 50,
    reconnect: { initialDelay: 20 },
    onOpen: () => void opened++,
    onMessage: (_s, line) => void got.push(line),
  });
  client.send("one");
  await until(() => got.length === 1);
  await delay(300); // several heartbeat intervals: pings answered, no timeout
  assert.equal(opened, 1);
  // Kick the session: the client comes back.
  for (const session of server.sessions) await session.close("kicked");
  await until(() => opened === 2);
  client.send("two");
  await until(() => got.length === 2);
  assert.deepEqual(got, ["one", "two"]);
  await client.close();
  await until(() => server.sessions.size === 0);
  assert.equal(codes[codes.length - 1], 1000);
  await server.shutdown();
});

Deno.test("websocket: with wss (tls) the same server speaks TLS", async () => {
  const { cert, key, ca } = await testCertificates();
  await using server = echoServer({ tls: { cert, key } });
  const got: string[] = [];
  await using client = await connect({
    transport: "websocket",
    url: `wss://localhost:${server.addr.port}/ws`,
    tls: { caCerts: [ca] },
    onMessage: (_s, line) => void got.push(line),
  });
  client.send("secure");
  await until(() => got.length === 1);
  assert.deepEqual(got, ["secure"]);
});

Deno.test("websocket: webSocketRequest() gives data() and onOpen the upgrade request", async () => {
  const seen: string[] = [];
  await using server = testServer<{ room: string }, string, string>({
    transport: "websocket",
    protocols: ["chat.v1"],
    data: (session) => ({
      room: new URLSearchParams(
        webSocketRequest(session)?.target.split("?")[1],
      ).get("room") ?? "lobby",
    }),
    onOpen: (session) => {
      const request = webSocketRequest(session)!;
      seen.push(
        `${request.path} ${request.protocol} ${
          request.headers.get("origin")
        } ${session.data.room}`,
      );
    },
  });
  const ws = new WebSocket(
    `ws://127.0.0.1:${server.addr.port}/ws?room=den`,
    ["chat.v1"],
  );
  await within(new Promise((r) => (ws.onopen = r)), 5000, "open");
  await until(() => seen.length === 1);
  assert.equal(seen[0], "/ws chat.v1 undefined den");
  const closed = new Promise((r) => (ws.onclose = r));
  ws.close();
  await closed;
});

Deno.test("websocket: maxConnectionsPerIp and onAccept apply before the handshake", async () => {
  let accepts = 0;
  await using server = echoServer({
    maxConnectionsPerIp: 1,
    onAccept: () => accepts++ === 0, // the first only
  });
  const port = server.addr.port;
  const first = await RawWebSocket.open(port);
  // Over the per-IP limit: told so (429), then closed.
  assert.match(
    await exchange(port, upgradeRequest()),
    /^HTTP\/1\.1 429 Too Many Requests\r\n/,
  );
  await first.dispose();
  await until(() => server.stats().sessionsOpen === 0);
  // Vetoed: closed without a response.
  assert.equal(await exchange(port, upgradeRequest()), "");
  const stats = server.stats();
  assert.equal(stats.rejected.maxConnectionsPerIp, 1);
  assert.equal(stats.rejected.vetoed, 1);
});

Deno.test("websocket: shutdown during a pending handshake finishes at once", async () => {
  const server = echoServer({ handshakeTimeout: 0 });
  const conn = await dial(server.addr.port);
  await writeAll(conn, utf8("GET /ws HTTP/1.1\r\n"));
  await until(() => server.stats().sessionsTotal === 0);
  const started = Date.now();
  await within(server.shutdown(), 3000, "shutdown");
  assert.ok(Date.now() - started < 1000);
  conn.close();
});
