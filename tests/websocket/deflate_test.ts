/// <reference lib="dom" />
// permessage-deflate (RFC 7692): negotiation, interop with npm:ws in both
// directions (fragmented compressed messages, window-bits offers), hostile
// peers (a deflate bomb, garbage, RSV1 where it may not be), and a
// broadcast compressed once for every member that negotiated it.
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { deflateRawSync } from "node:zlib";
import WebSocket, { WebSocketServer } from "npm:ws@8";
import {
  connect,
  lines,
  listen,
  type Server,
  type Session,
  webSocketCodec,
  webSocketMessages,
} from "../../mod.ts";
import { compressedAdapter } from "../../src/websocket/_adapt.ts";
import { Cluster, MemoryBrokerHub } from "../../cluster.ts";
import {
  deflateStats,
  negotiateDeflate,
} from "../../src/websocket/_deflate.ts";
import { browserMissing, launchBrowser } from "../_browser.ts";
import { FrameParser } from "../../src/websocket/_frame_parser.ts";
import { encodeFrame, Opcode } from "../../src/websocket/_frame_writer.ts";
import { ResponseHeadParser } from "../../src/websocket/_http_head.ts";
import { dial } from "../_server.ts";
import { delay, until, within, writeAll } from "../_util.ts";

const CHAT = JSON.stringify({
  type: "chat",
  room: "lobby",
  from: "alice",
  text: "hello everyone, how is it going today? the weather is nice here",
}).repeat(20);

function echoServer(perMessageDeflate: boolean | { threshold: number } = true) {
  return listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    codec: webSocketMessages(),
    perMessageDeflate,
    onMessage: (session, message) => void session.send(message),
    onError: () => {}, // the hostile cases' errors are expected
  });
}

/** An npm:ws client and what it receives. */
async function wsClient(
  port: number,
  perMessageDeflate: boolean | Record<string, unknown> = true,
) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate });
  const inbox: (string | Uint8Array | [number, string])[] = [];
  let extensions = "";
  ws.on("upgrade", (response: { headers: Record<string, string> }) => {
    extensions = response.headers["sec-websocket-extensions"] ?? "";
  });
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    inbox.push(isBinary ? new Uint8Array(data) : data.toString("utf8"));
  });
  ws.on("close", (code: number, reason: Buffer) => {
    inbox.push([code, reason.toString("utf8")]);
  });
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
    /** The server's Sec-WebSocket-Extensions answer. */
    extensions,
    async next(): Promise<string | Uint8Array | [number, string]> {
      await until(() => inbox.length > 0, 10000);
      return inbox.shift()!;
    },
    async close(): Promise<void> {
      if (ws.readyState === WebSocket.CLOSED) return;
      const closed = new Promise((resolve) => ws.once("close", resolve));
      ws.close();
      await within(closed, 5000, "npm:ws close");
    },
  };
}

Deno.test("deflate: npm:ws client negotiates it, both directions, fragmented", async () => {
  await using server = echoServer();
  const client = await wsClient(server.addr.port);
  try {
    assert.equal(client.ws.extensions, "permessage-deflate");
    assert.match(client.extensions, /server_no_context_takeover/);
    assert.match(client.extensions, /client_no_context_takeover/);
    client.ws.send(CHAT);
    assert.equal(await client.next(), CHAT);
    const binary = new TextEncoder().encode(CHAT);
    client.ws.send(binary);
    assert.deepEqual(await client.next(), binary);
    // Short ones stay below both thresholds, and still arrive.
    client.ws.send("hi");
    assert.equal(await client.next(), "hi");
    // A compressed message in three fragments (ws compresses the whole
    // message as one deflate stream across its frames).
    client.ws.send(CHAT.slice(0, 500), { fin: false, compress: true });
    client.ws.send(CHAT.slice(500, 1000), { fin: false, compress: true });
    client.ws.send(CHAT.slice(1000), { fin: true, compress: true });
    assert.equal(await client.next(), CHAT);
    // 4 MiB of repetitive text: compressed to a few KiB each way.
    const big = "x".repeat(1 << 20).repeat(1);
    client.ws.send(big);
    assert.equal(await client.next(), big);
    const stats = server.stats();
    assert.ok(
      stats.bytesOut < CHAT.length,
      `bytesOut ${stats.bytesOut} shows compression`,
    );
  } finally {
    await client.close();
  }
});

