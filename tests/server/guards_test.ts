// The accept loop contains every user-supplied function: a throwing codec
// factory or a malformed onAccept verdict closes that one connection, is
// reported to onError, and the server goes on serving.
import assert from "node:assert/strict";
import { type Codec, lines, Router } from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import {
  delay,
  LineReader,
  readToEnd,
  until,
  utf8,
  writeAll,
} from "../_util.ts";

Deno.test("listen() survives a codec whose decoder() throws: onError, that connection closed, others served", async () => {
  const inner = lines();
  let calls = 0;
  const flaky: Codec<string> = {
    name: "flaky",
    encode: (line) => inner.encode(line),
    decoder: () => {
      if (++calls === 1) throw new Error("no decoder for you");
      return inner.decoder();
    },
  };
  const errors: unknown[] = [];
  await using server = testServer({
    codec: flaky,
    onMessage: (session, line) => void session.send(`echo ${line}`),
    onError: (error) => void errors.push(error),
  });
  const port = portOf(server.addr);
  using first = await dial(port);
  assert.equal((await readToEnd(first)).length, 0, "first one is closed");
  assert.equal((errors[0] as Error).message, "no decoder for you");
  using second = await dial(port);
  await second.write(utf8("hi\n"));
  assert.equal(await new LineReader(second).next(), "echo hi");
  await until(() => server.sessions.size === 1);
  assert.equal(server.stats().sessionsOpen, 1);
});

Deno.test("listen() survives an onAccept that returns neither a boolean nor a promise", async () => {
  const errors: unknown[] = [];
  let n = 0;
  await using server = testServer({
    onAccept: () => {
      n++;
      return (n === 1 ? undefined : n === 2 ? null : true) as boolean;
    },
    onOpen: (session) => void session.send("hi"),
    onError: (error) => void errors.push(error),
  });
  const port = portOf(server.addr);
  for (let i = 0; i < 2; i++) {
    using refused = await dial(port);
    assert.equal((await readToEnd(refused)).length, 0);
  }
  assert.equal(errors.length, 2);
  assert.ok(errors.every((e) => e instanceof TypeError));
  assert.match((errors[0] as Error).message, /onAccept/);
  using ok = await dial(port);
  assert.equal(await new LineReader(ok).next(), "hi");
  assert.equal(server.stats().rejected.vetoed, 2);
});

Deno.test("Without onError, a peer's errors are logged once per session, in one line, and all logging is rate-limited", async () => {
  const logged: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    const router = new Router<string>().on("known", () => {});
    await using server = testServer({
      codec: lines({ maxLineBytes: 64 }),
      onMessage: router.handler,
    });
    const port = portOf(server.addr);
    using flooder = await dial(port);
    await writeAll(flooder, utf8("nope\n".repeat(500)));
    await until(() => server.stats().framesIn === 500);
    await delay(20);
    assert.equal(logged.length, 1, "one line for 500 unknown routes");
    const line = logged[0]!.join(" ");
    assert.match(line, /RouteNotFoundError: No route for key "nope"/);
    assert.doesNotMatch(line, /\n\s+at /, "no stack trace");
    // Many peers, each with one bad frame: the global budget holds.
    const conns = await Promise.all(
      Array.from({ length: 20 }, () => dial(port)),
    );
    for (const conn of conns) {
      await writeAll(conn, utf8("x".repeat(100) + "\n"));
    }
    await until(() => server.stats().closedByReason["frame too large"] === 20);
    assert.ok(logged.length <= 10, `${logged.length} lines`);
    for (const conn of conns) conn.close();
  } finally {
    console.error = original;
  }
});
