// The chat's live stats page (examples/stats_page.html on --metrics-port) in
// headless Chromium: it draws the Prometheus text and keeps updating.
import assert from "node:assert/strict";
import { browserMissing, launchBrowser } from "../_browser.ts";
import { ChatServer, closeAll, joinAll } from "../examples/_chat_helpers.ts";

const ignore = browserMissing !== undefined;
if (ignore) console.log(`metrics_stats_page_test: skipped: ${browserMissing}`);

Deno.test({
  name:
    "chat stats page: shows 3 sessions and message rates, and updates (screenshots differ)",
  ignore,
  async fn() {
    const chat = await ChatServer.start(["--metrics-port", "0", "--rate", "0"]);
    const browser = await launchBrowser();
    const clients = await joinAll(chat.port, 3);
    try {
      const [, port] = await chat.waitFor(
        /^metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics$/m,
      );
      const { page } = browser;
      await page.setViewport({ width: 900, height: 420 });
      await page.goto(`http://127.0.0.1:${port}/`);
      // Strings: these run in the page, where `document` exists.
      await page.waitForFunction(
        `document.querySelector("#tile-sessions .value")?.textContent === "3"`,
        { timeout: 10_000 },
      );
      const first = await page.screenshot({ type: "png" });
      // Traffic: every client talks for a while; the rate tiles must rise.
      const talk = (async () => {
        for (let round = 0; round < 25; round++) {
          for (const client of clients) await client.send(`round ${round}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      await page.waitForFunction(
        `Number(document.querySelector("#tile-in .value")?.textContent) > 0`,
        { timeout: 10_000 },
      );
      await talk;
      const samples = Number(
        await page.$eval("body", (body) => body.dataset.samples),
      );
      assert.ok(samples >= 2, `${samples} samples`);
      // The out-rate chart has a line of at least two points.
      await page.waitForFunction(
        `document.querySelector("#tile-out polyline").getAttribute("points").split(" ").length >= 2`,
        { timeout: 10_000 },
      );
      const second = await page.screenshot({ type: "png" });
      assert.notDeepEqual(second, first, "the page changed");
      const path = await Deno.makeTempFile({
        prefix: "microsocket-stats-",
        suffix: ".png",
      });
      await Deno.writeFile(path, second);
      console.log(`stats page screenshot: ${path}`);
    } finally {
      await closeAll(clients);
      await browser.close();
      await chat.stop("SIGTERM");
    }
  },
});
