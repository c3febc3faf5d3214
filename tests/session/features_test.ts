// What socket.io / ws / Bun users reach for, on real sockets: rooms and
// broadcast from the session, request/response with acknowledgements, and
// an authentication step before onOpen.
import assert from "node:assert/strict";
import {
  CloseReason,
  connect,
  json,
  lines,
  RequestTimeoutError,
  Router,
  type Session,
  SessionClosedError,
} from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import { delay, LineReader, until, utf8, within, writeAll } from "../_util.ts";

Deno.test("session.join/leave/rooms/broadcast: rooms from the session, broadcast excluding itself", async () => {
  await using server = testServer({
    codec: lines(),
    onOpen: (session) => void session.join("lobby"),
    onMessage: (session, line) => {
      if (line.startsWith("/join ")) {
        session.leave("lobby");
        session.join(line.slice(6));
        session.send(`rooms: ${[...session.rooms].join(",")}`);
      } else {
        session.broadcast(line, { room: [...session.rooms][0]! });
      }
    },
  });
  const port = portOf(server.addr);
  using a = await dial(port);
  using b = await dial(port);
  using c = await dial(port);
  await until(() => server.sessions.members("lobby").size === 3);
  const [ra, rb, rc] = [a, b, c].map((conn) => new LineReader(conn));
  await writeAll(c, utf8("/join side\n"));
  assert.equal(await rc!.next(), "rooms: side");
  await writeAll(a, utf8("hello lobby\n"));
  assert.equal(await rb!.next(), "hello lobby");
  await writeAll(b, utf8("hi a\n"));
  assert.equal(await ra!.next(), "hi a", "the sender got its own line");
  await writeAll(c, utf8("anyone?\n"));
  await delay(50);
  await writeAll(a, utf8("second\n"));
  assert.equal(await rb!.next(), "second", "c's line leaked out of its room");
  const standalone = [...server.sessions][0]!;
  assert.deepEqual([...standalone.rooms], ["lobby"]);
});

type Ask = { type: "sum"; of: number[] } | { type: "slow" } | {
  type: "ask";
};
type Answer = { type: "sum"; result: number } | { type: "ok" };

Deno.test("request/reply: a connect() client awaits a Router handler's answer; timeouts and closes reject with typed errors", async () => {
  const router = new Router<Ask, Answer, Session<unknown, Ask, Answer>>()
    .on("sum", (session, message) => {
      if (message.type !== "sum") return;
      session.reply(message, {
        type: "sum",
        result: message.of.reduce((a, b) => a + b, 0),
      });
    })
    .on("slow", () => {}) // never answers
    .on("ask", async (session, message) => {
      // Before answering, the server asks the client something itself.
      const answer = await session.request({ type: "ok" }, { timeout: 2000 });
      if (answer.type === "ask") session.reply(message, { type: "ok" });
    });
  await using server = testServer<unknown, Ask, Answer>({
    codec: json<Ask, Answer>(),
    onMessage: router.handler,
  });
  const client = await connect<unknown, Answer, Ask>({
    hostname: "127.0.0.1",
    port: portOf(server.addr),
    codec: json<Answer, Ask>(),
    onMessage: (session, message) => {
      // Requests from the server arrive here; answer them.
      if ((message as { $id?: number }).$id !== undefined) {
        session.reply(message, { type: "ask" });
      }
    },
  });
  const session = client.session!;
  // Both ways: the server's handler requests from the client before it
  // replies.
  assert.deepEqual(await session.request({ type: "ask" }), {
    type: "ok",
    $re: 1,
  });
  const answers = await Promise.all([
    session.request({ type: "sum", of: [1, 2, 3] }),
    session.request({ type: "sum", of: [10, 20] }),
  ]);
  assert.deepEqual(answers.map((a) => (a as { result: number }).result), [
    6,
    30,
  ]);
  await assert.rejects(
    session.request({ type: "slow" }, { timeout: 100 }),
    RequestTimeoutError,
  );
  const pending = assert.rejects(
    session.request({ type: "slow" }, { timeout: 5000 }),
    SessionClosedError,
  );
  await client.close();
  await pending;
  await assert.rejects(session.request({ type: "slow" }), SessionClosedError);
});

