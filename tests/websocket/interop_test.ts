// Interop smoke test on real loopback sockets: the echo server of
// `_ws_echo_server.ts` (built only from the socket-free WebSocket modules)
// exercised by Deno's global `WebSocket` client, an independent RFC 6455
// implementation; and our client side against Deno's native server. It
// proves the pieces interoperate before they are wired into Session.
import assert from "node:assert/strict";
import { ResponseHeadParser } from "../../src/websocket/_http_head.ts";
import {
  checkUpgradeResponse,
  clientHandshake,
} from "../../src/websocket/_handshake.ts";
import {
  FrameParser,
  type WebSocketMessage,
} from "../../src/websocket/_frame_parser.ts";
import {
  encodeCloseFrame,
  encodeFrame,
  Opcode,
} from "../../src/websocket/_frame_writer.ts";
import { within, writeAll } from "../_util.ts";
import { FRAGMENT, MAX_MESSAGE, startEchoServer } from "./_ws_echo_server.ts";
import { concat as concatBytes } from "../_split.ts";

/** A connected Deno WebSocket client with a queue of received messages. */
async function connect(port: number, protocols?: string[]) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, protocols);
  ws.binaryType = "arraybuffer";
  const inbox: (string | Uint8Array)[] = [];
  let wake: (() => void) | undefined;
  const closed = new Promise<CloseEvent>((resolve) => {
    ws.onclose = resolve;
  });
  ws.onmessage = (event) => {
    inbox.push(
      typeof event.data === "string" ? event.data : new Uint8Array(event.data),
    );
    wake?.();
  };
  await within(
    new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("WebSocket failed to open"));
    }),
    5000,
    "WebSocket open",
  );
  return {
    ws,
    closed: within(closed, 10000, "WebSocket close"),
    async next(): Promise<string | Uint8Array> {
      const deadline = Date.now() + 10000;
      while (inbox.length === 0) {
        await within(
          new Promise<void>((resolve) => (wake = resolve)),
          Math.max(1, deadline - Date.now()),
          "a message",
        );
      }
      return inbox.shift()!;
    },
  };
}

Deno.test("interop: Deno's WebSocket echoes text and binary through our modules", async () => {
  const server = startEchoServer();
  try {
    const client = await connect(server.port, ["chat.v2", "chat.v1"]);
    assert.equal(client.ws.protocol, "chat.v1");
    for (const message of ["hello", "", "héllo wörld 😀", "x".repeat(70000)]) {
      client.ws.send(message);
      assert.equal(await client.next(), message);
    }
    for (const size of [0, 1, 125, 126, 65535, 65536, 100000]) {
      const bytes = new Uint8Array(size).map((_, i) => i * 31);
      client.ws.send(bytes);
      assert.deepEqual(await client.next(), bytes);
    }
    client.ws.close(1000, "done");
    const event = await client.closed;
    assert.equal(event.code, 1000);
    assert.ok(event.wasClean);
  } finally {
    await server.close();
  }
  assert.deepEqual(server.seen.closes, [[1000, "done"]]);
  assert.deepEqual(server.seen.errors, []);
});

Deno.test("interop: 4 MiB messages both ways, fragmented on the way back", async () => {
  const server = startEchoServer();
  try {
    const client = await connect(server.port);
    const size = 4 << 20;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 997) bytes[i] = i & 0xff;
    const started = performance.now();
    client.ws.send(bytes);
    const echoed = await client.next();
    const ms = performance.now() - started;
    assert.ok(echoed instanceof Uint8Array);
    assert.equal(echoed.length, size);
    assert.ok(echoed.every((b, i) => b === bytes[i]));
    const text = "€".repeat(size / 3);
    client.ws.send(text);
    assert.ok((await client.next()) === text);
    console.log(`4 MiB binary round trip: ${ms.toFixed(0)} ms`);
    client.ws.close();
    assert.equal((await client.closed).code, 1005);
  } finally {
    await server.close();
  }
  assert.deepEqual(server.seen.closes, [[1005, ""]]);
  assert.deepEqual(server.seen.errors, []);
});

Deno.test("interop: the client answers our pings with pongs", async () => {
  const server = startEchoServer();
  try {
    const client = await connect(server.port);
    client.ws.send("ping:are you there");
    assert.equal(await client.next(), "pong:are you there");
    client.ws.send("ping:");
    assert.equal(await client.next(), "pong:");
    client.ws.close(4000, "bye");
    const event = await client.closed;
    assert.equal(event.code, 4000);
    assert.equal(event.reason, "bye");
  } finally {
    await server.close();
  }
  assert.deepEqual(server.seen.pongs, ["are you there", ""]);
  assert.deepEqual(server.seen.closes, [[4000, "bye"]]);
});

