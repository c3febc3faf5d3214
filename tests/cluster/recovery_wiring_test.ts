// Recovery across a cluster, wired end to end in one process (issue 17):
// listen({ recovery, cluster }) with a Cluster that has `history`, on every
// history engine (memory; Redis Streams and NATS JetStream started here).
// Raw recovery clients speak the preamble by hand (the wire is
// src/recovery/_cluster_wire.ts) and check what they get: each room
// broadcast and direct message once, with its position; a session whose
// node went away resumes on another node with what it missed, once, in
// order, then live; its data and rooms come back; a spent, forged or
// foreign token, or a position from the future, starts nothing.
import assert from "node:assert/strict";
import { lines, listen, type Server } from "../../mod.ts";
import { Cluster, MemoryBrokerHub } from "../../cluster.ts";
import type { RoomHistory } from "../../src/cluster/history/history.ts";
import { delay, until } from "../_util.ts";
import { ENGINES, type TestLimits } from "./_history_servers.ts";
import { RawRecoveryClient } from "./_raw_recovery_client.ts";

const LIMITS: TestLimits = {
  maxMessages: 1000,
  maxBytes: 10_000_000,
  maxAge: 60_000,
  window: 60_000,
};

interface Node {
  server: Server<{ nick?: string }, string, string>;
  cluster: Cluster;
  port: number;
}

// A chat-like node: "join R", "say R text" (to the room, not back to the
// sender), "tell ID text" (send-by-id), "nick N" (data).
function node(
  hub: MemoryBrokerHub,
  history: RoomHistory,
  outboundBudget?: number,
): Node {
  const cluster = new Cluster({ broker: hub.connect(), history });
  const server = listen<{ nick?: string }, string, string>({
    hostname: "127.0.0.1",
    port: 0,
    codec: lines(),
    cluster,
    recovery: { window: 30_000 },
    ...(outboundBudget !== undefined && { outboundBudget }),
    data: () => ({}),
    onMessage(session, line) {
      const [verb, target, ...rest] = line.split(" ");
      const body = rest.join(" ");
      if (verb === "join") session.join(target!);
      else if (verb === "nick") session.data.nick = target!;
      else if (verb === "say") {
        server.sessions.broadcast(`${session.data.nick ?? "?"}: ${body}`, {
          room: target!,
          except: session,
        });
      } else if (verb === "tell") {
        server.sessions.send(Number(target), `${session.data.nick}> ${body}`);
      } else if (verb === "whoami") {
        session.send(
          `${session.id} ${session.data.nick} ${[...session.rooms].join(",")}`,
        );
      }
    },
  });
  return { server, cluster, port: server.addr.port };
}

async function stop(node: Node): Promise<void> {
  await node.server.close();
  await node.cluster.close();
}

