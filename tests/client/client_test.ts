import assert from "node:assert/strict";
import {
  Client,
  connect,
  json,
  lengthPrefixed,
  listen,
  RequestTimeoutError,
  Router,
  type Session,
  SessionClosedError,
} from "../../mod.ts";
import { portOf, testServer } from "../_server.ts";
import { delay, until, within } from "../_util.ts";

Deno.test("connect() speaks the server's codec in both directions", async () => {
  await using server = testServer({
    codec: lengthPrefixed(),
    onMessage: (session, payload) => void session.send(payload.reverse()),
  });
  const replies: number[][] = [];
  await using client = await connect({
    port: portOf(server.addr),
    codec: lengthPrefixed(),
    onMessage: (_session, payload) => void replies.push([...payload]),
  });
  assert.equal(client.send(new Uint8Array([1, 2, 3])), true);
  assert.equal(client.send(new Uint8Array([])), true);
  await until(() => replies.length === 2);
  assert.deepEqual(replies, [[3, 2, 1], []]);
});

Deno.test("connect() without reconnect is closed for good when the server closes it", async () => {
  await using server = testServer();
  const client = await connect({ port: portOf(server.addr) });
  await until(() => server.sessions.size === 1);
  for (const session of server.sessions) await session.close("bye");
  assert.equal(await within(client.closed, 5000, "client closed"), "eof");
  assert.equal(client.session, undefined);
  assert.equal(client.send("nobody listens"), false);
});

Deno.test("connect() rejects when the first connection fails and reconnect is off", async () => {
  const server = testServer();
  const port = portOf(server.addr);
  await server.close();
  await assert.rejects(() => connect({ port }), Deno.errors.ConnectionRefused);
});

Deno.test("connect() with reconnect comes back after the server restarts, and gives up after maxAttempts", async () => {
  let server = testServer();
  const port = portOf(server.addr);
  let opens = 0;
  const client = await connect({
    port,
    reconnect: { initialDelay: 10, maxDelay: 40, maxAttempts: 1000 },
    onOpen: () => void opens++,
  });
  await until(() => opens === 1);
  await server.close();
  // Back on the same port: the client finds it again.
  server = listen({ hostname: "127.0.0.1", port });
  await until(() => opens === 2 && server.sessions.size === 1, 5000);
  assert.ok(client.session !== undefined);
  await client.close("done");
  assert.equal(await client.closed, "done");
  await server.close();

  // Nobody listening and 3 attempts allowed: the client gives up.
  const gone = testServer();
  const gonePort = portOf(gone.addr);
  const doomed = await connect({
    port: gonePort,
    reconnect: { initialDelay: 5, maxAttempts: 3 },
  });
  await gone.close();
  // The last reason is the lost connection's; what matters is that it ends.
  assert.equal(typeof await within(doomed.closed, 5000, "give up"), "string");
  assert.equal(doomed.session, undefined);
});

Deno.test("connect() closes the connection when data() throws, on every attempt: no leak", async () => {
  await using server = testServer();
  let calls = 0;
  let opened = 0;
  const reported: unknown[] = [];
  await assert.rejects(
    () =>
      connect({
        port: portOf(server.addr),
        reconnect: { initialDelay: 5, maxAttempts: 3 },
        data: () => {
          calls++;
          throw new Error("no data");
        },
        onOpen: () => void opened++,
        onError: (error) => void reported.push(error),
      }),
    /no data/,
  );
  assert.equal(calls, 3);
  assert.equal(reported.length, 3, "each failure reaches onError");
  assert.equal(opened, 0, "onOpen never runs for such a connection");
  // Every connection the attempts made is closed on the server side too.
  await until(() =>
    server.stats().sessionsTotal === 3 && server.sessions.size === 0
  );
});

Deno.test("Client.start() twice opens one session", async () => {
  await using server = testServer();
  const client = new Client({ port: portOf(server.addr) });
  const first = client.start();
  assert.equal(client.start(), first);
  await first;
  await client.start();
  await until(() => server.sessions.size === 1);
  await delay(30);
  assert.equal(server.stats().sessionsTotal, 1);
  await client.close();
});

