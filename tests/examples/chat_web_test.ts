/// <reference lib="dom" />
// The chat in a real browser: headless chromium (tests/_browser.ts) opens
// the page the chat example serves, and talks with `nc`-style TCP clients
// in the same rooms. Ignored, with the reason, when chromium is missing.
import assert from "node:assert/strict";
import type { Page } from "npm:puppeteer-core@25";
import { chatServer } from "../../examples/chat_server.ts";
import { chatWebServer } from "../../examples/chat_web.ts";
import { browserMissing, launchBrowser } from "../_browser.ts";
import { LineClient } from "./_chat_helpers.ts";
import { until } from "../_util.ts";

const ignore = browserMissing !== undefined;
if (ignore) console.log(`chat_web_test: skipped: ${browserMissing}`);

function start(webPort = 0) {
  const tcp = chatServer({ hostname: "127.0.0.1", port: 0, webPort });
  const web = chatWebServer(tcp)!;
  return {
    tcp,
    web,
    tcpPort: (tcp.addr as Deno.NetAddr).port,
    webPort: (web.addr as Deno.NetAddr).port,
    async stop() {
      await Promise.all([tcp.shutdown(), web.shutdown()]);
    },
  };
}

// The page's log lines.
function lines(page: Page): Promise<string[]> {
  return page.$$eval("#log li", (items) => items.map((li) => li.textContent!));
}

async function waitForLine(page: Page, text: string): Promise<void> {
  await page.waitForFunction(
    (t: string) =>
      [...document.querySelectorAll("#log li")].some((li) =>
        li.textContent === t
      ),
    {},
    text,
  );
}

async function say(page: Page, text: string): Promise<void> {
  await page.type("#input", text);
  await page.keyboard.press("Enter");
}

async function myNick(page: Page): Promise<string> {
  await page.waitForFunction(() =>
    /^guest\d+$/.test(document.getElementById("nick")!.textContent!)
  );
  return await page.$eval("#nick", (el) => el.textContent!);
}

Deno.test({
  name: "chat web: a browser and a TCP client chat both ways in one room",
  ignore,
  async fn() {
    const chat = start();
    const browser = await launchBrowser();
    let tcp: LineClient | undefined;
    try {
      const { page } = browser;
      await page.goto(`http://127.0.0.1:${chat.webPort}/`);
      const webNick = await myNick(page);
      tcp = await LineClient.join(chat.tcpPort);
      await waitForLine(page, `* ${tcp.nick} joined`);
      await say(page, "hello from the web");
      assert.equal(await tcp.line(), `${webNick}: hello from the web`);
      await tcp.send("hello from nc");
      await waitForLine(page, `${tcp.nick}: hello from nc`);
      // The page shows its own line too, and system lines apart.
      const own = await page.$$eval(
        "#log li.mine",
        (items) => items.map((li) => li.textContent),
      );
      assert.deepEqual(own, [`${webNick}: hello from the web`]);
      const system = await page.$$eval(
        "#log li.system",
        (items) => items.length,
      );
      assert.ok(system >= 2);
    } finally {
      await tcp?.close();
      await browser.close();
      await chat.stop();
    }
  },
});

Deno.test({
  name: "chat web: /nick, /join and /who from the page; nick and room shown",
  ignore,
  async fn() {
    const chat = start();
    const browser = await launchBrowser();
    let tcp: LineClient | undefined;
    try {
      const { page } = browser;
      await page.goto(`http://127.0.0.1:${chat.webPort}/`);
      await myNick(page);
      assert.equal(await page.$eval("#room", (el) => el.textContent), "lobby");
      await say(page, "/nick alice");
      await page.waitForFunction(() =>
        document.getElementById("nick")!.textContent === "alice"
      );
      await say(page, "/join den");
      await page.waitForFunction(() =>
        document.getElementById("room")!.textContent === "den"
      );
      tcp = await LineClient.join(chat.tcpPort);
      await tcp.send("/join den");
      assert.equal(await tcp.line(), "* you are in den");
      await waitForLine(page, `* ${tcp.nick} joined`);
      await say(page, "/who");
      await waitForLine(page, `* online: alice, ${tcp.nick}`);
      await tcp.send("/who");
      assert.equal(await tcp.line(), `* online: alice, ${tcp.nick}`);
    } finally {
      await tcp?.close();
      await browser.close();
      await chat.stop();
    }
  },
});

Deno.test({
  name: "chat web: a message with <script> shows as text and runs nothing",
  ignore,
  async fn() {
    const chat = start();
    const browser = await launchBrowser();
    let tcp: LineClient | undefined;
    try {
      const { page } = browser;
      await page.goto(`http://127.0.0.1:${chat.webPort}/`);
      await myNick(page);
      tcp = await LineClient.join(chat.tcpPort);
      const evil =
        `<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">`;
      await tcp.send(evil);
      await waitForLine(page, `${tcp.nick}: ${evil}`);
      const result = await page.evaluate(() => ({
        pwned: typeof (window as unknown as { pwned?: number }).pwned,
        elements: document.querySelectorAll("#log script, #log img").length,
      }));
      assert.deepEqual(result, { pwned: "undefined", elements: 0 });
      assert.ok((await lines(page)).includes(`${tcp.nick}: ${evil}`));
    } finally {
      await tcp?.close();
      await browser.close();
      await chat.stop();
    }
  },
});

Deno.test({
  name: "chat web: the page reconnects after the server restarts",
  ignore,
  async fn() {
    let chat = start();
    const webPort = chat.webPort;
    const browser = await launchBrowser();
    try {
      const { page } = browser;
      await page.goto(`http://127.0.0.1:${webPort}/`);
      const first = await myNick(page);
      await chat.stop();
      await page.waitForFunction(() =>
        document.getElementById("status")!.classList.contains("down")
      );
      // A new server on the same web port: the page comes back by itself.
      await until(
        () => {
          try {
            chat = start(webPort);
            return true;
          } catch {
            return false;
          }
        },
        5000,
        "the port to be free",
      );
      await page.waitForFunction(
        (old: string) =>
          document.getElementById("status")!.textContent === "connected" &&
          /^guest\d+$/.test(document.getElementById("nick")!.textContent!) &&
          [...document.querySelectorAll("#log li")].filter((li) =>
              li.textContent!.startsWith("* welcome")
            ).length === 2 &&
          old !== "",
        { timeout: 10000 },
        first,
      );
      await say(page, "/who");
      await page.waitForFunction(() =>
        [...document.querySelectorAll("#log li")].some((li) =>
          li.textContent!.startsWith("* online: ")
        )
      );
    } finally {
      await browser.close();
      await chat.stop();
    }
  },
});