Deno.test("interop: a close from the server reaches the client with its code", async () => {
  const server = startEchoServer();
  try {
    const client = await connect(server.port);
    client.ws.send("close:4001");
    const event = await client.closed;
    assert.equal(event.code, 4001);
    assert.equal(event.reason, "server bye");
    assert.ok(event.wasClean);
  } finally {
    await server.close();
  }
  // The client echoed the close, as RFC 6455 section 5.5.1 asks.
  assert.deepEqual(server.seen.closes, [[4001, "server bye"]]);
});

Deno.test("interop: plain HTTP gets a page or 404, a wrong path no upgrade", async () => {
  const server = startEchoServer();
  try {
    const page = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(await page.text(), /<title>echo<\/title>/);
    const missing = await fetch(`http://127.0.0.1:${server.port}/nothing`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/elsewhere`);
    const event = await within(
      new Promise<CloseEvent>((resolve) => (ws.onclose = resolve)),
      5000,
      "refused WebSocket",
    );
    // The handshake failed: not a clean close (Deno reports code 0 here,
    // browsers 1006).
    assert.equal(event.wasClean, false);
    assert.notEqual(event.code, 1000);
  } finally {
    await server.close();
  }
});

/**
 * Our client side (handshake request, response check, masked writer,
 * client-role parser) on a raw TCP connection, for the tests below.
 */
async function rawClient(port: number, protocols: string[] = []) {
  const handshake = clientHandshake(`ws://127.0.0.1:${port}/ws`, {
    protocols,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const events:
    (WebSocketMessage | ["pong", string] | ["close", number, string])[] = [];
  let wake: (() => void) | undefined;
  const push = (event: (typeof events)[number]) => {
    events.push(event);
    wake?.();
  };
  const parser = new FrameParser({
    role: "client",
    maxMessageBytes: MAX_MESSAGE,
    onPong: (p) => push(["pong", new TextDecoder().decode(p)]),
    onClose: (code, reason) => push(["close", code, reason]),
  });
  const head = new ResponseHeadParser();
  const buffer = new Uint8Array(65536);
  await writeAll(conn, handshake.request);
  let rest: Uint8Array | undefined;
  while (rest === undefined) {
    const n = await within(conn.read(buffer), 5000, "handshake response");
    if (n === null) throw new Error("Closed during the handshake");
    const used = head.push(buffer.subarray(0, n));
    if (used >= 0) rest = buffer.slice(used, n);
  }
  const protocol = await checkUpgradeResponse(head.head!, handshake);
  parser.decode(rest, push);
  const reading = (async () => {
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) return;
        parser.decode(buffer.subarray(0, n), push);
      }
    } catch {
      // Closed under us.
    }
  })();
  return {
    protocol,
    send: (bytes: Uint8Array) => writeAll(conn, bytes),
    async next(): Promise<(typeof events)[number]> {
      const deadline = Date.now() + 10000;
      while (events.length === 0) {
        await within(
          new Promise<void>((resolve) => (wake = resolve)),
          Math.max(1, deadline - Date.now()),
          "an event",
        );
      }
      return events.shift()!;
    },
    async close(): Promise<void> {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      await reading;
    },
  };
}

Deno.test("interop: our client side talks to Deno.serve + upgradeWebSocket", async () => {
  const closes: [number, string][] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request, {
        protocol: "chat.v1",
      });
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => socket.send(event.data);
      socket.onclose = (event) => void closes.push([event.code, event.reason]);
      return response;
    },
  );
  const client = await rawClient(server.addr.port, ["chat.v0", "chat.v1"]);
  try {
    assert.equal(client.protocol, "chat.v1");
    await client.send(encodeFrame(Opcode.text, "héllo", true, true));
    assert.equal(await client.next(), "héllo");
    // A fragmented text message with a ping in the middle.
    await client.send(concatBytes(
      encodeFrame(Opcode.text, "frag", false, true),
      encodeFrame(Opcode.ping, "p1", true, true),
      encodeFrame(Opcode.continuation, "ment", true, true),
    ));
    assert.deepEqual(await client.next(), ["pong", "p1"]);
    assert.equal(await client.next(), "fragment");
    // 4 MiB binary in masked fragments.
    const size = 4 << 20;
    const bytes = new Uint8Array(size).map((_, i) => i % 251);
    for (let at = 0; at < size; at += FRAGMENT) {
      await client.send(encodeFrame(
        at === 0 ? Opcode.binary : Opcode.continuation,
        bytes.subarray(at, at + FRAGMENT),
        at + FRAGMENT >= size,
        true,
      ));
    }
    const echoed = await client.next();
    assert.ok(echoed instanceof Uint8Array);
    assert.equal(echoed.length, size);
    assert.ok(echoed.every((b, i) => b === bytes[i]));
    // Close: the server echoes our code.
    await client.send(encodeCloseFrame(4002, "client bye", true));
    assert.deepEqual(await client.next(), ["close", 4002, "client bye"]);
  } finally {
    await client.close();
    await server.shutdown();
  }
  assert.deepEqual(closes, [[4002, "client bye"]]);
});
