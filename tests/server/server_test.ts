import assert from "node:assert/strict";
import { CloseReason, lengthPrefixed, lines, listen } from "../../mod.ts";
import { dial, testServer } from "../_server.ts";
import {
  LineReader,
  readBytes,
  readToEnd,
  until,
  utf8,
  within,
  writeAll,
} from "../_util.ts";

function echoServer(maxFrameBytes = 1024) {
  return testServer({
    codec: lengthPrefixed({ maxFrameBytes }),
    onMessage: (session, payload) => void session.send(payload),
    onError: () => {},
  });
}

function frame(payload: number[]): Uint8Array {
  return lengthPrefixed().encode(new Uint8Array(payload));
}

Deno.test("listen() closes only the session that sends an oversized or negative length header", async () => {
  await using server = echoServer();
  const good = await dial(server);
  const headers = [
    [0xff, 0xff, 0xff, 0xff], // -1 as int32: the seed panics
    [0x7f, 0xff, 0xff, 0xff], // 2 GiB: the seed buffers without bound
    [0x00, 0x00, 0x04, 0x01], // limit + 1
  ];
  for (const header of headers) {
    const bad = await dial(server);
    await writeAll(bad, new Uint8Array([...header, 1, 2, 3]));
    assert.equal((await readToEnd(bad)).length, 0, "closed without reply");
    bad.close();
    await writeAll(good, frame([7, 7]));
    assert.deepEqual([...await readBytes(good, 6)], [0, 0, 0, 2, 7, 7]);
  }
  await until(() => server.stats().closedByReason["frame too large"] === 3);
  assert.equal(server.sessions.size, 1);
  good.close();
});

Deno.test("listen() echoes frames split at every byte position", async () => {
  await using server = echoServer();
  const conn = await dial(server);
  const bytes = new Uint8Array([
    ...frame([1, 2, 3]),
    ...frame([]),
    ...frame([4]),
  ]);
  for (let cut = 1; cut < bytes.length; cut++) {
    await writeAll(conn, bytes.subarray(0, cut));
    await new Promise((resolve) => setTimeout(resolve, 1));
    await writeAll(conn, bytes.subarray(cut));
    const echoed = await readBytes(conn, bytes.length);
    assert.deepEqual([...echoed], [...bytes], `cut at ${cut}`);
  }
  conn.close();
});

Deno.test("Server.shutdown() flushes queued bytes to a reading peer before closing", async () => {
  const server = testServer({
    codec: lines(),
    outboundBudget: 64 << 20,
  });
  const conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const [session] = [...server.sessions];
  const COUNT = 50_000;
  for (let i = 0; i < COUNT; i++) session!.send(`frame ${i} ${"q".repeat(80)}`);
  const reading = readToEnd(conn, 20_000);
  await server.shutdown({ timeout: 10_000 });
  const text = new TextDecoder().decode(await reading);
  const got = text.split("\n");
  assert.equal(got.pop(), "");
  assert.equal(got.length, COUNT);
  for (let i = 0; i < COUNT; i++) {
    if (got[i] !== `frame ${i} ${"q".repeat(80)}`) assert.fail(`frame ${i}`);
  }
  assert.equal(await session!.closed, CloseReason.ServerShutdown);
  conn.close();
});

Deno.test("Server.shutdown() cuts peers that don't read at the timeout", async () => {
  const server = testServer({
    codec: lengthPrefixed({ maxFrameBytes: 1 << 26 }),
    outboundBudget: 1 << 26,
  });
  const conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const [session] = [...server.sessions];
  session!.send(new Uint8Array(48 << 20)); // more than loopback buffers hold
  const started = performance.now();
  await server.shutdown({ timeout: 200 });
  const took = performance.now() - started;
  assert.ok(took >= 150 && took < 3000, `shutdown took ${took} ms`);
  assert.equal(server.sessions.size, 0);
  conn.close();
});

Deno.test("listen() refuses connections over maxConnections and counts them", async () => {
  await using server = testServer({
    maxConnections: 2,
  });
  const kept = [
    await dial(server),
    await dial(server),
  ];
  await until(() => server.sessions.size === 2);
  const extra = await dial(server);
  assert.equal((await readToEnd(extra)).length, 0);
  extra.close();
  assert.equal(server.stats().rejected.maxConnections, 1);
  kept[0]!.close();
  await until(() => server.sessions.size === 1);
  const again = await dial(server);
  await until(() => server.sessions.size === 2);
  again.close();
  kept[1]!.close();
});

Deno.test("listen() reports handler exceptions to onError and keeps serving", async () => {
  const errors: [unknown, number | undefined][] = [];
  await using server = testServer({
    onOpen: (session) => {
      if (session.id === 1) throw new Error("open failed");
    },
    onMessage: (session, line) => {
      if (line === "boom") throw new Error("boom");
      session.send(`ok ${line}`);
    },
    onError: (error, session) => errors.push([error, session?.id]),
  });
  const conn = await dial(server);
  const reader = new LineReader(conn);
  await writeAll(conn, utf8("boom\nfine\n"));
  assert.equal(await reader.next(), "ok fine");
  assert.deepEqual(
    errors.map(([e, id]) => [(e as Error).message, id]),
    [["open failed", 1], ["boom", 1]],
  );
  conn.close();
});

Deno.test("listen() serves a Unix domain socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/chat.sock`;
  try {
    await using server = listen({
      transport: "unix",
      path,
      onMessage: (session, line) => void session.send(`unix ${line}`),
    });
    assert.equal(server.addr.transport, "unix");
    const conn = await Deno.connect({ transport: "unix", path });
    await writeAll(conn, utf8("hi\n"));
    assert.equal(await new LineReader(conn).next(), "unix hi");
    conn.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listen() shuts down when its AbortSignal aborts", async () => {
  const controller = new AbortController();
  const server = testServer({
    signal: controller.signal,
  });
  const conn = await dial(server);
  await until(() => server.sessions.size === 1);
  controller.abort();
  await within(server.closed, 5000, "shutdown");
  assert.equal((await readToEnd(conn)).length, 0);
  conn.close();
  await assert.rejects(() => dial(server));
});

Deno.test("Server.shutdown() is idempotent and closes sessions with the given reason", async () => {
  const server = testServer();
  const conn = await dial(server);
  await until(() => server.sessions.size === 1);
  const [session] = [...server.sessions];
  const first = server.shutdown({ reason: "maintenance" });
  assert.equal(server.shutdown(), first);
  await first;
  assert.equal(await session!.closed, "maintenance");
  assert.equal(server.stats().closedByReason.maintenance, 1);
  conn.close();
});
