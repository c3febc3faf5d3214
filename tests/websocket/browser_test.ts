/// <reference lib="dom" />
// Interop with Chromium's WebSocket: headless Debian chromium (through
// `_browser.ts`) loads a page from the echo server of `_ws_echo_server.ts`
// (built only from our socket-free modules) and talks to it. Chromium
// offers permessage-deflate (declined), masks every frame, and reports
// close codes to the page. Ignored, with the reason, without chromium.
import assert from "node:assert/strict";
import { browserMissing, launchBrowser } from "../_browser.ts";
import { startEchoServer } from "./_ws_echo_server.ts";

Deno.test({
  name:
    "interop: Chromium's WebSocket — text, binary, 4 MiB both ways, pings, close codes",
  ignore: browserMissing !== undefined,
  async fn() {
    const server = startEchoServer();
    const browser = await launchBrowser();
    try {
      const { page } = browser;
      const origin = `http://127.0.0.1:${server.port}`;
      await page.goto(`${origin}/`);
      // Everything runs in the page; the result comes back as JSON.
      const result = await page.evaluate(async (url: string) => {
        const ws = new WebSocket(url, ["chat.v1"]);
        ws.binaryType = "arraybuffer";
        const inbox: (string | ArrayBuffer)[] = [];
        let wake: (() => void) | undefined;
        ws.onmessage = (event) => {
          inbox.push(event.data);
          wake?.();
        };
        const closed = new Promise<CloseEvent>((resolve) => {
          ws.onclose = resolve;
        });
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
        const out: Record<string, unknown> = {
          protocol: ws.protocol,
          extensions: ws.extensions,
        };
        ws.send("hello <b>✓</b>");
        out.text = await next();
        ws.send(new Uint8Array([0, 1, 255]));
        out.binary = [...new Uint8Array((await next()) as ArrayBuffer)];
        const size = 4 << 20;
        const big = new Uint8Array(size);
        for (let i = 0; i < size; i++) big[i] = (i * 13) & 0xff;
        ws.send(big);
        const echoed = new Uint8Array((await next()) as ArrayBuffer);
        out.bigLength = echoed.length;
        out.bigEqual = echoed.every((b, i) => b === big[i]);
        const text = "é".repeat(size / 2);
        ws.send(text);
        out.bigTextEqual = (await next()) === text;
        // The server pings; Chromium answers with a pong on its own.
        ws.send("ping:from server");
        out.pong = await next();
        ws.close(4005, "page bye");
        const event = await closed;
        out.close = [event.code, event.reason, event.wasClean];
        return out;
      }, `ws://127.0.0.1:${server.port}/ws`);
      assert.deepEqual(result, {
        protocol: "chat.v1",
        extensions: "",
        text: "hello <b>✓</b>",
        binary: [0, 1, 255],
        bigLength: 4 << 20,
        bigEqual: true,
        bigTextEqual: true,
        pong: "pong:from server",
        close: [4005, "page bye", true],
      });
    } finally {
      await browser.close();
      await server.close();
    }
    assert.deepEqual(server.seen.closes, [[4005, "page bye"]]);
    assert.deepEqual(server.seen.pongs, ["from server"]);
    assert.deepEqual(server.seen.errors, []);
  },
});
