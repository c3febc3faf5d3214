// Interop smoke test on real loopback sockets: a throwaway echo server built
// from nothing but the socket-free WebSocket modules (head parser, handshake,
// frame parser, frame writer) over `conn.read`/`conn.write`, exercised by
// Deno's global `WebSocket` client — an independent RFC 6455 implementation.
// It proves the pieces interoperate before they are wired into Session.
import assert from "node:assert/strict";
import { RequestHeadParser } from "../src/websocket/_http_head.ts";
import {
  checkUpgrade,
  httpResponse,
  upgradeResponse,
} from "../src/websocket/_handshake.ts";
import {
  FrameParser,
  type WebSocketMessage,
} from "../src/websocket/_frame_parser.ts";
import {
  encodeCloseFrame,
  encodeFrame,
  encodeFrameInto,
  encodeTextFrameInto,
  Opcode,
} from "../src/websocket/_frame_writer.ts";
import { portOf, within } from "./_util.ts";

const MAX_MESSAGE = 8 << 20;
const FRAGMENT = 1 << 20;

/** What the echo server saw, for the tests to check. */
interface Seen {
  closes: [number, string][];
  pongs: string[];
  errors: unknown[];
}

/**
 * A minimal echo server: upgrades requests for `/ws` (subprotocol
 * `chat.v1`), answers `GET /` with a page and anything else with 404, and
 * echoes every message. Binary messages over 1 MiB go back in 1 MiB
 * fragments. Text commands: `ping:<x>` sends a ping and reports the pong as
 * `pong:<x>`; `close:<code>` closes from the server side.
 */
function startEchoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const seen: Seen = { closes: [], pongs: [], errors: [] };

  async function serve(conn: Deno.Conn): Promise<void> {
    // One write at a time, in order: the single-writer rule.
    let tail = Promise.resolve();
    const send = (bytes: Uint8Array) => {
      tail = tail.then(async () => {
        for (let at = 0; at < bytes.length;) {
          at += await conn.write(bytes.subarray(at));
        }
      }).catch(() => {});
      return tail;
    };
    let closeSent = false;
    const head = new RequestHeadParser();
    const parser = new FrameParser({
      role: "server",
      maxMessageBytes: MAX_MESSAGE,
      onPing: (payload) => void send(encodeFrame(Opcode.pong, payload)),
      onPong: (payload) => {
        const text = new TextDecoder().decode(payload);
        seen.pongs.push(text);
        void send(encodeFrame(Opcode.text, `pong:${text}`));
      },
      onClose: (code, reason) => {
        seen.closes.push([code, reason]);
        if (!closeSent) {
          closeSent = true;
          void send(encodeCloseFrame(code === 1005 ? undefined : code, reason));
        }
      },
    });
    const echo = (message: WebSocketMessage) => {
      if (typeof message === "string") {
        if (message.startsWith("ping:")) {
          void send(encodeFrame(Opcode.ping, message.slice(5)));
        } else if (message.startsWith("close:")) {
          closeSent = true;
          void send(encodeCloseFrame(Number(message.slice(6)), "server bye"));
        } else {
          const out = new Uint8Array(message.length * 3 + 14);
          void send(
            out.subarray(0, encodeTextFrameInto(out, 0, message, true, false)),
          );
        }
        return;
      }
      if (message.length <= FRAGMENT) {
        const out = new Uint8Array(message.length + 14);
        void send(
          out.subarray(
            0,
            encodeFrameInto(out, 0, Opcode.binary, message, true, false),
          ),
        );
        return;
      }
      for (let at = 0; at < message.length; at += FRAGMENT) {
        const end = Math.min(message.length, at + FRAGMENT);
        void send(encodeFrame(
          at === 0 ? Opcode.binary : Opcode.continuation,
          message.subarray(at, end),
          end === message.length,
        ));
      }
    };

    const buffer = new Uint8Array(65536);
    let upgraded = false;
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let chunk = buffer.subarray(0, n);
        if (!upgraded) {
          const used = head.push(chunk);
          if (used < 0) continue;
          const decision = checkUpgrade(head.head!, {
            path: "/ws",
            protocols: ["chat.v1"],
          });
          if (decision.kind === "http") {
            await send(
              head.head!.path === "/"
                ? httpResponse(200, "<!doctype html><title>echo</title>", {
                  "Content-Type": "text/html; charset=utf-8",
                })
                : httpResponse(404, "Not found\n"),
            );
            break;
          }
          if (decision.kind === "reject") {
            await send(decision.response);
            break;
          }
          await send(await upgradeResponse(decision.key, decision.protocol));
          upgraded = true;
          chunk = chunk.subarray(used);
        }
        parser.decode(chunk, echo);
        if (parser.closed) break;
      }
    } catch (error) {
      seen.errors.push(error);
    } finally {
      await tail;
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // the listener was closed
      }
      conns.add(conn);
      const task = serve(conn);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();

  return {
    port: portOf(listener.addr),
    seen,
    async close(): Promise<void> {
      listener.close();
      await accepting;
      // Let connections finish their closing handshake, then cut the rest.
      await within(Promise.all(tasks), 2000, "connections ending").catch(
        () => {},
      );
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all(tasks);
    },
  };
}

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
