// The chat's --metrics-port, scraped by a real Prometheus (Debian's
// `prometheus` 2.42) on loopback: sessions, message counters and a cut
// client's close reason, read back through Prometheus's HTTP API.
import assert from "node:assert/strict";
import { ChatServer, closeAll, joinAll } from "../examples/_chat_helpers.ts";
import { delay } from "../_util.ts";
import { parseExposition, valueOf } from "./_prometheus_text.ts";

const PROMETHEUS = "prometheus";

function hasPrometheus(): boolean {
  try {
    new Deno.Command(PROMETHEUS, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync();
    return true;
  } catch {
    return false;
  }
}

const PROMETHEUS_FOUND = hasPrometheus();
if (!PROMETHEUS_FOUND) {
  console.warn(
    "metrics_prometheus_test: no `prometheus` binary (apt-get install prometheus): the real-Prometheus test is skipped",
  );
}

// A free loopback port: bound, read back, released.
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

async function scrape(
  url: string,
): Promise<ReturnType<typeof parseExposition>> {
  const response = await fetch(url);
  return parseExposition(await response.text());
}

Deno.test("chat --metrics-port: prints its address and serves /metrics on 127.0.0.1", async () => {
  const server = await ChatServer.start(["--metrics-port", "0"]);
  try {
    const match = await server.waitFor(
      /^metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics$/m,
    );
    const families = await scrape(match[0].slice("metrics on ".length));
    // The TCP and the WebSocket server in one exposition.
    assert.equal(
      valueOf(families, "microsocket_sessions", { transport: "tcp" }),
      0,
    );
    assert.equal(
      valueOf(families, "microsocket_sessions", { transport: "websocket" }),
      0,
    );
  } finally {
    const exit = await server.stop("SIGTERM");
    assert.equal(exit.code, 0, exit.stderr);
  }
});

Deno.test({
  name:
    "Prometheus 2.42 scrapes the chat: sessions = 3, received/sent counters, a cut client's close reason",
  ignore: !PROMETHEUS_FOUND,
  fn: async () => {
    const chat = await ChatServer.start(["--metrics-port", "0", "--rate", "0"]);
    const dir = await Deno.makeTempDir({ prefix: "microsocket-prometheus-" });
    let prometheus: Deno.ChildProcess | undefined;
    let stderr: Promise<string> | undefined;
    try {
      const [metricsUrl, metricsPort] = (await chat.waitFor(
        /^metrics on (http:\/\/127\.0\.0\.1:(\d+)\/metrics)$/m,
      )).slice(1);
      await Deno.writeTextFile(
        `${dir}/prometheus.yml`,
        [
          "global:",
          "  scrape_interval: 1s",
          "scrape_configs:",
          "  - job_name: chat",
          "    scrape_interval: 1s",
          "    static_configs:",
          `      - targets: ["127.0.0.1:${metricsPort}"]`,
          "",
        ].join("\n"),
      );
      const apiPort = freePort();
      prometheus = new Deno.Command(PROMETHEUS, {
        args: [
          `--config.file=${dir}/prometheus.yml`,
          `--web.listen-address=127.0.0.1:${apiPort}`,
          `--storage.tsdb.path=${dir}/data`,
          "--log.level=warn",
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      stderr = new Response(prometheus.stderr).text();
      const api = `http://127.0.0.1:${apiPort}/api/v1/query`;
      // The value of an instant query (summed), or undefined while absent.
      const query = async (expr: string): Promise<number | undefined> => {
        try {
          const response = await fetch(
            `${api}?query=${encodeURIComponent(expr)}`,
          );
          const body = await response.json();
          const result = body?.data?.result as { value: [number, string] }[];
          if (body.status !== "success" || result.length === 0) {
            return undefined;
          }
          return result.reduce((n, r) => n + Number(r.value[1]), 0);
        } catch {
          return undefined; // not up yet
        }
      };
      // Waits (at most 20 s) until Prometheus has scraped `expected`.
      const eventually = async (expr: string, expected: number) => {
        const deadline = Date.now() + 20_000;
        let last: number | undefined;
        while (Date.now() < deadline) {
          last = await query(expr);
          if (last === expected) return;
          await delay(250);
        }
        assert.fail(`${expr}: expected ${expected}, last ${last}`);
      };

      const clients = await joinAll(chat.port, 3);
      try {
        // 3 clients × 5 lines; each reaches the 2 others.
        for (const client of clients) {
          for (let i = 0; i < 5; i++) await client.send(`line ${i}`);
        }
        for (const client of clients) {
          for (let i = 0; i < 10; i++) await client.line();
        }
        await eventually('microsocket_sessions{transport="tcp"}', 3);
        await eventually("microsocket_messages_received_total", 15);
        // Sent: what the server counts (welcomes, join notices, the 30
        // relayed lines), once it has settled.
        const direct = await scrape(metricsUrl!);
        const sent = valueOf(direct, "microsocket_messages_sent_total")!;
        assert.ok(sent >= 30, `sent ${sent}`);
        await eventually("microsocket_messages_sent_total", sent);
        await eventually(
          "microsocket_sent_bytes_total",
          valueOf(direct, "microsocket_sent_bytes_total")!,
        );
        // Cut one: a line over the chat's 4096-byte limit.
        await clients[0]!.send("x".repeat(5000));
        await eventually(
          'microsocket_sessions_closed_total{reason="frame too large"}',
          1,
        );
        await eventually('microsocket_sessions{transport="tcp"}', 2);
      } finally {
        await closeAll(clients);
      }
    } finally {
      if (prometheus !== undefined) {
        try {
          prometheus.kill("SIGTERM");
        } catch {
          // Already exited.
        }
        await prometheus.status;
        await stderr;
      }
      await chat.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