Deno.test("deflate: window-bits offers are honoured or declined", async () => {
  await using server = echoServer();
  // server_max_window_bits=10: the answer carries it, and we compress with
  // a 1 KiB window.
  const small = await wsClient(server.addr.port, {
    serverMaxWindowBits: 10,
    clientMaxWindowBits: 10,
  });
  try {
    assert.match(small.extensions, /server_max_window_bits=10/);
    assert.doesNotMatch(small.extensions, /client_max_window_bits/);
    small.ws.send(CHAT);
    assert.equal(await small.next(), CHAT);
  } finally {
    await small.close();
  }
  // A bare client_max_window_bits (as browsers send): accepted.
  const bare = await wsClient(server.addr.port, { clientMaxWindowBits: true });
  try {
    assert.match(bare.ws.extensions, /permessage-deflate/);
    bare.ws.send(CHAT);
    assert.equal(await bare.next(), CHAT);
  } finally {
    await bare.close();
  }
  // server_max_window_bits=8 cannot be met by zlib's raw deflate: declined,
  // the connection is plain.
  const eight = await wsClient(server.addr.port, { serverMaxWindowBits: 8 });
  try {
    assert.equal(eight.ws.extensions, "");
    eight.ws.send(CHAT);
    assert.equal(await eight.next(), CHAT);
  } finally {
    await eight.close();
  }
});

Deno.test("deflate: a server without it declines, and RSV1 then closes 1002", async () => {
  await using server = echoServer(false);
  const client = await wsClient(server.addr.port);
  try {
    assert.equal(client.ws.extensions, "");
    client.ws.send(CHAT);
    assert.equal(await client.next(), CHAT);
  } finally {
    await client.close();
  }
  const raw = await RawClient.open(server.addr.port, false);
  await raw.send(compressedFrame(Opcode.text, CHAT));
  assert.equal(await raw.closeCode(), 1002);
});

Deno.test("deflate: our client against an npm:ws server, both directions", async () => {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    perMessageDeflate: { threshold: 0 },
  });
  await within(
    new Promise((resolve) => wss.once("listening", resolve)),
    5000,
    "ws server",
  );
  let extensions = "";
  wss.on("connection", (socket: WebSocket) => {
    extensions = socket.extensions;
    socket.on(
      "message",
      (data: Buffer, isBinary: boolean) =>
        socket.send(data, { binary: isBinary }),
    );
  });
  const port = (wss.address() as { port: number }).port;
  const got: (string | Uint8Array)[] = [];
  try {
    await using client = await connect({
      url: `ws://127.0.0.1:${port}/`,
      codec: webSocketMessages({ role: "client" }),
      perMessageDeflate: { threshold: 0 },
      onMessage: (_session, message) => void got.push(message),
    });
    assert.match(extensions, /permessage-deflate/);
    client.send(CHAT);
    client.send(new TextEncoder().encode(CHAT));
    client.send("é");
    await until(() => got.length === 3, 5000);
    assert.equal(got[0], CHAT);
    assert.deepEqual(got[1], new TextEncoder().encode(CHAT));
    assert.equal(got[2], "é");
    assert.ok(client.session!.bytesOut < CHAT.length);
  } finally {
    for (const socket of wss.clients) socket.terminate();
    await new Promise((resolve) => wss.close(resolve));
  }
});

