// Type-level tests of Router: `deno check tests/` fails when inference
// breaks, because every `@ts-expect-error` below must still meet an error.
// The routers are also built and run once, so the file is a real test too.
import assert from "node:assert/strict";
import {
  json,
  lines,
  listen,
  type MicroSocketMessage,
  Router,
  type RoutesBy,
  type Session,
} from "../../mod.ts";
import { testServer } from "../_server.ts";

type Chat = { type: "chat"; text: string };
type Join = { type: "join"; room: string };
type Msg = Chat | Join;
type Data = { name: string };

Deno.test("Router types: routes narrow the message by its type field", () => {
  const seen: string[] = [];
  const router = new Router<Msg, Msg, Session<Data, Msg>>()
    .on("chat", (session, message, key) => {
      const text: string = message.text;
      const name: string = session.data.name;
      const route: "chat" = message.type;
      const k: string = key;
      // @ts-expect-error: a chat message has no room
      void message.room;
      // @ts-expect-error: Data has no age
      void session.data.age;
      seen.push(text, name, route, k);
    })
    .on("join", (session, message) => {
      const room: string = message.room;
      session.send({ type: "chat", text: room });
      // @ts-expect-error: the session sends Msg only
      session.send({ type: "shout", text: room });
    }, {
      // Route middleware sees the narrowed type too.
      before: [(_session, message) => message.room.length > 0],
    });

  // @ts-expect-error: no message has type "leave"
  router.on("leave", () => {});
  // Fresh routers below: each key may be registered once.
  // @ts-expect-error: the "chat" route receives Chat, not Join
  new Router<Msg>().group().on("chat", (_session, _message: Join) => {});
  new Router<Msg>().group().on("join", (_session, message) => {
    // @ts-expect-error: in a group too, a join message has no text
    void message.text;
  });
  new Router<Msg>().on("chat", () => {}, {
    // @ts-expect-error: route middleware of "chat" sees Chat
    before: [(_session, message) => message.room === ""],
  });

  // Router-wide middleware and the fallback see the whole union.
  router.before((_session, message) => message.type !== "join");
  new Router<Msg>({
    fallback: (_session, message, key) => {
      const type: "chat" | "join" = message.type;
      // @ts-expect-error: a fallback's key may be undefined
      const k: string = key;
      void [type, k];
    },
  });

  assert.equal(router.has("chat"), true);
});

Deno.test("Router types: text, microSocket and unknown messages take any key", () => {
  new Router<string>().on("/anything", (_session, line, key) => {
    const rest: string = line.slice(key.length + 1);
    // @ts-expect-error: a line is a string
    line.toFixed();
    void rest;
  });
  new Router<MicroSocketMessage>().on("user.Login", (_session, message) => {
    const name: string | undefined = message.name;
    // @ts-expect-error: any field may be missing
    const sure: string = message.name;
    void [name, sure];
  });
  new Router<unknown>().on("x", (_session, message) => {
    // @ts-expect-error: unknown must be checked before use
    void message.type;
  });
});

Deno.test("Router types: RoutesBy routes on another discriminant", () => {
  type Op = { op: "add"; a: number; b: number } | { op: "neg"; n: number };
  const router = new Router<Op, Op, Session<unknown, Op>, RoutesBy<Op, "op">>({
    key: (message) => message.op,
  }).on("add", (_session, message) => void (message.a + message.b));
  // @ts-expect-error: no op "mul"
  router.on("mul", () => {});
  router.on("neg", (_session, message) => {
    // @ts-expect-error: neg has no a
    void message.a;
  });
});

Deno.test("Router types: a mixed union routes only the members with a type", () => {
  type Mixed = { type: "a"; x: number } | { other: true };
  const router = new Router<Mixed>().on("a", (_session, m) => void m.x);
  // @ts-expect-error: "other" is not a type value
  router.on("other", () => {});
});

// Compiled, never run: router.handler plugs into listen() when the types
// agree, and does not when they don't.
function _listenCompatibility(): void {
  const jsonRouter = new Router<Msg, Msg, Session<Data, Msg>>();
  listen({
    port: 0,
    codec: json<Msg>(),
    data: (): Data => ({ name: "" }),
    onMessage: jsonRouter.handler,
  });
  listen({ port: 0, codec: lines(), onMessage: new Router<string>().handler });
  // @ts-expect-error: a lines() server decodes strings, not Msg
  listen({ port: 0, codec: lines(), onMessage: jsonRouter.handler });
  listen({
    port: 0,
    codec: json<Msg, string>(),
    // @ts-expect-error: this router's sessions send Msg, the codec strings
    onMessage: new Router<Msg>().handler,
  });
}

Deno.test("Router types: Router<In, Out> plugs into a json<In, Out>() server without casts", async () => {
  type ClientMsg = { type: "hello"; name: string } | {
    type: "say";
    text: string;
  };
  type ServerMsg = { type: "welcome"; id: number } | {
    type: "said";
    text: string;
  };
  const router = new Router<ClientMsg, ServerMsg>()
    .on("hello", (session, message) => {
      session.send({ type: "welcome", id: session.id });
      // @ts-expect-error: the session sends ServerMsg, not ClientMsg
      session.send({ type: "hello", name: message.name });
    })
    // The echo one-liner: a handler may return what send returns.
    .on(
      "say",
      (session, message) => session.send({ type: "said", text: message.text }),
    );
  await using server = testServer({
    codec: json<ClientMsg, ServerMsg>(),
    onMessage: router.handler,
  });
  // With session data: give the session type as the third parameter.
  const withData = new Router<
    ClientMsg,
    ServerMsg,
    Session<Data, ClientMsg, ServerMsg>
  >()
    .on("hello", (session) => void (session.data.name = "x"));
  await testServer({
    codec: json<ClientMsg, ServerMsg>(),
    data: (): Data => ({ name: "" }),
    onMessage: withData.handler,
  }).close();
  assert.equal(server.sessions.size, 0);
});
