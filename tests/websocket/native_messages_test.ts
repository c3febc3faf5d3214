// upgradeWebSocket() at message level: each message of Deno's native
// WebSocket is one message of the codec (the same mapping and limits as
// listen({ transport: "websocket" })), each message a session sends is one
// native send(); the request is known to webSocketRequest(); and options
// that don't apply to it are refused, naming them.
import assert from "node:assert/strict";
import {
  closeWebSocket,
  type Codec,
  json,
  lengthPrefixed,
  lines,
  microSocket,
  type Session,
  SessionManager,
  upgradeWebSocket,
  type UpgradeWebSocketOptions,
  webSocketMessages,
  type WebSocketRequest,
  webSocketRequest,
} from "../../mod.ts";
import { delay, until, within } from "../_util.ts";

interface Native<In, Out> extends AsyncDisposable {
  readonly port: number;
  readonly sessions: Session<unknown, In, Out>[];
  readonly errors: unknown[];
}

// A Deno.serve app whose upgrade requests become sessions with `options`.
function nativeServer<In, Out>(
  options: UpgradeWebSocketOptions<unknown, In, Out>,
): Native<In, Out> {
  const sessions = new SessionManager<unknown, In, Out>();
  const opened: Session<unknown, In, Out>[] = [];
  const errors: unknown[] = [];
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const upgraded = upgradeWebSocket(request, sessions, {
        onError: (error) => void errors.push(error),
        ...options,
      });
      upgraded.opened.then((s) => s && opened.push(s));
      return upgraded.response;
    },
  );
  return {
    port: http.addr.port,
    sessions: opened,
    errors,
    async [Symbol.asyncDispose]() {
      await Promise.all([...sessions].map((s) => s.close()));
      await http.shutdown();
    },
  };
}

interface Peer extends AsyncDisposable {
  readonly ws: WebSocket;
  readonly got: (string | Uint8Array)[];
  readonly closed: Promise<CloseEvent>;
}

async function peer(port: number, path = "/", protocols?: string[]) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols);
  ws.binaryType = "arraybuffer";
  const got: (string | Uint8Array)[] = [];
  ws.onmessage = (e) =>
    got.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
  const closed = new Promise<CloseEvent>((r) => (ws.onclose = r));
  await within(new Promise((r) => (ws.onopen = r)), 5000, "open");
  return {
    ws,
    got,
    closed,
    async [Symbol.asyncDispose]() {
      if (ws.readyState !== WebSocket.CLOSED) {
        ws.close();
        await within(closed, 5000, "close");
      }
    },
  } satisfies Peer;
}

function echo<In, Out>(codec: Codec<In, Out>) {
  return nativeServer<In, Out>({
    codec,
    onMessage: (s, m) => void s.send(m as unknown as Out),
  });
}