Deno.test("deflate: our client and server, lines() both ways", async () => {
  await using server = listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    perMessageDeflate: true,
    onMessage: (session, line) => void session.send(String(line)),
  });
  const got: string[] = [];
  await using client = await connect({
    url: `ws://127.0.0.1:${server.addr.port}/`,
    perMessageDeflate: true,
    onMessage: (_session, line) => void got.push(line),
  });
  client.send(CHAT);
  client.send("short");
  await until(() => got.length === 2, 5000);
  assert.deepEqual(got, [CHAT, "short"]);
  assert.ok(server.stats().bytesIn < CHAT.length);
  assert.ok(server.stats().bytesOut < CHAT.length);
});

// A raw client that negotiates permessage-deflate and sends anything.
class RawClient {
  readonly #conn: Deno.TcpConn;
  #code: number | undefined;
  #reading: Promise<void>;

  private constructor(conn: Deno.TcpConn, rest: Uint8Array) {
    this.#conn = conn;
    const parser = new FrameParser({
      role: "client",
      maxMessageBytes: 64 << 20,
      inflate: (p) => p,
      onClose: (code) => void (this.#code = code),
    });
    const feed = (bytes: Uint8Array) => {
      try {
        parser.decode(bytes, () => {});
      } catch {
        // Not what this test checks.
      }
    };
    feed(rest);
    this.#reading = (async () => {
      const buffer = new Uint8Array(65536);
      try {
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) break;
          feed(buffer.subarray(0, n));
        }
      } catch {
        // Reset.
      }
    })();
  }

  static async open(port: number, offer = true): Promise<RawClient> {
    const conn = await dial(port);
    await writeAll(
      conn,
      new TextEncoder().encode(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          "Sec-WebSocket-Version: 13\r\n" +
          (offer ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "") +
          "\r\n",
      ),
    );
    const head = new ResponseHeadParser();
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("EOF during the handshake");
      const used = head.push(buffer.subarray(0, n));
      if (used < 0) continue;
      assert.equal(head.head!.status, 101);
      assert.equal(
        head.head!.headers.has("sec-websocket-extensions"),
        offer,
      );
      return new RawClient(conn, buffer.slice(used, n));
    }
  }

  async send(bytes: Uint8Array): Promise<void> {
    try {
      await writeAll(this.#conn, bytes);
    } catch {
      // The server may have closed already.
    }
  }

  /** Waits for the server's close frame and the end; returns its code. */
  async closeCode(): Promise<number | undefined> {
    await within(this.#reading, 5000, "the server to close");
    try {
      this.#conn.close();
    } catch {
      // Closed.
    }
    return this.#code;
  }
}

// A masked client frame with RSV1 set around `payload` compressed.
function compressedFrame(
  opcode: Opcode,
  payload: string | Uint8Array,
  fin = true,
): Uint8Array {
  const bytes = typeof payload === "string"
    ? new TextEncoder().encode(payload)
    : payload;
  const deflated = deflateRawSync(bytes, { finishFlush: 2 }).subarray(0, -4);
  return rsv1(encodeFrame(opcode, new Uint8Array(deflated), fin, true));
}

function rsv1(frame: Uint8Array): Uint8Array {
  frame[0]! |= 0x40;
  return frame;
}

Deno.test("deflate: hostile peers — bomb 1009 without the RSS, garbage 1007, RSV1 on ping or continuation 1002", async () => {
  await using server = echoServer();
  const port = server.addr.port;

  // 10 MiB of zeros, ~10 KiB compressed, against the 1 MiB limit.
  const zeros = new Uint8Array(10 << 20);
  const bomb = compressedFrame(Opcode.binary, zeros);
  assert.ok(bomb.length < 64 << 10);
  const before = Deno.memoryUsage().rss;
  for (let i = 0; i < 3; i++) {
    const raw = await RawClient.open(port);
    await raw.send(bomb);
    assert.equal(await raw.closeCode(), 1009);
  }
  const grown = Deno.memoryUsage().rss - before;
  assert.ok(grown < 6 << 20, `RSS grew by ${grown} bytes`);

  // Bytes that are not deflate data.
  const garbage = await RawClient.open(port);
  await garbage.send(
    rsv1(
      encodeFrame(
        Opcode.binary,
        new Uint8Array([0xff, 0xee, 0xdd, 1, 2, 3, 4, 5, 6, 7]),
        true,
        true,
      ),
    ),
  );
  assert.equal(await garbage.closeCode(), 1007);

  // Compressed text that inflates to invalid UTF-8.
  const badText = await RawClient.open(port);
  await badText.send(
    compressedFrame(Opcode.text, new Uint8Array([0xc3, 0x28])),
  );
  assert.equal(await badText.closeCode(), 1007);

  // RSV1 on a ping.
  const ping = await RawClient.open(port);
  await ping.send(
    rsv1(encodeFrame(Opcode.ping, new Uint8Array(0), true, true)),
  );
  assert.equal(await ping.closeCode(), 1002);

  // RSV1 on a continuation frame.
  const cont = await RawClient.open(port);
  await cont.send(encodeFrame(Opcode.text, "a", false, true));
  await cont.send(rsv1(encodeFrame(Opcode.continuation, "b", true, true)));
  assert.equal(await cont.closeCode(), 1002);

  // RSV2 stays reserved.
  const rsv2 = await RawClient.open(port);
  const frame = encodeFrame(Opcode.text, "a", true, true);
  frame[0]! |= 0x20;
  await rsv2.send(frame);
  assert.equal(await rsv2.closeCode(), 1002);

  // The server still echoes a good compressed message, fragmented, with
  // a ping between the fragments.
  const good = await wsClient(port);
  try {
    good.ws.send(CHAT.slice(0, 10), { fin: false });
    good.ws.ping();
    good.ws.send(CHAT.slice(10), { fin: true });
    assert.equal(await good.next(), CHAT);
  } finally {
    await good.close();
  }
});

Deno.test("deflate: a broadcast to 100 deflate sessions is compressed once", async () => {
  const joined: Session<unknown, string, string>[] = [];
  await using server = listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    codec: lines(),
    perMessageDeflate: true,
    onOpen: (session) => void joined.push(session),
  });
  const counts = new Map<number, number>();
  const clients = [];
  try {
    for (let i = 0; i < 102; i++) {
      const compressed = i < 100;
      clients.push(
        await connect({
          url: `ws://127.0.0.1:${server.addr.port}/`,
          ...(compressed ? { perMessageDeflate: true } : {}),
          onMessage: (_session, line) => {
            assert.equal(line, CHAT);
            counts.set(i, (counts.get(i) ?? 0) + 1);
          },
        }),
      );
    }
    await until(() => joined.length === 102, 5000);
    const calls = deflateStats.calls;
    server.sessions.broadcast(CHAT);
    await until(() => counts.size === 102, 10000);
    // Once, not once per receiver (the two plain sessions get the plain
    // frame, encoded once more for their codec object).
    assert.equal(deflateStats.calls - calls, 1);
    // Compressed on the wire for the deflate sessions only.
    const out = joined.map((s) => s.bytesOut);
    assert.ok(out.slice(0, 100).every((n) => n < CHAT.length / 3));
    assert.ok(out.slice(100).every((n) => n > CHAT.length));
  } finally {
    for (const client of clients) await client.close();
  }
  await delay(0);
});

