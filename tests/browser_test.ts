/// <reference lib="dom" />
// The browser helper itself: headless chromium opens a page served on
// loopback and closes cleanly with the sanitizers on. Ignored (reported as
// such) when chromium is not installed.
import assert from "node:assert/strict";
import { browserMissing, launchBrowser } from "./_browser.ts";

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>microsocket browser test</title>
<p id="out">loading</p>
<script>
  document.getElementById("out").textContent = "ready " + (1 + 1);
</script>`;

Deno.test({
  name: "launchBrowser() opens a loopback page and closes cleanly",
  ignore: browserMissing !== undefined,
  async fn() {
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () =>
        new Response(PAGE, {
          headers: { "content-type": "text/html; charset=utf-8" },
        }),
    );
    const browser = await launchBrowser();
    try {
      const { page } = browser;
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await page.waitForFunction(() =>
        document.getElementById("out")?.textContent === "ready 2"
      );
      assert.equal(await page.title(), "microsocket browser test");
      // A WebSocket constructor exists in the page: the transport tests can
      // drive one from here.
      assert.equal(
        await page.evaluate(() => typeof WebSocket),
        "function",
      );
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

Deno.test("browserMissing explains how to get chromium when it is absent", () => {
  if (browserMissing === undefined) return;
  assert.match(browserMissing, /chromium/i);
});
