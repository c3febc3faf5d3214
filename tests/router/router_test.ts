import assert from "node:assert/strict";
import {
  defaultRouteKey,
  json,
  lines,
  microSocket,
  type MicroSocketMessage,
  RouteNotFoundError,
  Router,
  type Session,
} from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import { delay, LineReader, readBytes, readToEnd, utf8 } from "../_util.ts";

// Unit tests call router.handler with a stand-in session: the router only
// passes it through.
type Fake = { id: number; log: string[] };
const fake = (): Fake => ({ id: 1, log: [] });

const tick = () => delay(1);

Deno.test("Router routes JSON messages by their type field", () => {
  type Msg = { type: "chat"; text: string } | { type: "join"; room: string };
  const router = new Router<Msg, Msg, Fake>()
    .on("chat", (s, m, key) => void s.log.push(`${key}:${m.text}`))
    .on("join", (s, m) => void s.log.push(`join:${m.room}`));
  const s = fake();
  router.handler(s, { type: "join", room: "lobby" });
  router.handler(s, { type: "chat", text: "hi" });
  assert.deepEqual(s.log, ["join:lobby", "chat:hi"]);
});

Deno.test("Router routes text lines by their first word", () => {
  const router = new Router<string, string, Fake>()
    .on("/nick", (s, line, key) => void s.log.push(line.slice(key.length + 1)))
    .on("PING", (s, line) => void s.log.push(`pong ${line}`));
  const s = fake();
  router.handler(s, "/nick ada lovelace");
  router.handler(s, "PING");
  assert.deepEqual(s.log, ["ada lovelace", "pong PING"]);
});

Deno.test("Router routes microSocket messages by module.method or action", () => {
  const router = new Router<MicroSocketMessage, MicroSocketMessage, Fake>()
    .on("user.Login", (s, m) => void s.log.push(`login ${m.name}`))
    .on("ping", (s) => void s.log.push("ping"));
  const s = fake();
  router.handler(s, { module: "user", method: "Login", name: "ada" });
  router.handler(s, { action: "ping" });
  // module without method falls back to action, as in the seed's README.
  router.handler(s, { module: "user", action: "ping" });
  assert.deepEqual(s.log, ["login ada", "ping", "ping"]);
});

Deno.test("Router uses a custom key function", () => {
  type Msg = { op: number };
  const router = new Router<Msg, Msg, Fake>({ key: (m) => `op${m.op}` })
    .on("op1", (s) => void s.log.push("one"));
  const s = fake();
  router.handler(s, { op: 1 });
  assert.deepEqual(s.log, ["one"]);
  assert.throws(() => router.handler(s, { op: 2 }), RouteNotFoundError);
});

Deno.test("defaultRouteKey() covers lines, JSON and microSocket messages", () => {
  assert.equal(defaultRouteKey("word"), "word");
  assert.equal(defaultRouteKey("two words"), "two");
  assert.equal(defaultRouteKey(""), "");
  assert.equal(defaultRouteKey({ type: "t", action: "a" }), "t");
  assert.equal(
    defaultRouteKey({ module: "m", method: "f", action: "a" }),
    "m.f",
  );
  assert.equal(defaultRouteKey({ action: "a" }), "a");
  assert.equal(defaultRouteKey({ type: 1 }), undefined);
  assert.equal(defaultRouteKey(null), undefined);
  assert.equal(defaultRouteKey([1]), undefined);
  assert.equal(defaultRouteKey(7), undefined);
});

Deno.test("Router runs middleware outermost-first before and innermost-first after", () => {
  const order: string[] = [];
  const mark = (name: string) => () => void order.push(name);
  const router = new Router<string, string, Fake>();
  router.before(mark("router before 1"), mark("router before 2"));
  router.after(mark("router after"));
  const outer = router.group({
    before: [mark("outer before")],
    after: [mark("outer after")],
  });
  const inner = outer.group({ before: [mark("inner before")] })
    .after(mark("inner after"));
  inner.on("go", mark("handler"), {
    before: [mark("route before")],
    after: [mark("route after 1"), mark("route after 2")],
  });
  router.handler(fake(), "go");
  assert.deepEqual(order, [
    "router before 1",
    "router before 2",
    "outer before",
    "inner before",
    "route before",
    "handler",
    "route after 1",
    "route after 2",
    "inner after",
    "outer after",
    "router after",
  ]);
});