Deno.test("deflate: negotiation declines offers it cannot meet, takes the next", () => {
  const config = { threshold: 128, level: 6 };
  const answer = (offer: string) => negotiateDeflate(offer, config)?.response;
  const base = "permessage-deflate; server_no_context_takeover; " +
    "client_no_context_takeover";
  assert.equal(answer("permessage-deflate"), base);
  assert.equal(
    answer("permessage-deflate; client_max_window_bits"),
    base,
  );
  assert.equal(
    answer('permessage-deflate; server_max_window_bits="12"'),
    `${base}; server_max_window_bits=12`,
  );
  assert.equal(
    negotiateDeflate("permessage-deflate; server_max_window_bits=9", config)
      ?.params.windowBits,
    9,
  );
  // Unknown, repeated or out-of-range parameters decline that offer; the
  // next acceptable one is taken.
  assert.equal(answer("permessage-deflate; foo"), undefined);
  assert.equal(
    answer(
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ),
    undefined,
  );
  assert.equal(
    answer("permessage-deflate; server_max_window_bits=16"),
    undefined,
  );
  assert.equal(answer("permessage-deflate; server_max_window_bits"), undefined);
  assert.equal(
    answer("permessage-deflate; client_max_window_bits=7"),
    undefined,
  );
  assert.equal(
    answer("permessage-deflate; server_max_window_bits=8, permessage-deflate"),
    base,
  );
  assert.equal(answer("x-webkit-deflate-frame"), undefined);
  assert.equal(negotiateDeflate(undefined, config), undefined);
});