for (const engine of ENGINES) {
  Deno.test({
    name: `cluster recovery wiring (${engine.name})`,
    ignore: engine.ignore,
    async fn(t) {
      await using fixture = await engine.start(LIMITS);
      const hub = new MemoryBrokerHub();
      const a = node(hub, await fixture.connect());
      const bHistory = await fixture.connect();
      const b = node(hub, bHistory);
      const clients: RawRecoveryClient[] = [];
      try {
        await t.step("a new session gets its position and epoch", async () => {
          const ann = await RawRecoveryClient.open(a.port);
          clients.push(ann);
          assert.match(
            ann.answer,
            /^ok 0 \d+ [A-Za-z0-9_-]{24} 0 30000 pos=\d+ epoch=\S+$/,
          );
          ann.start();
          await ann.send("nick ann");
          await ann.send("join lobby");
          const bob = await RawRecoveryClient.open(b.port);
          clients.push(bob);
          bob.start();
          await bob.send("nick bob");
          await bob.send("join lobby");
          // A plain client (no preamble) in the same room, on node b.
          await delay(100);
        });
        const [ann, bob] = clients as [RawRecoveryClient, RawRecoveryClient];
        const plain = await Deno.connect({
          hostname: "127.0.0.1",
          port: b.port,
        });
        const plainLines: string[] = [];
        const plainReading = (async () => {
          const buffer = new Uint8Array(4096);
          let text = "";
          for (;;) {
            const n = await plain.read(buffer).catch(() => null);
            if (n === null) return;
            text += new TextDecoder().decode(buffer.subarray(0, n));
            const parts = text.split("\n");
            text = parts.pop()!;
            plainLines.push(...parts);
          }
        })();
        await plain.write(new TextEncoder().encode("nick cy\njoin lobby\n"));
        await delay(150);

        await t.step("each broadcast once, with a position", async () => {
          // A node without members of the lobby receives none of it.
          const strangerHistory = await fixture.connect();
          const stranger = node(hub, strangerHistory);
          await ann.send("say lobby one");
          await bob.send("say lobby two");
          await plain.write(new TextEncoder().encode("say lobby three\n"));
          await until(() => ann.lines.length >= 2 && bob.lines.length >= 2);
          await until(() => plainLines.length >= 2);
          await delay(200);
          assert.deepEqual(ann.texts().sort(), ["bob: two", "cy: three"]);
          assert.deepEqual(bob.texts().sort(), ["ann: one", "cy: three"]);
          assert.deepEqual(plainLines.sort(), ["ann: one", "bob: two"]);
          for (const item of [...ann.lines, ...bob.lines]) {
            assert.notEqual(item.position, undefined, item.text);
          }
          // Plain clients get no record: their bytes are unchanged.
          assert.ok(plainLines.every((line) => !line.includes("pos")));
          assert.equal(strangerHistory.stats().received, 0);
          await stop(stranger);
        });

        await t.step("send-by-id from another node, once", async () => {
          await bob.send(`tell ${ann.id} psst`);
          await until(() => ann.texts().includes("bob> psst"));
          await delay(150);
          assert.equal(
            ann.texts().filter((line) => line === "bob> psst").length,
            1,
          );
        });

        await t.step("ann's node goes away: she resumes on b", async () => {
          const before = ann.lines.length;
          const seen = ann.position;
          await ann.drop();
          await stop(a); // its sessions close with "server shutdown"
          // Missed meanwhile: two broadcasts and a direct message.
          await bob.send("say lobby four");
          await plain.write(new TextEncoder().encode("say lobby five\n"));
          await bob.send(`tell ${ann.id} back?`);
          await delay(300);
          const answer = await ann.resume(b.port);
          assert.match(answer, /^ok 1 /, answer);
          assert.match(answer, new RegExp(` ${ann.sent} 30000 pos=${seen} `));
          ann.start();
          await until(() => ann.lines.length >= before + 3);
          await delay(200);
          // (Two senders: the engine's order decides between them.)
          assert.deepEqual(ann.texts().slice(before).sort(), [
            "bob: four",
            "bob> back?",
            "cy: five",
          ]);
          const positions = ann.lines.map((item) => item.position!);
          assert.deepEqual(positions, [...positions].sort((x, y) => x - y));
          // The same session: id, data and rooms.
          await ann.send("whoami");
          await until(() => ann.lines.length >= before + 4);
          assert.equal(ann.texts().at(-1), `${ann.id} ann lobby`);
          // And live again, once.
          await bob.send("say lobby six");
          await until(() => ann.texts().includes("bob: six"));
          await delay(150);
          assert.equal(
            ann.texts().filter((line) => line === "bob: six").length,
            1,
          );
          assert.ok(plainLines.includes("ann: one"));
        });

        await t.step("a spent token resumes nothing", async () => {
          const spent = ann.token;
          await ann.drop();
          // A resume on the same node rotates the token in the engine too.
          const again = await ann.resume(b.port);
          assert.match(again, /^ok 1 /);
          ann.start();
          const thief = await Deno.connect({
            hostname: "127.0.0.1",
            port: b.port,
          });
          thief.close();
          const copy = ann.copy();
          copy.token = spent;
          const c = node(hub, await fixture.connect());
          try {
            const refused = await copy.resume(c.port);
            assert.equal(refused, "fail bad_token");
            copy.conn.close();
            copy.token = "A".repeat(24);
            assert.equal(await copy.resume(c.port), "fail bad_token");
            copy.conn.close();
            copy.token = ann.token;
            copy.position = ann.position + 1_000_000;
            const future = await copy.resume(c.port);
            assert.match(future, /^fail (future|bad_token)/);
            copy.conn.close();
          } finally {
            await stop(c);
          }
        });

        await t.step(
          "no extension words: a foreign resume is refused",
          async () => {
            const bare = await RawRecoveryClient.open(b.port);
            bare.start();
            await bare.drop();
            const c = node(hub, await fixture.connect());
            try {
              assert.equal(
                await bare.resume(c.port, false),
                "fail unknown_session",
              );
              bare.conn.close();
            } finally {
              await stop(c);
            }
          },
        );
        await t.step(
          "the stream lost (broker restarted without data): a fresh session, nothing of the gap",
          async () => {
            await bob.drop();
            await fixture.lose();
            // Node b's engine connection is back before anything closes.
            for (let i = 0; i < 100; i++) {
              if (await bHistory.head().then(() => true, () => false)) break;
              await delay(50);
            }
            const c = node(hub, await fixture.connect());
            try {
              const answer = await bob.resume(c.port);
              // The record went with the stream, or its epoch is not the
              // stream's any more: either way nothing is replayed.
              assert.match(answer, /^fail (epoch|unknown_session)$/);
              bob.conn.close();
            } finally {
              await stop(c);
            }
          },
        );
        plain.close();
        await plainReading;
      } finally {
        for (const client of clients) await client.drop();
        await stop(a);
        await stop(b);
      }
    },
  });
}

