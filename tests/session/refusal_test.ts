// Refusals a peer can tell: WebSocket close codes and reasons for every
// server-initiated close, a Refusal's last message on any transport, and a
// client that backs off from (or stops on) a server that turns it away.
import assert from "node:assert/strict";
import {
  CloseReason,
  connect,
  lines,
  peerCloseReason,
  Refusal,
  RefusedError,
  type Server,
} from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import { LineReader, until, utf8, within } from "../_util.ts";

function wsServer(
  options: Record<string, unknown> = {},
): Server<unknown, string, string, Deno.NetAddr> {
  return testServer({
    transport: "websocket",
    onError: () => {},
    ...options,
  }) as Server<unknown, string, string, Deno.NetAddr>;
}

/** Deno's own WebSocket: opens, optionally sends, and reports its close. */
async function closeOf(
  server: Server<unknown, string, string, Deno.NetAddr>,
  first?: string,
): Promise<[number, string]> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
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
  if (first !== undefined) ws.send(first);
  return await within(closed, 5000, "close");
}

Deno.test('refusal: a WebSocket peer refused by authenticate gets 4401 "unauthorized"', async () => {
  await using server = wsServer({ authenticate: () => false });
  assert.deepEqual(await closeOf(server, "let me in"), [4401, "unauthorized"]);
});

Deno.test('refusal: a WebSocket peer that does not authenticate in time gets 4408 "auth timeout"', async () => {
  await using server = wsServer({
    authTimeout: 200,
    authenticate: () => ({}),
  });
  assert.deepEqual(await closeOf(server), [4408, "auth timeout"]);
});

Deno.test('refusal: session.close("kicked") reaches a WebSocket peer as 1000 "kicked"', async () => {
  await using server = wsServer({
    onOpen: (session: { close(reason: string): Promise<void> }) =>
      void session.close("kicked"),
  });
  assert.deepEqual(await closeOf(server), [1000, "kicked"]);
});

Deno.test('refusal: server shutdown reaches a WebSocket peer as 1001 "server shutdown"', async () => {
  const server = wsServer();
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  const closed = new Promise<[number, string]>((resolve) => {
    ws.onclose = (e) => resolve([e.code, e.reason]);
  });
  await within(new Promise((r) => ws.onopen = r), 5000, "open");
  await until(() => server.sessions.size === 1);
  await server.shutdown();
  assert.deepEqual(await within(closed, 5000, "close"), [
    1001,
    "server shutdown",
  ]);
});

Deno.test("refusal: a thrown Refusal sends its reason and code, cut to 123 bytes on a UTF-8 boundary", async () => {
  await using server = wsServer({
    authenticate: (_session: unknown, line: string) => {
      if (line === "banned") {
        throw new Refusal("banned", { code: 4403 });
      }
      throw new Refusal("é".repeat(100)); // 200 bytes of UTF-8
    },
  });
  assert.deepEqual(await closeOf(server, "banned"), [4403, "banned"]);
  const [code, reason] = await closeOf(server, "other");
  assert.equal(code, 4401);
  assert.equal(reason, "é".repeat(61)); // 122 bytes: a whole "é" can't fit 123
});

Deno.test("refusal: Refusal refuses codes a refusal may not send", () => {
  assert.throws(() => new Refusal("x", { code: 1000 }), RangeError);
  assert.throws(() => new Refusal("x", { code: 5000 }), RangeError);
  assert.equal(new Refusal("x", { code: 1008 }).code, 1008);
});

Deno.test("refusal: over TCP a Refusal's notice is the last message before the close", async () => {
  const closed = Promise.withResolvers<[string, unknown]>();
  const errors: unknown[] = [];
  await using server = testServer({
    codec: lines(),
    authenticate: (_session, line) => {
      if (line !== "token ok") {
        throw new Refusal("bad token", { notice: "ERR bad token" });
      }
      return {};
    },
    onClose: (session, reason) => closed.resolve([reason, session.closeError]),
    onError: (error) => errors.push(error),
  });
  using conn = await dial(server);
  await conn.write(utf8("token nope\n"));
  const reader = new LineReader(conn);
  assert.equal(await reader.next(), "ERR bad token");
  assert.equal(await reader.next(), null, "EOF after the notice");
  const [reason, error] = await within(closed.promise, 2000, "server close");
  assert.equal(reason, CloseReason.Unauthorized);
  assert.ok(error instanceof Refusal);
  assert.equal(error.reason, "bad token");
  assert.equal(server.stats().closedByReason.unauthorized, 1);
  assert.deepEqual(errors, [], "a refusal is no error");
});