Deno.test("request() on a codec without correlation is a TypeError", async () => {
  await using server = testServer();
  using _conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  assert.throws(() => session.request("x"), TypeError);
});

Deno.test("authenticate: the first message decides; onOpen, rooms and messages come after, in order", async () => {
  const events: string[] = [];
  await using server = testServer<{ user: string }, string, string>({
    codec: lines(),
    authenticate: async (_session, line) => {
      events.push(`auth ${line}`);
      await delay(50);
      return line.startsWith("token ") ? { user: line.slice(6) } : undefined;
    },
    onOpen: (session) => {
      events.push(`open ${session.data.user}`);
      session.send(`welcome ${session.data.user}`);
    },
    onMessage: (session, line) =>
      void events.push(`${session.data.user}: ${line}`),
  });
  const port = portOf(server.addr);
  using good = await dial(port);
  // The token and two messages in one write: the messages wait for it.
  await writeAll(good, utf8("token ada\nfirst\nsecond\n"));
  await until(() => server.sessions.size === 1, 2000, "joined the manager");
  assert.equal(await new LineReader(good).next(), "welcome ada");
  await until(() => events.length === 4);
  assert.deepEqual(events, [
    "auth token ada",
    "open ada",
    "ada: first",
    "ada: second",
  ]);

  using bad = await dial(port);
  await writeAll(bad, utf8("let me in\nfirst\n"));
  await until(() => server.stats().closedByReason.unauthorized === 1);
  assert.equal(server.sessions.size, 1, "an unauthenticated session was added");
  assert.ok(!events.some((e) => e.includes("let me in:")));
});

Deno.test("authenticate: a peer that never authenticates is closed after authTimeout", async () => {
  const closed = Promise.withResolvers<string>();
  await using server = testServer({
    codec: lines(),
    authTimeout: 150,
    authenticate: () => ({}),
    onClose: (_session, reason) => closed.resolve(reason),
  });
  using _conn = await dial(server);
  assert.equal(
    await within(closed.promise, 2000, "the auth timeout"),
    CloseReason.AuthTimeout,
  );
  assert.equal(server.sessions.size, 0);
});

Deno.test("request() from onOpen, or from a handler after another await, gets the peer's reply", async () => {
  const answers: string[] = [];
  await using server = testServer<unknown, Ask, Answer>({
    codec: json<Ask, Answer>(),
    onOpen: async (session) => {
      // The session's first exchange: ask the client before anything else.
      const answer = await session.request({ type: "ok" }, { timeout: 3000 });
      answers.push(`open ${answer.type}`);
    },
    onMessage: async (session, message) => {
      if (message.type !== "ask") return;
      await delay(20); // some other work first, then ask the peer
      const answer = await session.request({ type: "ok" }, { timeout: 3000 });
      answers.push(`message ${answer.type}`);
      session.reply(message, { type: "ok" });
    },
  });
  const client = await connect<unknown, Answer, Ask>({
    hostname: "127.0.0.1",
    port: portOf(server.addr),
    codec: json<Answer, Ask>(),
    onMessage: (session, message) => {
      if ((message as { $id?: number }).$id !== undefined) {
        session.reply(message, { type: "ask" });
      }
    },
  });
  try {
    await until(() => answers.length === 1, 4000, "onOpen's answer");
    assert.deepEqual(answers, ["open ask"]);
    const reply = await client.session!.request({ type: "ask" }, {
      timeout: 4000,
    });
    assert.equal(reply.type, "ok");
    assert.deepEqual(answers, ["open ask", "message ask"]);
  } finally {
    await client.close();
  }
});