Deno.test("connect() with sendBuffer keeps sends made while reconnecting and delivers them after onOpen", async () => {
  let server = testServer();
  const port = portOf(server.addr);
  let opens = 0;
  const client = await connect({
    port,
    reconnect: { initialDelay: 10, maxDelay: 20, jitter: 0 },
    sendBuffer: { maxMessages: 3 },
    onOpen: (session) => {
      opens++;
      session.send(`hello ${opens}`);
    },
  });
  await until(() => opens === 1);
  await server.close();
  await until(() => client.session === undefined);
  assert.equal(client.send("a"), true);
  assert.equal(client.send("b"), true);
  assert.equal(client.send("c"), true);
  assert.equal(client.send("d"), false, "full: drop-newest refuses");
  assert.equal(client.buffered, 3);
  assert.throws(() => client.send("x\ny"), TypeError, "refused at once");
  const got: string[] = [];
  server = listen({
    hostname: "127.0.0.1",
    port,
    onMessage: (_session, line) => void got.push(line),
  });
  await until(() => got.length === 4, 5000, "buffered sends");
  assert.deepEqual(got, ["hello 2", "a", "b", "c"]);
  assert.equal(client.buffered, 0);
  await client.close();
  assert.equal(client.send("after close"), false);
  await server.close();
});

Deno.test("sendBuffer whenFull: drop-oldest keeps the latest messages", async () => {
  await using server = testServer();
  const client = await connect({
    port: portOf(server.addr),
    reconnect: { initialDelay: 5000 },
    sendBuffer: { maxMessages: 2, whenFull: "drop-oldest" },
  });
  for (const session of server.sessions) await session.close("kicked");
  await until(() => client.session === undefined);
  for (const line of ["1", "2", "3"]) assert.equal(client.send(line), true);
  assert.equal(client.buffered, 2);
  await client.close();
  assert.equal(client.buffered, 0);
  assert.throws(
    () => new Client({ port: 1, sendBuffer: true }),
    /sendBuffer needs reconnect/,
  );
});

Deno.test("for await (const m of client) yields messages until the client is closed for good", async () => {
  await using server = testServer({
    onOpen: (session) => {
      for (let i = 0; i < 600; i++) session.send(`m${i}`);
      void session.close("done");
    },
  });
  const client = await connect({ port: portOf(server.addr) });
  const got: string[] = [];
  for await (const line of client) {
    got.push(line);
    if (got.length % 100 === 0) await delay(5); // a slow loop
  }
  assert.equal(got.length, 600);
  assert.equal(got[599], "m599");
  assert.equal(await client.closed, "eof");
  // Iterating a closed client ends at once.
  for await (const _ of client) assert.fail("no message after the end");
});

Deno.test("Breaking out of for await stops that iteration only", async () => {
  await using server = testServer({
    onMessage: (session, line) => void session.send(`echo ${line}`),
  });
  const handled: string[] = [];
  await using client = await connect({
    port: portOf(server.addr),
    onMessage: (_session, line) => void handled.push(line),
  });
  client.send("1");
  client.send("2");
  for await (const line of client) {
    assert.equal(line, "echo 1");
    break;
  }
  client.send("3");
  await until(() => handled.length === 3);
  assert.deepEqual(handled, ["echo 1", "echo 2", "echo 3"]);
});

Deno.test("connectTimeout fails an attempt whose TLS handshake never completes", async () => {
  using mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = mute.accept();
  const started = performance.now();
  await assert.rejects(
    () => connect({ port: mute.addr.port, tls: true, connectTimeout: 200 }),
    Deno.errors.TimedOut,
  );
  const took = performance.now() - started;
  assert.ok(took >= 150 && took < 3000, `gave up after ${took} ms`);
  (await accepted).close();
});

Deno.test("connect({ keepAlive: true }) connects and talks as usual", async () => {
  await using server = testServer({
    onMessage: (session, line) => void session.send(`echo ${line}`),
  });
  const reply = Promise.withResolvers<string>();
  await using client = await connect({
    port: portOf(server.addr),
    keepAlive: true,
    connectTimeout: 0,
    onMessage: (_session, line) => reply.resolve(line),
  });
  client.send("alive");
  assert.equal(await within(reply.promise, 5000), "echo alive");
});

Deno.test("A stalled for await loop pauses reading instead of buffering everything", async () => {
  const COUNT = 5000;
  const line = "x".repeat(1000);
  await using server = testServer({
    outboundBudget: 16 << 20,
    onOpen: (session) => {
      for (let i = 0; i < COUNT; i++) session.send(line);
    },
  });
  await using client = await connect({ port: portOf(server.addr) });
  const iterator = client[Symbol.asyncIterator]();
  await iterator.next();
  await delay(300); // the loop stalls; the server has sent ~5 MB
  const read = client.session!.bytesIn;
  assert.ok(read < 1 << 20, `read ${read} bytes while stalled`);
  let got = 1;
  while (got < COUNT) {
    const { done } = await within(iterator.next(), 5000, "next message");
    assert.equal(done, false);
    got++;
  }
  await iterator.return!();
  assert.equal(got, COUNT);
});

