/// <reference lib="dom" />
// Issue 17, proofs 5 and 6 for a node's death: two chat nodes
// (examples/chat_server.ts --cluster, separate processes) on a real
// nats-server with JetStream, so the chat keeps its room history there. A
// recovering terminal client (connect() with `recovery`, as
// chat_client.ts --recovery) and the chat web page in Chromium (the
// browser module) are on node 2, through front doors that send new
// connections to the live nodes. Node 2 is killed (SIGKILL) while a user
// on node 1 talks: both come back on node 1 with every line they missed,
// once, in order, their nick kept and no second welcome.
import assert from "node:assert/strict";
import { connect, lines } from "../../mod.ts";
import { BrokerServer, hasServer } from "../_brokers.ts";
import { browserMissing, launchBrowser } from "../_browser.ts";
import { LineClient } from "../examples/_chat_helpers.ts";
import { delay, until } from "../_util.ts";
import { Proxy } from "./_proxy.ts";

const CHAT = new URL("../../examples/chat_server.ts", import.meta.url).pathname;

interface ChatNode {
  child: Deno.ChildProcess;
  tcp: number;
  web: number;
}

async function chatNode(url: string): Promise<ChatNode> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CHAT,
      "--port",
      "0",
      "--web-port",
      "0",
      "--cluster",
      url,
      "--recovery-window",
      "30",
      "--rate",
      "0",
    ],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const web = /chat web page on http:\/\/127\.0\.0\.1:(\d+)\//;
  while (!web.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`chat node exited: ${out}`);
    out += value;
  }
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  return {
    child,
    tcp: Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)![1]),
    web: Number(web.exec(out)![1]),
  };
}

async function stop(node: ChatNode, signal: Deno.Signal): Promise<void> {
  try {
    node.child.kill(signal);
  } catch {
    // gone already
  }
  await node.child.status;
}

Deno.test({
  name:
    "chat across a cluster: the terminal client and the web page of a killed node miss no line",
  ignore: !hasServer("nats"),
  async fn() {
    await using broker = await BrokerServer.start("nats", { data: {} });
    const n1 = await chatNode(broker.url);
    const n2 = await chatNode(broker.url);
    // New connections go to node 2 while it lives, then to node 1.
    const alive = { tcp: [n2.tcp, n1.tcp], web: [n2.web, n1.web] };
    const tcpDoor = new Proxy(() => alive.tcp);
    const webDoor = new Proxy(() => alive.web);
    const got: string[] = [];
    const carol = await connect<unknown, string, string>({
      hostname: "127.0.0.1",
      port: tcpDoor.port,
      codec: lines(),
      recovery: true,
      onMessage: (_session, line) => void got.push(line),
    });
    const browser = browserMissing === undefined
      ? await launchBrowser()
      : undefined;
    let nc: LineClient | undefined;
    try {
      await until(() => got.some((l) => l.startsWith("* welcome")), 5000);
      carol.send("/nick carol");
      const page = browser?.page;
      if (page !== undefined) {
        await page.goto(`http://127.0.0.1:${webDoor.port}/`);
        await page.waitForFunction(() =>
          /^guest\d+$/.test(document.getElementById("nick")!.textContent!)
        );
        await page.type("#input", "/nick alice");
        await page.keyboard.press("Enter");
        await page.waitForFunction(() =>
          document.getElementById("nick")!.textContent === "alice"
        );
      }
      // A user on node 1, which stays up.
      nc = await LineClient.join(n1.tcp);
      await until(() => got.includes(`* ${nc!.nick} joined`), 10_000);

      // Node 2 dies: no goodbye, no flush.
      alive.tcp = [n1.tcp];
      alive.web = [n1.web];
      await stop(n2, "SIGKILL");
      const missed: string[] = [];
      for (let n = 1; n <= 10; n++) {
        missed.push(`${nc.nick}: missed ${n}`);
        await nc.send(`missed ${n}`);
        await delay(100);
      }
      await until(() => got.includes(missed.at(-1)!), 20_000, "carol's lines");
      await nc.send("after");
      await until(() => got.includes(`${nc!.nick}: after`), 5000);
      assert.deepEqual(
        got.filter((line) => line.startsWith(`${nc!.nick}: missed`)),
        missed,
        "every missed line, once, in order",
      );
      assert.equal(carol.recovered, true);
      assert.equal(got.filter((l) => l.startsWith("* welcome")).length, 1);
      // Same session on node 1: the nick came with it.
      carol.send("still here");
      let heard = "";
      for (let i = 0; i < 50 && !heard.includes("still here"); i++) {
        heard = await nc.line();
      }
      assert.equal(heard, "carol: still here");

      if (page !== undefined) {
        await page.waitForFunction(
          (line: string) =>
            [...document.querySelectorAll("#log li")].some((li) =>
              li.textContent === line
            ),
          { timeout: 20_000 },
          `${nc.nick}: after`,
        );
        const log = await page.$$eval(
          "#log li",
          (items) => items.map((li) => li.textContent!),
        );
        if (Deno.env.get("DEBUG_CHAT")) console.log(log);
        assert.deepEqual(
          log.filter((line) => line.startsWith(`${nc!.nick}: missed`)),
          missed,
          "the page: every missed line, once, in order",
        );
        assert.equal(
          log.filter((line) => line.startsWith("* welcome")).length,
          1,
        );
        assert.equal(
          await page.$eval("#nick", (el) => el.textContent),
          "alice",
        );
      }
    } finally {
      await nc?.close();
      await carol.close();
      await browser?.close();
      await tcpDoor[Symbol.asyncDispose]();
      await webDoor[Symbol.asyncDispose]();
      await stop(n1, "SIGTERM");
      await stop(n2, "SIGKILL");
    }
  },
});
