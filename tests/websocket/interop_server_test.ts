/// <reference lib="dom" />
// Interop of listen({ transport: "websocket" }) itself (Session, codec
// adapter, flush path) with three independent clients: Deno's global
// WebSocket, `npm:ws` (under Deno's Node compatibility) and Chromium. Each
// sends text, binary and fragmented messages, 4 MiB both ways, answers the
// server's heartbeat pings (bytes keep arriving during a quiet 500 ms with a
// 100 ms heartbeat: pongs), and sees close codes both ways.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import WebSocketNode from "npm:ws@8";
import {
  closeWebSocket,
  peerCloseCode,
  type Server,
  webSocketMessages,
} from "../../mod.ts";
import { browserMissing, launchBrowser } from "../_browser.ts";
import { testServer } from "../_server.ts";
import { delay, until, within } from "../_util.ts";

const BIG = 4 << 20;

interface Echo {
  server: Server<
    unknown,
    string | Uint8Array,
    string | Uint8Array,
    Deno.NetAddr
  >;
  url: string;
  closes: (number | undefined)[];
  reasons: string[];
  /** Bytes read before the last message arrived, and before the one before. */
  quietBytes(): number;
}

// Echoes every message; "close:CODE" closes with that code.
function echo(): Echo {
  const closes: (number | undefined)[] = [];
  const reasons: string[] = [];
  const marks: number[] = [0, 0];
  const server = testServer({
    transport: "websocket",
    path: "/ws",
    codec: webSocketMessages({ maxMessageBytes: 8 << 20 }),
    outboundBudget: 16 << 20,
    heartbeatInterval: 100,
    // Generous: a 4 MiB message in progress completes no frame.
    heartbeatMaxMissed: 30,
    serve: () =>
      new Response("<!doctype html><title>echo</title>", {
        headers: { "content-type": "text/html" },
      }),
    onMessage: (session, message) => {
      marks.push(session.bytesIn);
      marks.shift();
      if (typeof message === "string" && message.startsWith("close:")) {
        void closeWebSocket(session, Number(message.slice(6)), "server bye");
      } else {
        session.send(message);
      }
    },
    onClose: (session, reason) => {
      closes.push(peerCloseCode(session));
      reasons.push(reason);
    },
  });
  return {
    server,
    url: `ws://127.0.0.1:${server.addr.port}/ws`,
    closes,
    reasons,
    // The last message ("still", 11 bytes masked) arrived after a quiet
    // time: what else was read meanwhile is pongs, 6 bytes each.
    quietBytes: () => marks[1]! - marks[0]! - 11,
  };
}

function pattern(size: number, k: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * k) & 0xff;
  return bytes;
}