type UserAsk = { type: "getUser"; id: number } | { type: "never" };
type UserAnswer = { type: "user"; id: number; name: string };

function userServer(seen: UserAsk[]) {
  const router = new Router<
    UserAsk,
    UserAnswer,
    Session<unknown, UserAsk, UserAnswer>
  >()
    .on("getUser", (session, message) => {
      seen.push(message);
      if (message.type !== "getUser") return;
      session.reply(message, { type: "user", id: message.id, name: "ada" });
    })
    .on("never", (_session, message) => void seen.push(message));
  return testServer<unknown, UserAsk, UserAnswer>({
    codec: json<UserAsk, UserAnswer>(),
    onMessage: router.handler,
  });
}

Deno.test("Client.request(): { type: 'getUser', id: 17 } reaches the Router with id 17 intact and the reply resolves, typed", async () => {
  const seen: UserAsk[] = [];
  await using server = userServer(seen);
  await using client = await connect<unknown, UserAnswer, UserAsk>({
    port: portOf(server.addr),
    codec: json<UserAnswer, UserAsk>(),
  });
  const [first, second] = await Promise.all([
    client.request({ type: "getUser", id: 17 }),
    client.request({ type: "getUser", id: 1 }, { timeout: 2000 }),
  ]);
  // The reply type is the codec's In: no cast needed.
  const name: string = first.name;
  assert.equal(name, "ada");
  assert.equal(first.id, 17);
  assert.equal(second.id, 1);
  assert.deepEqual(seen.map((m) => (m as { id: number }).id), [17, 1]);
});

Deno.test("Client.request() refuses a message holding the reserved correlation field, and leaves nothing pending", async () => {
  const seen: UserAsk[] = [];
  await using server = userServer(seen);
  await using client = await connect<unknown, UserAnswer, UserAsk>({
    port: portOf(server.addr),
    codec: json<UserAnswer, UserAsk>(),
  });
  const clash = { type: "getUser", id: 17, $id: 99 } as UserAsk;
  assert.throws(
    () => client.request(clash),
    (e: unknown) => e instanceof TypeError && e.message.includes('"$id"'),
  );
  const bigint = { type: "getUser", id: 1n } as unknown as UserAsk;
  assert.throws(() => client.request(bigint), TypeError);
  // Nothing was sent, and the next request still works (the test's
  // sanitizers catch a timer left behind).
  assert.equal((await client.request({ type: "getUser", id: 2 })).id, 2);
  assert.deepEqual(seen, [{ type: "getUser", id: 2, $id: 3 }]);
});

Deno.test("Client.request() times out, and rejects with SessionClosedError when the client is not connected", async () => {
  const seen: UserAsk[] = [];
  await using server = userServer(seen);
  const client = await connect<unknown, UserAnswer, UserAsk>({
    port: portOf(server.addr),
    codec: json<UserAnswer, UserAsk>(),
  });
  await assert.rejects(
    client.request({ type: "never" }, { timeout: 50 }),
    RequestTimeoutError,
  );
  const pending = assert.rejects(
    client.request({ type: "never" }),
    SessionClosedError,
  );
  await client.close();
  await pending;
  await assert.rejects(
    client.request({ type: "getUser", id: 1 }),
    (e: unknown) => e instanceof SessionClosedError && e.reason === "closed",
  );
});

Deno.test("Client.request() on a codec without correlation is a TypeError, connected or not", async () => {
  await using server = testServer();
  const client = await connect({ port: portOf(server.addr) });
  assert.throws(() => client.request("x"), /has no correlation/);
  await client.close();
  assert.throws(() => client.request("x"), /has no correlation/);
});

Deno.test("Client.request() over the websocket transport: the json() correlation survives the WebSocket adapter on both ends", async () => {
  const router = new Router<
    UserAsk,
    UserAnswer,
    Session<unknown, UserAsk, UserAnswer>
  >().on("getUser", (session, message) => {
    if (message.type !== "getUser") return;
    session.reply(message, { type: "user", id: message.id, name: "ada" });
  });
  await using server = testServer<unknown, UserAsk, UserAnswer>({
    transport: "websocket",
    codec: json<UserAsk, UserAnswer>(),
    onMessage: router.handler,
  });
  await using client = await connect<unknown, UserAnswer, UserAsk>({
    transport: "websocket",
    url: `ws://127.0.0.1:${portOf(server.addr)}/`,
    codec: json<UserAnswer, UserAsk>(),
  });
  const user = await client.request({ type: "getUser", id: 17 });
  assert.deepEqual(user, { type: "user", id: 17, name: "ada", $re: 1 });
});