Deno.test("upgradeWebSocket: each codec's messages map onto native messages both ways", async (t) => {
  await t.step("lines(): text messages, line feeds split", async () => {
    await using server = echo(lines({ maxLineBytes: 100_000 }));
    await using p = await peer(server.port);
    p.ws.send("one");
    p.ws.send("two\nthree\r\n");
    p.ws.send("é".repeat(40_000)); // 80,000 bytes: a 64-bit length
    p.ws.send("y".repeat(1000)); // a 16-bit length
    await until(() => p.got.length === 5);
    assert.deepEqual(p.got, [
      "one",
      "two",
      "three",
      "é".repeat(40_000),
      "y".repeat(1000),
    ]);
  });
  await t.step("json(): one value per text message", async () => {
    await using server = echo(json());
    await using p = await peer(server.port);
    p.ws.send('{"a":[1,"é"]}');
    await until(() => p.got.length === 1);
    assert.deepEqual(p.got, ['{"a":[1,"é"]}']);
  });
  await t.step("lengthPrefixed(): one payload per binary message", async () => {
    await using server = echo(lengthPrefixed());
    await using p = await peer(server.port);
    p.ws.send(new Uint8Array([1, 2, 3]));
    p.ws.send(new Uint8Array(100_000).fill(7));
    await until(() => p.got.length === 2);
    assert.deepEqual(p.got[0], new Uint8Array([1, 2, 3]));
    assert.deepEqual(p.got[1], new Uint8Array(100_000).fill(7));
  });
  await t.step("webSocketMessages(): text and binary as they are", async () => {
    await using server = echo(webSocketMessages());
    await using p = await peer(server.port);
    p.ws.send("text 😀");
    p.ws.send(new Uint8Array([0xff, 0]));
    p.ws.send("");
    await until(() => p.got.length === 3);
    assert.deepEqual(p.got, ["text 😀", new Uint8Array([0xff, 0]), ""]);
  });
  await t.step("microSocket(): whole frames in a binary message", async () => {
    const codec = microSocket();
    await using server = echo(codec);
    await using p = await peer(server.port);
    const a = codec.encode({ module: "user", method: "Login", name: "ada" });
    const b = codec.encode({ action: "say", text: "a|b" });
    const both = new Uint8Array(a.byteLength + b.byteLength);
    both.set(a);
    both.set(b, a.byteLength);
    p.ws.send(both); // two messages, each sent back on its own
    await until(() => p.got.length === 2);
    assert.deepEqual(p.got, [a, b]);
    p.ws.send(a.subarray(0, 5));
    const closed = await within(p.closed, 5000, "close");
    assert.equal(closed.code, 1007);
    assert.equal(closed.reason, "partial frame in binary message");
  });
  await t.step(
    "a text message for a binary codec closes with 1003",
    async () => {
      await using server = echo(lengthPrefixed());
      await using p = await peer(server.port);
      p.ws.send("text");
      const closed = await within(p.closed, 5000, "close");
      assert.equal(closed.code, 1003);
      assert.equal(closed.reason, "text message for lengthPrefixed()");
    },
  );
});

Deno.test("upgradeWebSocket: a session counts the bytes of the messages it received, not of frames made up for them", async () => {
  await using server = echo(webSocketMessages());
  await using p = await peer(server.port);
  p.ws.send("hello");
  p.ws.send(new Uint8Array(300));
  p.ws.send("é");
  await until(() => p.got.length === 3);
  // 5 + 300 + 2: the payloads. Frames (2, 4 and 2 header bytes and a
  // 4-byte mask each) never existed on this side.
  assert.equal(server.sessions[0]!.bytesIn, 307);
});

Deno.test("upgradeWebSocket: limits apply per message, in UTF-8 bytes, with 1009 naming the option", async (t) => {
  await t.step("the codec's own limit", async () => {
    await using server = echo(lines({ maxLineBytes: 10 }));
    await using p = await peer(server.port);
    p.ws.send("0123456789");
    await until(() => p.got.length === 1);
    p.ws.send("x".repeat(11));
    const closed = await within(p.closed, 5000, "close");
    assert.equal(closed.code, 1009);
    assert.equal(
      closed.reason,
      "message of 11 bytes exceeds maxLineBytes (10)",
    );
  });
  await t.step("what follows a message too big is discarded", async () => {
    const closes: string[] = [];
    await using server = nativeServer({
      codec: lines({ maxLineBytes: 10 }),
      // While "wait" is handled, the next messages queue up, to be read
      // together.
      onMessage: (s, m) => m === "wait" ? delay(200) : void s.send(m),
      onClose: (_s, reason) => void closes.push(reason),
    });
    await using p = await peer(server.port);
    p.ws.send("wait");
    p.ws.send("x".repeat(11));
    p.ws.send("after");
    p.ws.send("and after");
    const closed = await within(p.closed, 5000, "close");
    assert.equal(closed.code, 1009);
    await until(() => closes.length === 1);
    assert.deepEqual(closes, ["frame too large"]);
    assert.deepEqual(p.got, []);
    // The server goes on serving (a closing session discarding what it
    // read once spun on it).
    await using q = await peer(server.port);
    q.ws.send("still here");
    await until(() => q.got.length === 1);
    assert.deepEqual(q.got, ["still here"]);
  });
  await t.step("maxMessageBytes, counted in UTF-8 bytes", async () => {
    await using server = nativeServer({
      codec: webSocketMessages(),
      maxMessageBytes: 60,
      onMessage: (s, m) => void s.send(m),
    });
    await using p = await peer(server.port);
    p.ws.send("é".repeat(30)); // 60 bytes
    await until(() => p.got.length === 1);
    p.ws.send("é".repeat(31)); // 31 characters, 62 bytes
    const closed = await within(p.closed, 5000, "close");
    assert.equal(closed.code, 1009);
    assert.equal(
      closed.reason,
      "message of 62 bytes exceeds maxMessageBytes (60)",
    );
    assert.equal(server.errors.length, 1);
    assert.equal((server.errors[0] as Error).name, "MessageTooBigError");
  });
});