Deno.test("Router middleware returning false stops the message", () => {
  const order: string[] = [];
  const router = new Router<string, string, Fake>()
    .before((_s, line) => line !== "veto")
    .after(() => void order.push("after"))
    .on("veto", () => void order.push("never"))
    .on("ok", () => void order.push("ok"));
  router.group({ before: [() => false, () => void order.push("never")] })
    .on("stop", () => void order.push("never"));
  assert.equal(router.handler(fake(), "veto"), undefined);
  router.handler(fake(), "stop");
  router.handler(fake(), "ok");
  assert.deepEqual(order, ["ok", "after"]);
});

Deno.test("Router continues on any middleware result other than false", () => {
  let handled = 0;
  const router = new Router<string, string, Fake>()
    .before(() => true, () => undefined, () => 0 as unknown as boolean)
    .on("x", () => void handled++);
  router.handler(fake(), "x");
  assert.equal(handled, 1);
});

Deno.test("Router after-middleware returning false skips the later ones", () => {
  const order: string[] = [];
  const router = new Router<string, string, Fake>()
    .after(() => void order.push("router after"))
    .on("x", () => void order.push("handler"), {
      after: [() => false, () => void order.push("never")],
    });
  router.handler(fake(), "x");
  assert.deepEqual(order, ["handler"]);
});

Deno.test("Router ignores a handler's return value", () => {
  const order: string[] = [];
  const router = new Router<string, string, Fake>()
    .after(() => void order.push("after"))
    // Like `(s, m) => s.send(m)`, which returns false when refused.
    .on("x", (() => false) as () => void);
  router.handler(fake(), "x");
  assert.deepEqual(order, ["after"]);
});

Deno.test("Router awaits async middleware and handlers in order", async () => {
  const order: string[] = [];
  const later = (name: string, result?: boolean) => async () => {
    await tick();
    order.push(name);
    return result;
  };
  const router = new Router<string, string, Fake>()
    .before(later("before async"), () => void order.push("before sync"))
    .after(later("after async"))
    .on("x", later("handler"))
    .on("veto", () => void order.push("never"), {
      before: [later("veto", false)],
    });
  const pending = router.handler(fake(), "x");
  assert.ok(pending instanceof Promise);
  assert.deepEqual(order, []);
  await pending;
  assert.deepEqual(order, [
    "before async",
    "before sync",
    "handler",
    "after async",
  ]);
  order.length = 0;
  await router.handler(fake(), "veto");
  assert.deepEqual(order, ["before async", "before sync", "veto"]);
});

Deno.test("Router stays synchronous when every step is", () => {
  const router = new Router<string, string, Fake>()
    .before(() => {})
    .after(() => true)
    .on("x", () => {});
  assert.equal(router.handler(fake(), "x"), undefined);
  assert.equal(
    new Router<string, string, Fake>({ fallback: () => {} }).handler(
      fake(),
      "y",
    ),
    undefined,
  );
});

Deno.test("Router's default fallback throws RouteNotFoundError", () => {
  const router = new Router<unknown, unknown, Fake>().on("known", () => {});
  assert.throws(
    () => router.handler(fake(), "unknown thing"),
    (error: unknown) =>
      error instanceof RouteNotFoundError && error.key === "unknown" &&
      error.message === 'No route for key "unknown"',
  );
  assert.throws(
    () => router.handler(fake(), 42),
    (error: unknown) =>
      error instanceof RouteNotFoundError && error.key === undefined,
  );
  const long = "x".repeat(10_000);
  assert.throws(
    () => router.handler(fake(), long),
    (error: unknown) =>
      error instanceof RouteNotFoundError && error.message.length < 100,
  );
});

Deno.test("Router runs a custom fallback inside the router-wide middleware only", () => {
  const order: string[] = [];
  const router = new Router<string, string, Fake>({
    fallback: (_s, line, key) => void order.push(`fallback ${key} ${line}`),
  })
    .before(() => void order.push("before"))
    .after(() => void order.push("after"));
  router.group({ before: [() => void order.push("group")] })
    .on("known", () => {});
  router.handler(fake(), "what now");
  assert.deepEqual(order, ["before", "fallback what what now", "after"]);
});

Deno.test("Router rethrows handler and middleware errors and skips later steps", async () => {
  const order: string[] = [];
  const boom = new Error("boom");
  const router = new Router<string, string, Fake>()
    .after(() => void order.push("after"))
    .on("throw", () => {
      throw boom;
    })
    .on("reject", async () => {
      await tick();
      throw boom;
    })
    .on("mw", () => void order.push("never"), {
      before: [() => {
        throw boom;
      }],
    });
  assert.throws(() => router.handler(fake(), "throw"), boom);
  await assert.rejects(
    async () => await router.handler(fake(), "reject"),
    boom,
  );
  assert.throws(() => router.handler(fake(), "mw"), boom);
  assert.deepEqual(order, []);
});

