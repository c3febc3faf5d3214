// The safe defaults: a server is reachable only from this machine unless
// told otherwise, and a peer that starts a frame and never finishes it
// (slowloris) is cut without any option set.
import assert from "node:assert/strict";
import { CloseReason, listen } from "../../mod.ts";
import {
  DEFAULT_FRAME_TIMEOUT,
  DEFAULT_LISTEN_HOSTNAME,
} from "../../src/defaults.ts";
import { dial, testServer } from "../_server.ts";
import { until, utf8, writeAll } from "../_util.ts";

Deno.test("listen() without hostname binds the loopback address only", async () => {
  await using server = listen({ port: 0 });
  assert.equal(server.addr.hostname, "127.0.0.1");
  assert.equal(DEFAULT_LISTEN_HOSTNAME, "127.0.0.1");
  await using ws = listen({ transport: "websocket", port: 0 });
  assert.equal(ws.addr.hostname, "127.0.0.1");
});

// Runs `body` with the liveness clock `speed` times faster: intervals
// shortened and performance.now() stretched by the same factor, so a 30 s
// default is observed in a fraction of a second on a real socket.
async function fastClock<T>(speed: number, body: () => Promise<T>): Promise<T> {
  const realSetInterval = globalThis.setInterval;
  const realNow = performance.now.bind(performance);
  const origin = realNow();
  globalThis.setInterval = ((fn: () => void, ms?: number) =>
    realSetInterval(
      fn,
      Math.max(1, (ms ?? 0) / speed),
    )) as typeof setInterval;
  performance.now = () => origin + (realNow() - origin) * speed;
  try {
    return await body();
  } finally {
    globalThis.setInterval = realSetInterval;
    // Own property removed: the prototype's now() is back.
    delete (performance as { now?: unknown }).now;
  }
}

Deno.test("a slowloris peer that never finishes its line is cut by default, after frameTimeout", async () => {
  assert.equal(DEFAULT_FRAME_TIMEOUT, 30_000);
  await fastClock(100, async () => {
    const closes: { reason: string; at: number }[] = [];
    await using server = testServer({
      onClose: (_session, reason) =>
        void closes.push({ reason, at: performance.now() }),
    });
    using loris = await dial(server.addr.port);
    using quiet = await dial(server.addr.port);
    await until(() => server.sessions.size === 2);
    const started = performance.now();
    await writeAll(quiet, utf8("hello\n")); // complete, then silent
    await writeAll(loris, utf8("GET / HTTP/1.1")); // never ends its line
    await until(() => closes.length === 1, 5000, "the loris to be cut");
    assert.equal(closes[0]!.reason, CloseReason.FrameTimeout);
    const after = closes[0]!.at - started;
    assert.ok(after >= 29_000, `cut after ${after} ms of clock time`);
    // A peer quiet between frames is not cut (idleTimeout stays off).
    assert.equal(server.sessions.size, 1);
  });
});