Deno.test("upgradeWebSocket: webSocketRequest() tells the upgrade request's path, query, headers and protocol", async () => {
  const seen: (WebSocketRequest | undefined)[] = [];
  await using server = nativeServer({
    protocol: "chat.v1",
    // Set before data() runs, as for listen({ transport: "websocket" }).
    data: (s) => void seen.push(webSocketRequest(s)),
    onOpen: (s) => void seen.push(webSocketRequest(s)),
  });
  await using _p = await peer(server.port, "/ws/room?name=den", ["chat.v1"]);
  await until(() => seen.length === 2);
  const request = seen[0]!;
  assert.ok(request !== undefined);
  assert.equal(seen[1], request);
  assert.equal(request.target, "/ws/room?name=den");
  assert.equal(request.path, "/ws/room");
  assert.equal(request.protocol, "chat.v1");
  assert.equal(request.headers.get("upgrade"), "websocket");
  assert.equal(request.headers.get("sec-websocket-protocol"), "chat.v1");
  assert.equal(request.headers.get("host"), `127.0.0.1:${server.port}`);
});

Deno.test("upgradeWebSocket: options that don't apply, and unknown ones, are a TypeError naming them", async () => {
  const sessions = new SessionManager();
  const request = () =>
    new Request("http://127.0.0.1/", {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ port: 8080 }, /Unknown option "port" for upgradeWebSocket\(\)/],
    [{ origins: ["https://my.app"] }, /Unknown option "origins"/],
    [{ transport: "websocket" }, /Unknown option "transport"/],
    [{ onmessage: () => {} }, /Unknown option "onmessage".*"onMessage"/],
    [{ noDelay: true }, /"noDelay" does not apply to upgradeWebSocket\(\)/],
    [{ frameTimeout: 1000 }, /"frameTimeout" does not apply/],
    [{ heartbeatMaxMissed: 2 }, /"heartbeatMaxMissed" does not apply/],
    [{ signal: AbortSignal.timeout(1) }, /"signal" does not apply/],
    [{ authTimeout: 100 }, /authTimeout applies only with authenticate/],
  ];
  for (const [options, message] of refused) {
    assert.throws(
      () => upgradeWebSocket(request(), sessions, options as never),
      (error: Error) =>
        error instanceof TypeError && message.test(error.message),
      JSON.stringify(Object.keys(options)),
    );
  }
  assert.throws(
    () => upgradeWebSocket(request(), sessions, { maxBufferedAmount: -1 }),
    RangeError,
  );
  assert.throws(
    () => upgradeWebSocket(request(), sessions, { heartbeatInterval: NaN }),
    RangeError,
  );
  // The options that do apply are taken (the socket then never opens).
  const { response } = upgradeWebSocket(request(), sessions, {
    maxBufferedAmount: 0,
    maxMessageBytes: 100,
    heartbeatInterval: 0,
    idleTimeout: 1000,
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
  });
  assert.equal(response.status, 101);
  await Promise.resolve();
});

Deno.test("upgradeWebSocket: a session's close reaches the native peer as a close code and reason", async (t) => {
  await t.step("session.close(reason)", async () => {
    await using server = nativeServer({
      onMessage: (s) => void s.close("kicked"),
    });
    await using p = await peer(server.port);
    p.ws.send("bye?");
    const closed = await within(p.closed, 5000, "close");
    assert.deepEqual([closed.code, closed.reason], [1000, "kicked"]);
  });
  await t.step("closeWebSocket(session, code, reason)", async () => {
    await using server = nativeServer({
      onMessage: (s) => void closeWebSocket(s, 4000, "go away"),
    });
    await using p = await peer(server.port);
    p.ws.send("bye?");
    const closed = await within(p.closed, 5000, "close");
    assert.deepEqual([closed.code, closed.reason], [4000, "go away"]);
  });
});