Deno.test("Router refuses duplicate routes and non-functions", () => {
  const router = new Router<string, string, Fake>().on("a", () => {});
  assert.throws(() => router.on("a", () => {}), TypeError);
  assert.throws(
    () => router.group().on("a", () => {}),
    /Route "a" is already registered/,
  );
  assert.throws(
    () => router.on("b", "nope" as unknown as () => void),
    TypeError,
  );
  assert.throws(
    () => router.before("nope" as unknown as () => void),
    TypeError,
  );
  assert.throws(
    () => router.group({ after: [1 as unknown as () => void] }),
    TypeError,
  );
  assert.throws(
    () => router.on("c", () => {}, { before: [null as unknown as () => void] }),
    TypeError,
  );
  assert.equal(router.has("c"), false);
  assert.throws(
    () => new Router<string>({ key: "type" as unknown as () => string }),
    TypeError,
  );
  assert.equal(router.has("a"), true);
  assert.equal(router.has("b"), false);
});

Deno.test("Router picks up routes and middleware added after first use", () => {
  const s = fake();
  const router = new Router<string, string, Fake>({ fallback: () => {} });
  router.handler(s, "late");
  router.on("late", (s) => void s.log.push("late"));
  router.handler(s, "late");
  router.before((s) => void s.log.push("before"));
  router.handler(s, "late");
  assert.deepEqual(s.log, ["late", "before", "late"]);
});

Deno.test("Router.handler is a stable bound function", () => {
  const router = new Router<string, string, Fake>().on(
    "x",
    (s) => void s.log.push("x"),
  );
  const { handler } = router;
  assert.equal(router.handler, handler);
  const s = fake();
  handler(s, "x");
  assert.deepEqual(s.log, ["x"]);
});

// With listen(): the router as onMessage, errors reaching onError.

Deno.test("Router with listen(): errors and unknown routes reach onError and the session keeps working", async () => {
  const errors: [unknown, Session<unknown, string> | undefined][] = [];
  const router = new Router<string>()
    .on(
      "echo",
      (session, line, key) => void session.send(line.slice(key.length + 1)),
    )
    .on("throw", () => {
      throw new Error("sync boom");
    })
    .on("reject", async () => {
      await tick();
      throw new Error("async boom");
    });
  await using server = testServer({
    codec: lines(),
    onMessage: router.handler,
    onError: (error, session) => void errors.push([error, session]),
  });
  using conn = await dial(server);
  const incoming = new LineReader(conn);
  const read = () => incoming.next();
  await conn.write(
    utf8("throw\nnope\nreject\necho still here\n"),
  );
  assert.equal(await read(), "still here");
  assert.deepEqual(
    errors.map(([e]) =>
      e instanceof RouteNotFoundError ? e.key : (e as Error).message
    ),
    ["sync boom", "nope", "async boom"],
  );
  const [session] = server.sessions;
  assert.ok(errors.every(([, s]) => s === session));
  assert.equal(session?.state, "open");
});

Deno.test("Router with listen(): async handlers keep each session's order", async () => {
  const router = new Router<string>()
    .on("slow", async (session) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      session.send("slow done");
    })
    .on("fast", (session) => void session.send("fast done"));
  await using server = testServer({
    codec: lines(),
    onMessage: router.handler,
  });
  using conn = await dial(server);
  const incoming = new LineReader(conn);
  const read = () => incoming.next();
  await conn.write(utf8("slow\nfast\n"));
  assert.equal(await read(), "slow done");
  assert.equal(await read(), "fast done");
});

Deno.test("Router with listen(): a veto drops the message, closing is explicit", async () => {
  type Data = { name?: string };
  const router = new Router<string, string, Session<Data, string>>()
    .before((session, _line, key) => {
      if (key === "/quit") {
        session.close("bye");
        return false;
      }
      return key === "/nick" || session.data.name !== undefined;
    })
    .on("/nick", (session, line, key) => {
      session.data.name = line.slice(key.length + 1);
      session.send(`hello ${session.data.name}`);
    })
    .on(
      "/say",
      (session, line, key) =>
        void session.send(
          `${session.data.name}: ${line.slice(key.length + 1)}`,
        ),
    );
  const closed = Promise.withResolvers<string>();
  await using server = testServer({
    codec: lines(),
    data: (): Data => ({}),
    onMessage: router.handler,
    onClose: (_session, reason) => closed.resolve(reason),
  });
  using conn = await dial(server);
  const incoming = new LineReader(conn);
  const read = () => incoming.next();
  await conn.write(
    utf8("/say vetoed\n/nick ada\n/say hi\n/quit\n"),
  );
  assert.equal(await read(), "hello ada");
  assert.equal(await read(), "ada: hi");
  assert.equal(await read(), null);
  assert.equal(await closed.promise, "bye");
});