Deno.test("refusal: connect() checks refusalOf and reconnect.stableAfter", async () => {
  await assert.rejects(
    connect({ port: 1, reconnect: { stableAfter: -1 } }),
    RangeError,
  );
  await assert.rejects(
    connect({ port: 1, refusalOf: "ERR" as never }),
    TypeError,
  );
});

Deno.test("refusal: a TCP client recognises the notice with refusalOf and stops reconnecting", async () => {
  let connections = 0;
  await using server = testServer({
    codec: lines(),
    authenticate: () => {
      connections++;
      throw new Refusal("bad token", { notice: "ERR bad token" });
    },
  });
  const client = await connect({
    port: portOf(server.addr),
    codec: lines(),
    reconnect: { initialDelay: 10 },
    onOpen: (session) => void session.send("token nope"),
    refusalOf: (line) => line.startsWith("ERR ") ? line.slice(4) : undefined,
  });
  const got: string[] = [];
  const iterated = (async () => {
    for await (const line of client) got.push(line);
  })();
  await assert.rejects(
    within(iterated, 3000, "the loop ends"),
    (error: unknown) =>
      error instanceof RefusedError && error.reason === "bad token" &&
      error.code === undefined,
  );
  assert.equal(await client.closed, "bad token");
  assert.equal(client.refused?.reason, "bad token");
  assert.equal(connections, 1, "a refusal is final");
  assert.deepEqual(got, ["ERR bad token"]);
});

Deno.test("refusal: a WebSocket connect() client stops on 4401 and says why", async () => {
  let connections = 0;
  const reasons: (string | undefined)[] = [];
  await using server = wsServer({
    authenticate: () => {
      connections++;
      return false;
    },
  });
  const client = await connect({
    transport: "websocket",
    url: `ws://127.0.0.1:${server.addr.port}/`,
    reconnect: { initialDelay: 10 },
    onOpen: (session) => void session.send("token nope"),
    onClose: (session) => void reasons.push(peerCloseReason(session)),
  });
  const iterated = (async () => {
    for await (const _ of client) { /* nothing arrives */ }
  })();
  await assert.rejects(
    within(iterated, 3000, "the loop ends"),
    (error: unknown) =>
      error instanceof RefusedError && error.reason === "unauthorized" &&
      error.code === 4401,
  );
  assert.equal(await client.closed, "unauthorized");
  assert.deepEqual(reasons, ["unauthorized"]);
  assert.equal(connections, 1, "a refusal is final");
});

Deno.test("refusal: reconnecting to a server that accepts then refuses backs off", async () => {
  // Plain TCP and no notice: the client can't know it is refused, only that
  // each connection dies young; the backoff must not start over each time.
  let connections = 0;
  await using server = testServer({
    codec: lines(),
    authenticate: () => {
      connections++;
      return false;
    },
  });
  const client = await connect({
    port: portOf(server.addr),
    codec: lines(),
    reconnect: { jitter: 0 }, // 100, 200, 400, 800 ms ...
    onOpen: (session) => void session.send("token nope"),
  });
  await new Promise((resolve) => setTimeout(resolve, 2000));
  await client.close();
  assert.ok(
    connections >= 2 && connections <= 6,
    `${connections} connections in 2 s`,
  );
});

Deno.test("refusal: a connection that stayed up stableAfter starts the backoff over", async () => {
  let connections = 0;
  const closers: (() => void)[] = [];
  await using server = testServer({
    codec: lines(),
    onOpen: (session) => {
      connections++;
      closers.push(() => void session.close("kicked"));
    },
  });
  await using client = await connect({
    port: portOf(server.addr),
    codec: lines(),
    reconnect: { initialDelay: 20, factor: 10, jitter: 0, stableAfter: 100 },
  });
  // Young deaths: 20 ms, then 200 ms before the next attempt.
  closers.shift()!();
  await until(() => connections === 2, 2000, "first reconnection");
  const young = performance.now();
  closers.shift()!();
  await until(() => connections === 3, 2000, "second reconnection");
  assert.ok(performance.now() - young >= 150, "the delay grew");
  // This one lives past stableAfter: the next delay is 20 ms again.
  await new Promise((resolve) => setTimeout(resolve, 150));
  const stable = performance.now();
  closers.shift()!();
  await until(() => connections === 4, 2000, "third reconnection");
  assert.ok(performance.now() - stable < 150, "the delay started over");
  assert.ok(client.session !== undefined);
});
