// Test helper: a real browser for tests. Launches Debian's chromium
// headless through `npm:puppeteer-core` (which never downloads a browser),
// with a fresh profile directory per launch, and cleans everything up on
// close so `deno test` sanitizers stay quiet.
//
// When chromium is missing, `browserMissing` says why: pass it to
// `Deno.test({ ignore: browserMissing !== undefined, ... })` so the run
// reports the test as ignored instead of failing, and `launchBrowser()`
// throws an error naming the path it looked for and how to install it.
import puppeteer, { type Browser, type Page } from "npm:puppeteer-core@25";

/** Where chromium is looked for: `$CHROMIUM_PATH`, else Debian's path. */
export const chromiumPath: string = (() => {
  try {
    return Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
  } catch {
    return "/usr/bin/chromium"; // no --allow-env
  }
})();

/**
 * Why no browser test can run here (`undefined` when chromium is present):
 * for `Deno.test({ ignore: browserMissing !== undefined })`.
 */
export const browserMissing: string | undefined = (() => {
  try {
    if (Deno.statSync(chromiumPath).isFile) return undefined;
    return `${chromiumPath} is not a file`;
  } catch (error) {
    return `Chromium not found at ${chromiumPath} (${
      (error as Error).name
    }): install it with \`apt-get install chromium\` or set CHROMIUM_PATH`;
  }
})();

/** A launched browser with one open page. */
export interface BrowserSession {
  /** The puppeteer browser. */
  readonly browser: Browser;
  /** A blank page, ready for `goto`. */
  readonly page: Page;
  /** Closes the browser, waits for its process to end, removes its profile. */
  close(): Promise<void>;
}

/**
 * Launches headless chromium with a fresh temporary profile and opens a
 * page. Only loopback addresses should be visited from tests.
 *
 * @throws {Error} With a clear message when chromium is missing.
 */
export async function launchBrowser(): Promise<BrowserSession> {
  if (browserMissing !== undefined) throw new Error(browserMissing);
  const profile = await Deno.makeTempDir({ prefix: "microsocket_chromium_" });
  let browser: Browser | undefined;
  try {
    browser = await puppeteer.launch({
      executablePath: chromiumPath,
      headless: true,
      // A pipe instead of a DevTools WebSocket: no extra socket to leak.
      pipe: true,
      userDataDir: profile,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
      ],
      timeout: 30000,
    });
    const page = await browser.newPage();
    page.setDefaultTimeout(10000);
    const launched = browser;
    let closed = false;
    return {
      browser: launched,
      page,
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        try {
          await launched.close();
        } finally {
          await Deno.remove(profile, { recursive: true }).catch(() => {});
        }
      },
    };
  } catch (error) {
    await browser?.close().catch(() => {});
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    throw error;
  }
}
