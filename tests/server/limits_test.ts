// Connection limits on real sockets: maxConnections, maxConnectionsPerIp,
// onAccept vetoes, an accept storm of 5,000 clients, and an accept loop that
// survives running out of file descriptors (EMFILE).
import assert from "node:assert/strict";
import { lines, listen, type Session } from "../../mod.ts";
import {
  dial,
  portOf,
  testServer,
  type TestServerOptions,
} from "../_server.ts";
import { delay, LineReader, until, utf8, within } from "../_util.ts";

/** Connects and tells whether the server greeted ("hi") or hung up. */
async function greeted(conn: Deno.Conn): Promise<boolean> {
  try {
    const line = await new LineReader(conn).next(5000);
    return line === "hi";
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset) return false;
    throw error;
  }
}

function greetingServer(options: TestServerOptions = {}) {
  return testServer({
    codec: lines(),
    onOpen: (session) => void session.send("hi"),
    ...options,
  });
}

Deno.test("maxConnections closes connections over the limit at once, counts them, and frees slots on close", async () => {
  await using server = greetingServer({ maxConnections: 3 });
  const port = portOf(server.addr);
  const conns = await Promise.all([1, 2, 3].map(() => dial(port)));
  assert.deepEqual(await Promise.all(conns.map(greeted)), [true, true, true]);
  const started = performance.now();
  using extra = await dial(port);
  assert.equal(await greeted(extra), false);
  assert.ok(performance.now() - started < 2000, "refused at once");
  assert.equal(server.stats().rejected.maxConnections, 1);
  assert.equal(server.stats().sessionsOpen, 3);
  conns[0]!.close();
  await until(() => server.stats().sessionsOpen === 2);
  using again = await dial(port);
  assert.equal(await greeted(again), true);
  for (const conn of conns.slice(1)) conn.close();
});

Deno.test("maxConnections holds while an async onAccept is still deciding", async () => {
  let deciding = 0;
  let most = 0;
  await using server = greetingServer({
    maxConnections: 5,
    onAccept: async () => {
      most = Math.max(most, ++deciding);
      await delay(100);
      deciding--;
      return true;
    },
  });
  const conns = await Promise.all(
    Array.from({ length: 20 }, () => dial(server)),
  );
  const outcomes = await Promise.all(conns.map(greeted));
  assert.equal(outcomes.filter((ok) => ok).length, 5);
  const stats = server.stats();
  assert.equal(stats.sessionsTotal, 5);
  assert.equal(stats.rejected.maxConnections, 15);
  assert.ok(most <= 5, `${most} connections were being vetted at once`);
  for (const conn of conns) conn.close();
});

Deno.test("maxConnectionsPerIp refuses the extra connections of one address and releases them on close and veto", async () => {
  let veto = false;
  await using server = greetingServer({
    maxConnectionsPerIp: 2,
    onAccept: () => !veto,
  });
  const port = portOf(server.addr);
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => dial(port)));
  const outcomes = await Promise.all([a!, b!, c!].map(greeted));
  assert.deepEqual(outcomes.sort(), [false, true, true]);
  assert.equal(server.stats().rejected.maxConnectionsPerIp, 1);
  // Vetoed connections don't keep a slot.
  a!.close();
  await until(() => server.stats().sessionsOpen === 1);
  veto = true;
  for (let i = 0; i < 5; i++) {
    using vetoed = await dial(port);
    assert.equal(await greeted(vetoed), false);
  }
  veto = false;
  using d = await dial(port);
  assert.equal(await greeted(d), true);
  const stats = server.stats();
  assert.equal(stats.rejected.vetoed, 5);
  assert.equal(stats.rejected.maxConnectionsPerIp, 1);
  b!.close();
  c!.close();
});

Deno.test("maxConnectionsPerIp is refused for Unix sockets, which have no address; their peers are not limited", async () => {
  const path = await Deno.makeTempFile({ suffix: ".sock" });
  await Deno.remove(path);
  const unix = {
    transport: "unix",
    path,
    codec: lines(),
    onOpen: (session: Session<unknown, string, string>) =>
      void session.send("hi"),
  } as const;
  assert.throws(
    () => listen({ ...unix, maxConnectionsPerIp: 1 } as never),
    /^TypeError: "maxConnectionsPerIp" applies only to transports "tcp" and "websocket", not "unix"/,
  );
  const server = listen(unix);
  try {
    const conns = await Promise.all(
      [1, 2, 3].map(() => Deno.connect({ transport: "unix", path })),
    );
    assert.deepEqual(await Promise.all(conns.map(greeted)), [true, true, true]);
    for (const conn of conns) conn.close();
  } finally {
    await server.shutdown();
  }
});

