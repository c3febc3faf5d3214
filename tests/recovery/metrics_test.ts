// Recovery (issues 17 and 18): its outcomes are counted next to the other
// metrics, and only a server with `recovery` shows them.
import assert from "node:assert/strict";
import { prometheusMetrics } from "../../mod.ts";
import { testServer } from "../_server.ts";
import { readToEnd, until } from "../_util.ts";
import { hello, ok } from "./_hello.ts";

function sample(text: string, name: string): number {
  const match = text.match(new RegExp(`^${name} (\\S+)$`, "m"));
  assert.ok(match, `${name} in\n${text}`);
  return Number(match[1]);
}

Deno.test("recovery metrics: fresh, resumed, refused by reason, expired, detached", async () => {
  await using server = testServer({ recovery: { window: 200 } });
  const port = server.addr.port;
  const a = await hello(port, "new");
  const sa = ok(a.answer);
  await until(() => server.sessions.size === 1, 2000, "the session");
  a.conn.close();
  await until(
    () =>
      sample(
        prometheusMetrics(server),
        "microsocket_recovery_detached_sessions",
      ) === 1,
    2000,
    "a detached session",
  );
  const forged = await hello(port, `resume ${sa.id} ${"A".repeat(24)} 0`);
  await readToEnd(forged.conn);
  forged.conn.close();
  const b = await hello(port, `resume ${sa.id} ${sa.token} 0`);
  const sb = ok(b.answer);
  assert.equal(sb.recovered, true);
  b.conn.close();
  await until(
    () =>
      sample(
        prometheusMetrics(server),
        "microsocket_recovery_expired_total",
      ) === 1,
    2000,
    "the window's end",
  );
  await until(
    () => /reason="recovery expired"\} 1$/m.test(prometheusMetrics(server)),
    2000,
    "the session's close",
  );
  const text = prometheusMetrics(server);
  assert.equal(sample(text, "microsocket_recovery_fresh_total"), 1);
  assert.equal(sample(text, "microsocket_recovery_resumed_total"), 1);
  assert.equal(
    sample(text, 'microsocket_recovery_refused_total\\{reason="bad_token"\\}'),
    1,
  );
  assert.equal(
    sample(text, 'microsocket_recovery_refused_total\\{reason="trimmed"\\}'),
    0,
  );
  assert.equal(sample(text, "microsocket_recovery_detached_sessions"), 0);
});

Deno.test("recovery metrics: absent without recovery", async () => {
  await using server = testServer({});
  assert.doesNotMatch(prometheusMetrics(server), /recovery/);
});