Deno.test("Router with listen(): typed JSON routes answer over the socket", async () => {
  type In = { type: "add"; a: number; b: number } | { type: "neg"; n: number };
  type Out = { sum: number } | { neg: number };
  const router = new Router<In, Out>()
    .on("add", (session, m) => void session.send({ sum: m.a + m.b }))
    .on("neg", (session, m) => void session.send({ neg: -m.n }));
  await using server = testServer({
    codec: json<In, Out>(),
    onMessage: router.handler,
  });
  using conn = await dial(server);
  const incoming = new LineReader(conn);
  const read = () => incoming.next();
  await conn.write(
    utf8(
      '{"type":"add","a":2,"b":3}\n{"type":"neg","n":4}\n',
    ),
  );
  assert.equal(await read(), '{"sum":5}');
  assert.equal(await read(), '{"neg":-4}');
});

Deno.test("Router with listen(): a microSocket module with BeforeRequest/AfterRequest hooks", async () => {
  const hooks: string[] = [];
  const router = new Router<MicroSocketMessage>();
  router
    .group({
      before: [(_session, m) => {
        hooks.push("BeforeRequest");
        return m.token === "t0k";
      }],
      after: [() => void hooks.push("AfterRequest")],
    })
    .on("test.Hello", (session, m) => {
      hooks.push("Hello");
      session.send({ reply: `hi ${m.name}` });
    });
  await using server = testServer({
    codec: microSocket(),
    onMessage: router.handler,
  });
  using conn = await dial(server);
  const codec = microSocket();
  await conn.write(
    codec.encode({ module: "test", method: "Hello", name: "x" }),
  );
  await conn.write(
    codec.encode({ module: "test", method: "Hello", name: "jd", token: "t0k" }),
  );
  const expected = codec.encode({ reply: "hi jd" });
  const got = await readBytes(conn, expected.length);
  assert.deepEqual(got, expected);
  assert.deepEqual(hooks, [
    "BeforeRequest",
    "BeforeRequest",
    "Hello",
    "AfterRequest",
  ]);
});

Deno.test("listen() onAccept veto closes the connection before any session exists", async () => {
  let opened = 0;
  let asked = 0;
  await using server = testServer({
    codec: lines(),
    onAccept: async () => {
      await tick();
      return ++asked !== 1; // refuse the first connection only
    },
    onOpen: (session) => {
      opened++;
      session.send("welcome");
    },
  });
  const port = portOf(server.addr);
  {
    using refused = await dial(port);
    assert.equal((await readToEnd(refused)).length, 0);
    assert.equal(opened, 0);
    assert.equal(server.sessions.size, 0);
  }
  using accepted = await dial(port);
  assert.equal(await new LineReader(accepted).next(), "welcome");
  assert.equal(opened, 1);
  assert.equal(server.stats().rejected.vetoed, 1);
});

Deno.test("Router takes the route key from the session's codec when it has a rule", async () => {
  // A line protocol of "key:value" lines: the codec knows its shape.
  const codec = { ...lines(), routeKey: (line: string) => line.split(":")[0] };
  const router = new Router<string>()
    .on("add", (session, line) => void session.send(`added ${line.slice(4)}`));
  await using server = testServer({
    codec,
    onMessage: router.handler,
  });
  using conn = await dial(server);
  await conn.write(utf8("add:1\n"));
  assert.equal(await new LineReader(conn).next(), "added 1");
  // Each built-in codec has its own rule; defaultRouteKey is the fallback.
  assert.equal(lines().routeKey!("/join lobby"), "/join");
  assert.equal(json().routeKey!({ type: "chat" }), "chat");
  assert.equal(microSocket().routeKey!({ module: "u", method: "M" }), "u.M");
  assert.equal(microSocket().routeKey!({ action: "ping" }), "ping");
  assert.equal(
    new Router<string>({ fallback: () => {} }).on("x", () => {}).has("x"),
    true,
  );
});

Deno.test("RouteNotFoundError lives with the other errors", async () => {
  const errors = await import("../../src/errors.ts");
  assert.equal(errors.RouteNotFoundError, RouteNotFoundError);
});