Deno.test("interop (server): Deno's WebSocket — text, binary, 4 MiB both ways, pongs, close codes", async () => {
  const { server, url, closes, reasons, quietBytes } = echo();
  try {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const inbox: (string | Uint8Array)[] = [];
    ws.onmessage = (e) =>
      inbox.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
    const closed = new Promise<[number, string]>((resolve) => {
      ws.onclose = (e) => resolve([e.code, e.reason]);
    });
    await within(new Promise((r) => (ws.onopen = r)), 5000, "open");
    ws.send("hello ✓");
    ws.send(new Uint8Array([0, 1, 255]));
    const big = pattern(BIG, 7);
    ws.send(big);
    await until(() => inbox.length === 3, 10000, "echoes");
    assert.equal(inbox[0], "hello ✓");
    assert.deepEqual(inbox[1], new Uint8Array([0, 1, 255]));
    assert.ok(Buffer.from(inbox[2] as Uint8Array).equals(Buffer.from(big)));
    await delay(500); // five heartbeat intervals: only pongs keep it open
    ws.send("still");
    await until(() => inbox.length === 4);
    assert.ok(quietBytes() >= 12, `${quietBytes()} bytes of pongs`);
    ws.close(4003, "deno bye");
    assert.deepEqual(await closed, [4003, "deno bye"]);
    await until(() => closes.length === 1);
    assert.deepEqual(closes, [4003]);
    assert.deepEqual(reasons, ["eof"]);
    // And the other way: the server's code reaches the client.
    const ws2 = new WebSocket(url);
    const closed2 = new Promise<[number, string]>((resolve) => {
      ws2.onclose = (e) => resolve([e.code, e.reason]);
    });
    await within(new Promise((r) => (ws2.onopen = r)), 5000, "open");
    ws2.send("close:4004");
    assert.deepEqual(await closed2, [4004, "server bye"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("interop (server): npm:ws — fragments, pings, 4 MiB both ways, close codes", async () => {
  const { server, url, closes, quietBytes } = echo();
  try {
    const ws = new WebSocketNode(url);
    const inbox: unknown[] = [];
    ws.on(
      "message",
      (data: Buffer, isBinary: boolean) =>
        inbox.push(isBinary ? new Uint8Array(data) : data.toString("utf8")),
    );
    ws.on("pong", (data: Buffer) => inbox.push({ pong: data.toString() }));
    const closed = new Promise<[number, string]>((resolve) =>
      ws.on(
        "close",
        (code: number, reason: Buffer) => resolve([code, reason.toString()]),
      )
    );
    await within(
      new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      }),
      5000,
      "npm:ws open",
    );
    assert.equal(ws.extensions, ""); // permessage-deflate declined
    ws.ping("are you there");
    await until(() => inbox.length === 1);
    assert.deepEqual(inbox.shift(), { pong: "are you there" });
    ws.send("frag", { fin: false });
    ws.ping("mid");
    ws.send("mént", { fin: true });
    await until(() => inbox.length === 2);
    assert.deepEqual(inbox.splice(0), [{ pong: "mid" }, "fragmént"]);
    const big = pattern(BIG, 13);
    // 4 MiB in four fragments.
    for (let i = 0; i < 4; i++) {
      ws.send(big.subarray(i << 20, (i + 1) << 20), {
        binary: true,
        fin: i === 3,
      });
    }
    await until(() => inbox.length === 1, 10000, "the 4 MiB echo");
    assert.ok(
      Buffer.from(inbox.shift() as Uint8Array).equals(Buffer.from(big)),
    );
    await delay(500);
    ws.send("still");
    await until(() => inbox.length === 1);
    assert.ok(quietBytes() >= 12, `${quietBytes()} bytes of pongs`);
    ws.close(4005, "npm bye");
    assert.deepEqual(await closed, [4005, "npm bye"]);
    await until(() => closes.length === 1);
    assert.deepEqual(closes, [4005]);
  } finally {
    await server.shutdown();
  }
});

// The same client library on the real Node binary, not Deno's Node
// compatibility: `ws` from Deno's npm cache (the import above put it there).
async function nodeWsModule(): Promise<string | undefined> {
  const info = JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] })
        .output()).stdout,
    ),
  );
  const dir = `${info.npmCache}/registry.npmjs.org/ws`;
  const versions: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && entry.name.startsWith("8.")) {
        versions.push(entry.name);
      }
    }
  } catch {
    return undefined;
  }
  const version = versions.sort((a, b) =>
    a.localeCompare(b, undefined, { numeric: true })
  ).pop();
  return version === undefined ? undefined : `${dir}/${version}/index.js`;
}