Deno.test("deflate: perMessageDeflate is a WebSocket option, checked", () => {
  assert.throws(
    () =>
      // @ts-expect-error: not a TCP option
      listen({ hostname: "127.0.0.1", port: 0, perMessageDeflate: true }),
    /perMessageDeflate/,
  );
  assert.throws(
    () =>
      listen({
        transport: "websocket",
        hostname: "127.0.0.1",
        port: 0,
        // @ts-expect-error: no such sub-option
        perMessageDeflate: { treshold: 10 },
      }),
    /perMessageDeflate\.treshold/,
  );
  assert.throws(
    () =>
      listen({
        transport: "websocket",
        hostname: "127.0.0.1",
        port: 0,
        perMessageDeflate: { level: 12 },
      }),
    RangeError,
  );
});

Deno.test({
  name: "deflate: Chromium negotiates it and reads compressed broadcasts",
  ignore: browserMissing !== undefined,
  async fn() {
    await using server = listen({
      transport: "websocket",
      hostname: "127.0.0.1",
      port: 0,
      perMessageDeflate: true,
      serve: () =>
        new Response("<!doctype html><title>t</title>", {
          headers: { "content-type": "text/html" },
        }),
      // Echo to everyone: a broadcast, compressed once.
      onMessage: (_session, line) => void server.sessions.broadcast(line),
    });
    const browser = await launchBrowser();
    try {
      const { page } = browser;
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      const result = await page.evaluate(
        async (url: string, chat: string) => {
          const ws = new WebSocket(url);
          const inbox: string[] = [];
          let wake: (() => void) | undefined;
          ws.onmessage = (event: MessageEvent) => {
            inbox.push(event.data);
            wake?.();
          };
          await new Promise<void>((resolve, reject) => {
            ws.onopen = () => resolve();
            ws.onerror = () => reject(new Error("WebSocket error"));
          });
          const next = async () => {
            while (inbox.length === 0) {
              await new Promise<void>((resolve) => (wake = resolve));
            }
            return inbox.shift()!;
          };
          ws.send(chat);
          const first = await next();
          ws.send("short");
          const second = await next();
          const closed = new Promise((resolve) => (ws.onclose = resolve));
          ws.close(1000);
          await closed;
          return {
            extensions: ws.extensions,
            first: first === chat,
            second,
          };
        },
        `ws://127.0.0.1:${server.addr.port}/`,
        CHAT,
      );
      assert.match(result.extensions, /^permessage-deflate/);
      assert.deepEqual({ ...result, extensions: "" }, {
        extensions: "",
        first: true,
        second: "short",
      });
      const stats = server.stats();
      assert.ok(stats.bytesIn < CHAT.length, `bytesIn ${stats.bytesIn}`);
      assert.ok(stats.bytesOut < CHAT.length, `bytesOut ${stats.bytesOut}`);
    } finally {
      await browser.close();
    }
  },
});