Deno.test("listen() refuses a cluster with history but no recovery option", async () => {
  const { MemoryHistoryStore } = await import(
    "../../src/cluster/history/memory_history.ts"
  );
  const store = new MemoryHistoryStore(LIMITS);
  const cluster = new Cluster({
    broker: new MemoryBrokerHub().connect(),
    history: store.connect(),
  });
  try {
    assert.throws(
      () => listen({ hostname: "127.0.0.1", port: 0, cluster }),
      (error: Error) =>
        error instanceof TypeError && /history.*recovery/.test(error.message),
    );
    assert.throws(
      () =>
        listen({
          hostname: "127.0.0.1",
          port: 0,
          cluster,
          recovery: { window: LIMITS.window + 1 },
        }),
      (error: Error) =>
        error instanceof RangeError && /recovery\.window/.test(error.message),
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("a replay larger than the budget on another node is paced, not cut", async () => {
  const { MemoryHistoryStore } = await import(
    "../../src/cluster/history/memory_history.ts"
  );
  const store = new MemoryHistoryStore(LIMITS);
  const hub = new MemoryBrokerHub();
  const a = node(hub, store.connect(), 8192);
  const b = node(hub, store.connect(), 8192);
  const ann = await RawRecoveryClient.open(a.port);
  try {
    ann.start();
    await ann.send("join lobby");
    await delay(50);
    await ann.drop();
    await stop(a);
    // 300 lines of 200 bytes (60 KB) while she is away: 7 budgets' worth.
    const body = "x".repeat(190);
    for (let i = 0; i < 300; i++) {
      b.server.sessions.broadcast(`${i} ${body}`, { room: "lobby" });
    }
    await delay(100);
    assert.match(await ann.resume(b.port), /^ok 1 /);
    ann.start();
    await until(() => ann.lines.length >= 300, 10_000, "the whole replay");
    assert.deepEqual(
      ann.texts().map((line) => Number(line.split(" ")[0])),
      Array.from({ length: 300 }, (_, i) => i),
    );
    assert.equal(b.server.sessions.size, 1, "not cut");
  } finally {
    await ann.drop();
    await stop(a);
    await stop(b);
  }
});