Deno.test("interop (server): npm:ws on the node binary — fragments, pings, 4 MiB both ways, close codes", async () => {
  const module = await nodeWsModule();
  const node = await new Deno.Command("node", { args: ["--version"] })
    .output().then((out) => out.success, () => false);
  if (module === undefined || !node) {
    console.log("  SKIPPED: needs the node binary and ws in Deno's npm cache");
    return;
  }
  const { server, url, closes } = echo();
  try {
    // Everything the client sees, as one JSON line.
    const script = `
      const WebSocket = require(${JSON.stringify(module)});
      const ws = new WebSocket(${JSON.stringify(url)});
      const seen = [];
      const big = Buffer.alloc(${BIG});
      for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 255;
      ws.on("open", () => {
        ws.ping("are you there");
        ws.send("frag", { fin: false });
        ws.send("mént", { fin: true });
        for (let i = 0; i < 4; i++) {
          ws.send(big.subarray(i << 20, (i + 1) << 20), { binary: true, fin: i === 3 });
        }
      });
      ws.on("pong", (data) => seen.push("pong " + data));
      ws.on("message", (data, isBinary) => {
        if (!isBinary) seen.push("text " + data);
        else {
          seen.push("binary " + data.length + " " + Buffer.compare(data, big));
          ws.close(4006, "node bye");
        }
      });
      ws.on("close", (code, reason) => {
        seen.push("close " + code + " " + reason);
        console.log(JSON.stringify(seen));
      });
      ws.on("error", (error) => { console.log(JSON.stringify(["error " + error.message])); });
      setTimeout(() => { console.log(JSON.stringify(["timeout", ...seen])); process.exit(1); }, 15000).unref();`;
    const { stdout } = await new Deno.Command("node", {
      args: ["-e", script],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const seen = JSON.parse(new TextDecoder().decode(stdout).trim());
    assert.deepEqual(seen, [
      "pong are you there",
      "text fragmént",
      `binary ${BIG} 0`,
      "close 4006 node bye",
    ]);
    await until(() => closes.length === 1);
    assert.deepEqual(closes, [4006]);
  } finally {
    await server.shutdown();
  }
});

Deno.test({
  name:
    "interop (server): Chromium — text, binary, 4 MiB both ways, pongs, close codes",
  ignore: browserMissing !== undefined,
  async fn() {
    const { server, url, closes, quietBytes } = echo();
    const browser = await launchBrowser();
    try {
      const { page } = browser;
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      const result = await page.evaluate(async (url: string) => {
        const ws = new WebSocket(url);
        ws.binaryType = "arraybuffer";
        const inbox: (string | ArrayBuffer)[] = [];
        let wake: (() => void) | undefined;
        ws.onmessage = (event) => {
          inbox.push(event.data);
          wake?.();
        };
        const closed = new Promise<CloseEvent>((r) => (ws.onclose = r));
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
        const out: Record<string, unknown> = { extensions: ws.extensions };
        ws.send("hello <b>✓</b>");
        out.text = await next();
        ws.send(new Uint8Array([0, 1, 255]));
        out.binary = [...new Uint8Array((await next()) as ArrayBuffer)];
        const size = 4 << 20;
        const big = new Uint8Array(size);
        for (let i = 0; i < size; i++) big[i] = (i * 13) & 0xff;
        ws.send(big);
        const echoed = new Uint8Array((await next()) as ArrayBuffer);
        out.bigEqual = echoed.length === size &&
          echoed.every((b, i) => b === big[i]);
        const text = "é".repeat(size / 2);
        ws.send(text);
        out.bigTextEqual = (await next()) === text;
        await new Promise((r) => setTimeout(r, 500)); // pongs keep it open
        ws.send("still");
        out.still = await next();
        ws.close(4006, "page bye");
        const event = await closed;
        out.close = [event.code, event.reason, event.wasClean];
        return out;
      }, url);
      assert.deepEqual(result, {
        extensions: "",
        text: "hello <b>✓</b>",
        binary: [0, 1, 255],
        bigEqual: true,
        bigTextEqual: true,
        still: "still",
        close: [4006, "page bye", true],
      });
      assert.ok(quietBytes() >= 12, `${quietBytes()} bytes of pongs`);
      await until(() => closes.length === 1);
      assert.deepEqual(closes, [4006]);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
