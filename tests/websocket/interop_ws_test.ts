// Interop with Node's most used WebSocket library: the `npm:ws` client
// (run under Deno's Node compatibility) against the echo server of
// `_ws_echo_server.ts`, built only from our socket-free modules. `ws` is
// strict about what servers send, offers permessage-deflate (which we
// decline), and, unlike a browser, can send pings and fragmented messages.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import WebSocket from "npm:ws@8";
import { within } from "../_util.ts";
import { startEchoServer } from "./_ws_echo_server.ts";

type Received = { data: string | Uint8Array } | { pong: string } | {
  close: [number, string];
};

/** Connects an npm:ws client with a queue of what it receives. */
async function connect(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, ["chat.v1"]);
  const inbox: Received[] = [];
  let wake: (() => void) | undefined;
  const push = (item: Received) => {
    inbox.push(item);
    wake?.();
  };
  ws.on(
    "message",
    (data: Buffer, isBinary: boolean) =>
      push({ data: isBinary ? new Uint8Array(data) : data.toString("utf8") }),
  );
  ws.on("pong", (data: Buffer) => push({ pong: data.toString("utf8") }));
  ws.on(
    "close",
    (code: number, reason: Buffer) =>
      push({ close: [code, reason.toString("utf8")] }),
  );
  await within(
    new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    }),
    5000,
    "npm:ws open",
  );
  return {
    ws,
    async next(): Promise<Received> {
      const deadline = Date.now() + 10000;
      while (inbox.length === 0) {
        await within(
          new Promise<void>((resolve) => (wake = resolve)),
          Math.max(1, deadline - Date.now()),
          "an npm:ws event",
        );
      }
      return inbox.shift()!;
    },
  };
}

Deno.test("interop: npm:ws client — messages, fragments, pings, 4 MiB, close codes", async () => {
  const server = startEchoServer();
  try {
    const client = await connect(server.port);
    const { ws } = client;
    assert.equal(ws.protocol, "chat.v1");
    assert.equal(ws.extensions, ""); // permessage-deflate declined
    ws.send("hello ✓");
    assert.deepEqual(await client.next(), { data: "hello ✓" });
    ws.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(await client.next(), { data: new Uint8Array([1, 2, 3]) });
    // A ping from the client: our server answers with the same payload.
    ws.ping("are you there");
    assert.deepEqual(await client.next(), { pong: "are you there" });
    // A fragmented text message, with a ping between the fragments.
    ws.send("frag", { fin: false });
    ws.ping("mid");
    ws.send("mént", { fin: true });
    assert.deepEqual(await client.next(), { pong: "mid" });
    assert.deepEqual(await client.next(), { data: "fragmént" });
    // 4 MiB both ways (the echo comes back in 1 MiB fragments).
    const size = 4 << 20;
    const bytes = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
    ws.send(bytes);
    const echoed = await client.next();
    assert.ok("data" in echoed && echoed.data instanceof Uint8Array);
    assert.equal(echoed.data.length, size);
    assert.ok(Buffer.from(echoed.data).equals(Buffer.from(bytes)));
    ws.close(4003, "npm bye");
    assert.deepEqual(await client.next(), { close: [4003, "npm bye"] });
  } finally {
    await server.close();
  }
  assert.deepEqual(server.seen.closes, [[4003, "npm bye"]]);
  assert.deepEqual(server.seen.errors, []);
});

Deno.test("interop: npm:ws client sees our server-side close code", async () => {
  const server = startEchoServer();
  try {
    const client = await connect(server.port);
    client.ws.send("close:4004");
    assert.deepEqual(await client.next(), { close: [4004, "server bye"] });
  } finally {
    await server.close();
  }
  assert.deepEqual(server.seen.closes, [[4004, "server bye"]]);
});
