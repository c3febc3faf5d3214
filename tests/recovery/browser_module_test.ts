// The browser client module (src/browser/microsocket.js), run by Deno's
// own WebSocket against a real server: it resumes after a cut with nothing
// lost either way, and starts afresh (recovered: false) past the window.
// The Chromium test (chromium_test.ts) runs it in a browser.
import assert from "node:assert/strict";
import { connect } from "../../src/browser/microsocket.js";
import { testServer } from "../_server.ts";
import { delay, until } from "../_util.ts";
import { Proxy } from "./_proxy.ts";

Deno.test("browser module: a cut resumes the session, nothing lost either way", async () => {
  const fromPage: string[] = [];
  await using server = testServer({
    transport: "websocket",
    recovery: { window: 5000 },
    onOpen: (session) => void session.join("feed"),
    onMessage: (_session, line) => void fromPage.push(line),
  });
  await using proxy = new Proxy(server.addr.port);
  const got: string[] = [];
  const opens: boolean[] = [];
  const socket = connect(`ws://127.0.0.1:${proxy.port}/`, {
    initialDelay: 20,
    maxDelay: 100,
    onOpen: ({ recovered }) => void opens.push(recovered),
    onMessage: (data) => void got.push(String(data)),
  });
  try {
    await until(() => opens.length === 1, 2000, "the session");
    for (let n = 1; n <= 100; n++) {
      server.sessions.broadcast(String(n), { room: "feed" });
      assert.ok(socket.send(`p${n}`));
      if (n === 40) {
        proxy.blocked = true;
        for (const pair of [...proxy.pairs]) proxy.cut(pair);
      }
      if (n === 70) proxy.blocked = false;
      await delay(2);
    }
    await until(() => got.length >= 100, 5000, "every message");
    await until(() => fromPage.length >= 100, 5000, "every page message");
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => `${i + 1}`));
    assert.deepEqual(
      fromPage,
      Array.from({ length: 100 }, (_, i) => `p${i + 1}`),
    );
    assert.deepEqual(opens, [false, true]);
    assert.equal(socket.recovered, true);
  } finally {
    socket.close();
  }
});

Deno.test("browser module: past the window, a fresh session and recovered false", async () => {
  await using server = testServer({
    transport: "websocket",
    recovery: { window: 200 },
  });
  await using proxy = new Proxy(server.addr.port);
  const opens: boolean[] = [];
  const socket = connect(`ws://127.0.0.1:${proxy.port}/`, {
    initialDelay: 20,
    maxDelay: 50,
    onOpen: ({ recovered }) => void opens.push(recovered),
  });
  try {
    await until(() => opens.length === 1, 2000, "the session");
    const first = socket.id;
    proxy.blocked = true;
    for (const pair of [...proxy.pairs]) proxy.cut(pair);
    await until(() => server.sessions.size === 0, 3000, "the window's end");
    proxy.blocked = false;
    await until(() => opens.length === 2, 3000, "a fresh session");
    assert.deepEqual(opens, [false, false]);
    assert.notEqual(socket.id, first);
  } finally {
    socket.close();
  }
});