/** Runs a fixture script with its own open-file limit; returns its stdout lines. */
function spawnFixture(script: string, args: string[], nofile: number) {
  const command = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${nofile} || exit 77; exec "$0" run -A "$@"`,
      Deno.execPath(),
      new URL(`../_fixtures/${script}`, import.meta.url).pathname,
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  return command.spawn();
}

Deno.test("An accept storm of 5,000 silent clients: every one is greeted or refused by maxConnections, none hangs", async () => {
  // Both ends of 5,000 connections live in the fixture's process, which
  // raises its own descriptor limit (`.ci/run` allows 65536).
  const child = spawnFixture("accept_storm.ts", ["5000", "4000"], 12000);
  const { code, stdout, stderr } = await within(
    child.output(),
    60000,
    "the storm",
  );
  const err = new TextDecoder().decode(stderr);
  assert.notEqual(code, 77, "cannot raise the open-file limit to 12000");
  assert.equal(code, 0, err);
  const result = JSON.parse(new TextDecoder().decode(stdout));
  assert.deepEqual(result.outcomes, { greeted: 4000, refused: 1000 });
  assert.equal(result.stats.sessionsTotal, 4000);
  assert.equal(result.stats.rejected.maxConnections, 1000);
  assert.equal(result.stats.acceptErrors, 0);
  assert.ok(result.took < 30000, `the storm took ${result.took} ms`);
});

Deno.test("The accept loop survives EMFILE: errors are counted and reported, and it accepts again once descriptors free up", async () => {
  // The server runs under a limit of 64 descriptors, ~20 of them Deno's own.
  const child = spawnFixture("lines_server.ts", [], 64);
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let head = "";
    while (!head.includes("\n")) {
      const { value, done } = await within(stdout.read(), 10000, "the port");
      if (done) break;
      head += value;
    }
    const { port } = JSON.parse(head.split("\n")[0]!);
    // 80 clients: the server runs out of descriptors part-way through.
    const conns = await Promise.all(
      Array.from({ length: 80 }, () => dial(port)),
    );
    const readers = conns.map((conn) => new LineReader(conn));
    const greetings = readers.map((reader) =>
      reader.next(1500).then((line) => line === "hi", () => false)
    );
    const greetedCount = (await Promise.all(greetings)).filter(Boolean).length;
    assert.ok(greetedCount >= 20, `only ${greetedCount} accepted`);
    assert.ok(greetedCount < 80, "the descriptor limit was never reached");
    // One of the accepted clients asks how the accept loop is doing.
    const index = (await Promise.all(greetings)).indexOf(true);
    await conns[index]!.write(utf8("stats\n"));
    const during = JSON.parse((await readers[index]!.next(5000))!);
    assert.ok(during.acceptErrors > 0, "EMFILE was counted");
    assert.ok(
      during.acceptErrorMessages.some((m: string) =>
        /too many open files/i.test(m)
      ),
      JSON.stringify(during.acceptErrorMessages),
    );
    // Backoff, not a busy loop: a handful of failed accepts per second.
    assert.ok(
      during.acceptErrors < 100,
      `${during.acceptErrors} accept errors`,
    );
    for (const conn of conns) conn.close();
    // Descriptors free up; the loop (backing off at most 1 s) accepts again.
    let fresh: Deno.Conn | undefined;
    let ok = false;
    const deadline = Date.now() + 10000;
    while (!ok && Date.now() < deadline) {
      fresh?.close();
      fresh = await dial(port);
      ok = await new LineReader(fresh).next(3000).then(
        (line) => line === "hi",
        () => false,
      );
    }
    assert.ok(ok, "accepting again after EMFILE");
    const reader = new LineReader(fresh!);
    await fresh!.write(utf8("stats\n"));
    const after = JSON.parse((await reader.next(5000))!);
    assert.equal(after.sessionsOpen, 1);
    assert.ok(after.sessionsTotal >= 81, `${after.sessionsTotal} sessions`);
    await fresh!.write(utf8("quit\n"));
    assert.equal(await reader.next(5000), null);
    fresh!.close();
    const status = await within(child.status, 10000, "the fixture's exit");
    assert.equal(status.code, 0);
  } finally {
    await stdout.cancel().catch(() => {});
    await child.stderr.cancel().catch(() => {});
    try {
      child.kill();
    } catch { /* exited */ }
    await child.status;
  }
});

Deno.test("maxConnectionsPerIp counts each source address separately", async () => {
  // Deno.connect can't choose a source address; Node's net can. Node opens
  // two connections from 127.0.0.2 while 127.0.0.1 holds its only slot.
  await using server = greetingServer({
    maxConnectionsPerIp: 1,
    onError: () => {},
  });
  const port = portOf(server.addr);
  using local = await dial(port);
  assert.equal(await greeted(local), true);
  const script = `
    const net = require("node:net");
    let pending = 2; const seen = [];
    for (let i = 0; i < 2; i++) {
      const s = net.connect({ host: "127.0.0.1", port: ${port}, localAddress: "127.0.0.2" });
      let text = "";
      s.on("data", (d) => { text += d; });
      s.on("close", () => { seen.push(text.startsWith("hi") ? "greeted" : "refused");
        if (--pending === 0) { console.log(seen.sort().join(",")); } });
      s.on("error", () => {});
      setTimeout(() => s.destroy(), 1000);
    }`;
  const { code, stdout } = await new Deno.Command("node", {
    args: ["-e", script],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.equal(code, 0);
  assert.equal(new TextDecoder().decode(stdout).trim(), "greeted,refused");
  const stats = server.stats();
  assert.equal(stats.rejected.maxConnectionsPerIp, 1);
  assert.equal(stats.sessionsTotal, 2);
});
