// Recovery (issue 17): resume tokens. A forged, foreign or replayed token,
// or a message count from the future, is refused with a preamble line and
// EOF: never a byte of another session's stream. Plain clients are
// unchanged, byte for byte.
import assert from "node:assert/strict";
import { connect, listen } from "../../mod.ts";
import { testServer } from "../_server.ts";
import { readToEnd, until, utf8, within } from "../_util.ts";
import { hello, ok } from "./_hello.ts";

const decoder = new TextDecoder();

Deno.test("forged, foreign and replayed tokens, and counts from the future, are refused", async () => {
  let detached = 0;
  await using server = testServer({
    recovery: { window: 5000, onDetach: () => void detached++ },
    onOpen: (session) => {
      session.send(`secret of ${session.id}`);
    },
  });
  const port = server.addr.port;
  const a = await hello(port, "new");
  const b = await hello(port, "new");
  const sa = ok(a.answer);
  const sb = ok(b.answer);
  assert.equal(sa.recovered, false);
  assert.notEqual(sa.token, sb.token);
  assert.ok(sa.token.length >= 22, "at least 128 bits");
  await until(() => server.sessions.size === 2, 2000, "both sessions");
  a.conn.close();
  b.conn.close();
  await until(() => detached === 2, 2000, "both detached");

  const refusals: string[] = [];
  const tries = [
    // Forged: a well-formed token nobody was given.
    `resume ${sa.id} ${"A".repeat(24)} 0`,
    // Foreign: B's token for A's session.
    `resume ${sa.id} ${sb.token} 0`,
    // An id no session has.
    `resume 999999 ${sa.token} 0`,
    // Not a hello at all.
    `resume ${sa.id}`,
  ];
  for (const line of tries) {
    const { answer, conn } = await hello(port, line);
    // After the refusal: EOF, not a byte of anyone's stream.
    const rest = await readToEnd(conn);
    conn.close();
    assert.equal(rest.length, 0, `bytes after "${answer}" for ${line}`);
    assert.match(answer, /^fail /, line);
    refusals.push(answer);
  }

  // The real token works once, and is rotated: replaying it is refused.
  const resumed = await hello(port, `resume ${sa.id} ${sa.token} 0`);
  const again = ok(resumed.answer);
  assert.equal(again.recovered, true);
  assert.equal(again.id, sa.id);
  assert.notEqual(again.token, sa.token);
  // The replay from 0 resends A's own stream, and only it.
  const line = `secret of ${sa.id}\n`;
  let got = decoder.decode(resumed.rest);
  const buffer = new Uint8Array(64);
  while (got.length < line.length) {
    const n = await within(resumed.conn.read(buffer), 2000, "the replay");
    if (n === null) break;
    got += decoder.decode(buffer.subarray(0, n));
  }
  assert.equal(got, line);
  const replayed = await hello(port, `resume ${sa.id} ${sa.token} 0`);
  assert.match(replayed.answer, /^fail /);
  replayed.conn.close();
  resumed.conn.close();
  await until(() => detached === 3, 2000, "A detached again");
  // From the future: more messages than the session ever sent. The token
  // was right, so the session is of no use any more: it ends.
  const future = await hello(port, `resume ${sa.id} ${again.token} 2`);
  assert.equal(future.answer, "fail trimmed");
  assert.equal((await readToEnd(future.conn)).length, 0);
  future.conn.close();
  await until(() => server.sessions.size === 1, 2000, "A's end");
  assert.deepEqual(refusals, [
    "fail bad_token",
    "fail bad_token",
    "fail unknown_session",
    "fail bad_hello",
  ]);
});

Deno.test("a message cut off mid-frame is sent again whole; only whole messages count", async () => {
  const long = "x".repeat(3000);
  await using server = testServer({
    recovery: { window: 5000 },
    onOpen: (session) => {
      session.send("first");
      session.send(long);
    },
  });
  const port = server.addr.port;
  const a = await hello(port, "new");
  const sa = ok(a.answer);
  // Read "first" and part of the long line, then drop the connection.
  let got = decoder.decode(a.rest);
  const buffer = new Uint8Array(100);
  while (got.length < 100) {
    const n = await within(a.conn.read(buffer), 2000, "some bytes");
    if (n === null) break;
    got += decoder.decode(buffer.subarray(0, n));
  }
  assert.ok(got.startsWith("first\nx"));
  a.conn.close();
  await until(
    () => [...server.sessions][0]?.queuedBytes === 0,
    2000,
    "the detached session's queue",
  );
  // One whole message taken: the long one comes again, whole.
  const b = await hello(port, `resume ${sa.id} ${sa.token} 1`);
  assert.equal(ok(b.answer).recovered, true);
  let replay = decoder.decode(b.rest);
  const big = new Uint8Array(4096);
  while (replay.length < long.length + 1) {
    const n = await within(b.conn.read(big), 2000, "the replay");
    if (n === null) break;
    replay += decoder.decode(big.subarray(0, n));
  }
  assert.equal(replay, long + "\n");
  b.conn.close();
});

Deno.test("a client without recovery sees the same bytes from a recovery server", async () => {
  for (const recovery of [undefined, { window: 1000 }]) {
    let lines = 0;
    await using server = testServer({
      ...(recovery && { recovery }),
      onOpen: (session) => void session.send("welcome"),
      onMessage: (session, line) => {
        lines++;
        session.send(`echo ${line}`);
      },
    });
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    await conn.write(utf8("hi\nbye\n"));
    await until(
      () => lines === 2,
      2000,
      "both lines in",
    );
    await conn.closeWrite();
    const got = decoder.decode(await readToEnd(conn));
    conn.close();
    assert.equal(
      got,
      "welcome\necho hi\necho bye\n",
      `recovery: ${!!recovery}`,
    );
  }
});

Deno.test("a server-speaks-first greeting reaches a silent plain client", async () => {
  await using server = testServer({
    recovery: { window: 1000, helloTimeout: 50 },
    onOpen: (session) => void session.send("welcome"),
  });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  const buffer = new Uint8Array(64);
  const n = await within(conn.read(buffer), 2000, "the greeting");
  conn.close();
  assert.equal(decoder.decode(buffer.subarray(0, n!)), "welcome\n");
});

Deno.test("connect({ recovery }) to a server without it fails, saying why", async () => {
  // Its decode error (the preamble is not UTF-8) goes here, not to the log.
  await using server = testServer({ onError: () => {} });
  await assert.rejects(
    connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
      recovery: true,
      connectTimeout: 300,
    }),
    /does not speak recovery/,
  );
});

Deno.test("connect({ recovery }) options are checked", async () => {
  await assert.rejects(
    connect({
      hostname: "127.0.0.1",
      port: 1,
      // @ts-expect-error: not an option
      recovery: { maxMesages: 10 },
    }),
    /maxMesages/,
  );
});

Deno.test("recovery options are checked", () => {
  assert.throws(
    () =>
      listen({
        hostname: "127.0.0.1",
        port: 0,
        // @ts-expect-error: not an option
        recovery: { windw: 10 },
      }),
    /windw/,
  );
  assert.throws(
    () => listen({ hostname: "127.0.0.1", port: 0, recovery: { window: -1 } }),
    /recovery\.window/,
  );
  assert.throws(
    () =>
      listen({ hostname: "127.0.0.1", port: 0, recovery: { maxMessages: 0 } }),
    /recovery\.maxMessages/,
  );
});