Deno.test("deflate: frames from another cluster node reach deflate members compressed, plain members plain", async () => {
  const hub = new MemoryBrokerHub();
  const clusters = [0, 1].map(() =>
    new Cluster({
      broker: hub.connect(),
      meta: (session) => ({ id: session.id }),
      presence: { heartbeatInterval: 50, nodeTimeout: 200 },
    })
  );
  const servers = clusters.map((cluster) => {
    const server: Server<unknown, string, string, Deno.NetAddr> = listen({
      transport: "websocket",
      hostname: "127.0.0.1",
      port: 0,
      perMessageDeflate: true,
      cluster,
      onOpen: (session) => void server.sessions.join(session, "lobby"),
    });
    return server;
  });
  const got: string[][] = [[], []];
  const clients = [];
  try {
    for (const [i, deflate] of [true, false].entries()) {
      clients.push(
        await connect({
          url: `ws://127.0.0.1:${servers[1]!.addr.port}/`,
          perMessageDeflate: deflate,
          onMessage: (_session, line) => void got[i]!.push(line),
        }),
      );
    }
    await until(
      () => clusters[0]!.members("lobby").length === 2,
      3000,
      "members",
    );
    servers[0]!.sessions.broadcast(CHAT, { room: "lobby" });
    await until(
      () => got[0]!.length === 1 && got[1]!.length === 1,
      5000,
      "deliveries",
    ).catch((e) => {
      throw new Error(`${e.message}: ${got.map((g) => g.length)}`);
    });
    assert.deepEqual(got, [[CHAT], [CHAT]]);
    const out = [...servers[1]!.sessions].map((s) => s.bytesOut).sort((a, b) =>
      a - b
    );
    assert.ok(out[0]! < CHAT.length / 3, `compressed: ${out[0]} bytes`);
    assert.ok(out[1]! > CHAT.length, `plain: ${out[1]} bytes`);
  } finally {
    for (const client of clients) await client.close();
    for (const server of servers) await server.close();
    for (const cluster of clusters) await cluster.close();
  }
});

Deno.test("deflate: the variant writes short messages in place, compresses long ones", () => {
  const plain = webSocketCodec(lines());
  const variant = compressedAdapter(plain, {
    windowBits: 15,
    threshold: 128,
    level: 6,
  });
  assert.equal(
    compressedAdapter(plain, {
      windowBits: 15,
      threshold: 128,
      level: 6,
    }),
    variant,
    "one variant object per adapter and parameters",
  );
  const target = new Uint8Array(8192);
  const end = variant.encodeInto!("hello", target, 3);
  assert.deepEqual(target.subarray(3, end), plain.encode("hello"));
  // 130 bytes: over the threshold, so not in place; encode compresses.
  const long = "a".repeat(130);
  assert.equal(variant.encodeInto!(long, target, 0), -1);
  const frame = variant.encode(long);
  assert.equal(frame[0], 0x81 | 0x40);
  assert.ok(frame.length < 20);
});

Deno.test("deflate: npm:ws round trips at the threshold and frame-length boundaries", async () => {
  await using server = echoServer();
  const client = await wsClient(server.addr.port, { threshold: 0 });
  try {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    const words = ["alpha", "beta", "gamma", "δέλτα", "✓", " ", "\n"];
    for (
      const size of [0, 1, 125, 126, 127, 128, 129, 1000, 65535, 65536, 300000]
    ) {
      let text = "";
      while (text.length < size) text += words[random() % words.length];
      text = text.slice(0, size);
      // Not a lone surrogate: every word is in the BMP.
      client.ws.send(text);
      assert.equal(await client.next(), text, `text of ${size}`);
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = random() % 7;
      client.ws.send(bytes);
      assert.deepEqual(await client.next(), bytes, `binary of ${size}`);
    }
  } finally {
    await client.close();
  }
});
