// Recovery (issue 17), one process: a dropped connection resumes its
// session, and every message sent meanwhile arrives once and in order; a
// gap that can't be filled gives a fresh session and none of the gap.
import assert from "node:assert/strict";
import { type Client, connect } from "../../mod.ts";
import { testServer } from "../_server.ts";
import { delay, until } from "../_util.ts";
import { Proxy } from "./_proxy.ts";

// Checks "<n>" lines: each must be the one after the last.
class Sequence {
  next = 1;
  gaps = 0;
  duplicates = 0;
  readonly seen: number[] = [];
  check(line: string): void {
    const n = Number(line.split(" ", 1)[0]);
    this.seen.push(n);
    if (n === this.next) this.next++;
    else if (n < this.next) this.duplicates++;
    else {
      this.gaps++;
      this.next = n + 1;
    }
  }
}

function connectVia(
  proxy: Proxy,
  seq: Sequence,
  extra: { reconnect?: boolean } = {},
): Promise<Client<unknown, string, string>> {
  return connect({
    hostname: "127.0.0.1",
    port: proxy.port,
    recovery: true,
    ...(extra.reconnect && { reconnect: { initialDelay: 20, maxDelay: 50 } }),
    onMessage: (_session, line) => seq.check(line),
  });
}

Deno.test("a cut connection resumes its session, both directions whole", async () => {
  const resumed: number[] = [];
  const fromClient = new Sequence();
  await using server = testServer({
    recovery: { window: 5000, onResume: (session) => resumed.push(session.id) },
    onOpen: (session) => void session.join("feed"),
    onMessage: (_session, line) => fromClient.check(line),
  });
  await using proxy = new Proxy(server.addr.port);
  const seq = new Sequence();
  const client = await connectVia(proxy, seq);
  try {
    await until(() => server.sessions.size === 1, 2000, "the session");
    const id = [...server.sessions][0]!.id;
    let sent = 0;
    const producer = (async () => {
      while (sent < 400) {
        server.sessions.broadcast(String(++sent), { room: "feed" });
        client.send(String(sent));
        await delay(1);
      }
    })();
    await until(() => seq.next > 50, 5000, "the first messages");
    proxy.cut([...proxy.pairs][0]!);
    await producer;
    await until(() => seq.next > 400, 5000, "every message");
    await until(() => fromClient.next > 400, 5000, "every client message");
    assert.deepEqual(
      { gaps: seq.gaps, duplicates: seq.duplicates },
      { gaps: 0, duplicates: 0 },
    );
    assert.deepEqual(
      { gaps: fromClient.gaps, duplicates: fromClient.duplicates },
      { gaps: 0, duplicates: 0 },
    );
    assert.equal(client.recovered, true);
    assert.equal(client.resumes, 1);
    assert.deepEqual(resumed, [id]);
    assert.equal(server.sessions.size, 1);
    assert.equal([...server.sessions][0]!.id, id);
  } finally {
    await client.close();
  }
});

const CLIENTS = Number(Deno.env.get("RECOVERY_CLIENTS") ?? 200);
const SECONDS = Number(Deno.env.get("RECOVERY_SECONDS") ?? 10);

Deno.test(`${CLIENTS} clients, 1,000 messages/s, a random cut every 100 ms: 0 gaps, 0 duplicates`, async () => {
  await using server = testServer({
    // The clients share this process's event loop with the server: under
    // this load a hello can come later than the default 20 ms.
    recovery: { window: 10_000, helloTimeout: 2000 },
    onOpen: (session) => void session.join("feed"),
  });
  await using proxy = new Proxy(server.addr.port);
  const seqs = Array.from({ length: CLIENTS }, () => new Sequence());
  const clients = await Promise.all(seqs.map((seq) => connectVia(proxy, seq)));
  try {
    await until(
      () => server.sessions.size === CLIENTS,
      10_000,
      "every session",
    );
    const total = 1000 * SECONDS;
    let sent = 0;
    let cuts = 0;
    const started = performance.now();
    const cutter = setInterval(() => {
      const pairs = [...proxy.pairs];
      const pair = pairs[Math.floor(Math.random() * pairs.length)];
      if (pair === undefined) return;
      proxy.cut(pair);
      cuts++;
    }, 100);
    try {
      // 10 messages every 10 ms, catching up after a late timer.
      while (sent < total) {
        const due = Math.min(
          total,
          Math.floor((performance.now() - started) / 10) * 10 + 10,
        );
        while (sent < due) {
          server.sessions.broadcast(String(++sent), { room: "feed" });
        }
        await delay(10);
      }
    } finally {
      clearInterval(cutter);
    }
    await until(
      () => seqs.every((seq) => seq.next > total),
      15_000,
      "every client's last message",
    ).catch((error) => {
      // Which clients are behind, and how: the first ten.
      const late = seqs.map((seq, i) => ({
        i,
        next: seq.next,
        gaps: seq.gaps,
        dups: seq.duplicates,
        state: clients[i]!.session?.state,
        resumes: clients[i]!.resumes,
      }))
        .filter((x) => x.next <= total);
      console.log(
        `${late.length} clients behind, ${server.sessions.size} sessions:`,
        JSON.stringify(late.slice(0, 10)),
      );
      throw error;
    });
    const gaps = seqs.reduce((sum, seq) => sum + seq.gaps, 0);
    const duplicates = seqs.reduce((sum, seq) => sum + seq.duplicates, 0);
    const resumes = clients.reduce((sum, client) => sum + client.resumes, 0);
    console.log(
      `${CLIENTS} clients, ${total} messages, ${cuts} cuts, ${resumes} resumes, ${gaps} gaps, ${duplicates} duplicates`,
    );
    assert.equal(gaps, 0);
    assert.equal(duplicates, 0);
    assert.ok(cuts >= SECONDS * 5, `only ${cuts} cuts`);
    assert.ok(resumes >= cuts * 0.9, `${resumes} resumes for ${cuts} cuts`);
    assert.equal(server.sessions.size, CLIENTS);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});

Deno.test("past the window: recovered false, a fresh session, nothing of the gap", async () => {
  const reasons: string[] = [];
  await using server = testServer({
    recovery: { window: 300 },
    onOpen: (session) => void session.join("feed"),
    onClose: (_session, reason) => void reasons.push(reason),
  });
  await using proxy = new Proxy(server.addr.port);
  const seq = new Sequence();
  const client = await connectVia(proxy, seq, { reconnect: true });
  try {
    await until(() => server.sessions.size === 1, 2000, "the session");
    const first = [...server.sessions][0]!.id;
    server.sessions.broadcast("1", { room: "feed" });
    await until(() => seq.next === 2, 2000, "message 1");
    proxy.blocked = true;
    proxy.cut([...proxy.pairs][0]!);
    for (let n = 2; n <= 10; n++) {
      server.sessions.broadcast(String(n), { room: "feed" });
    }
    await until(
      () => reasons.includes("recovery expired"),
      3000,
      "the detached session's end",
    );
    proxy.blocked = false;
    await until(
      () => server.sessions.size === 1 && [...server.sessions][0]!.id !== first,
      5000,
      "a fresh session",
    );
    server.sessions.broadcast("11", { room: "feed" });
    await until(() => seq.seen.includes(11), 2000, "message 11");
    assert.deepEqual(seq.seen, [1, 11]);
    assert.equal(client.recovered, false);
    assert.equal(client.resumes, 0);
  } finally {
    await client.close();
  }
});

Deno.test("a gap larger than maxBytes: recovered false, nothing of the gap", async () => {
  await using server = testServer({
    recovery: { window: 10_000, maxBytes: 1000 },
    onOpen: (session) => void session.join("feed"),
  });
  await using proxy = new Proxy(server.addr.port);
  const seq = new Sequence();
  const client = await connectVia(proxy, seq, { reconnect: true });
  try {
    await until(() => server.sessions.size === 1, 2000, "the session");
    const first = [...server.sessions][0]!.id;
    server.sessions.broadcast("1", { room: "feed" });
    await until(() => seq.next === 2, 2000, "message 1");
    proxy.blocked = true;
    proxy.cut([...proxy.pairs][0]!);
    await until(() => proxy.pairs.size === 0, 2000, "the cut");
    // ~2,900 bytes: more than the session keeps.
    for (let n = 2; n <= 700; n++) {
      server.sessions.broadcast(String(n), { room: "feed" });
    }
    proxy.blocked = false;
    await until(
      () => [...server.sessions].some((session) => session.id !== first),
      5000,
      "a fresh session",
    );
    server.sessions.broadcast("701", { room: "feed" });
    await until(() => seq.seen.includes(701), 2000, "message 701");
    assert.deepEqual(seq.seen, [1, 701]);
    assert.equal(client.recovered, false);
  } finally {
    await client.close();
  }
});

Deno.test("a large replay is paced through a small budget, and the peer is not cut", async () => {
  const reasons: string[] = [];
  await using server = testServer({
    // 400 KB to replay through a 16 KiB budget.
    outboundBudget: 16_384,
    recovery: { window: 10_000, maxBytes: 1 << 20, maxMessages: 10_000 },
    onOpen: (session) => void session.join("feed"),
    onClose: (_session, reason) => void reasons.push(reason),
  });
  await using proxy = new Proxy(server.addr.port);
  const seq = new Sequence();
  const client = await connectVia(proxy, seq);
  try {
    await until(() => server.sessions.size === 1, 2000, "the session");
    proxy.blocked = true;
    proxy.cut([...proxy.pairs][0]!);
    await until(() => proxy.pairs.size === 0, 2000, "the cut");
    const pad = "x".repeat(90);
    for (let n = 1; n <= 4000; n++) {
      server.sessions.broadcast(`${n} ${pad}`, { room: "feed" });
      if (n % 100 === 0) await delay(1);
    }
    proxy.blocked = false;
    await until(() => seq.next > 4000, 10_000, "the whole replay");
    assert.deepEqual(
      { gaps: seq.gaps, duplicates: seq.duplicates, resumes: client.resumes },
      { gaps: 0, duplicates: 0, resumes: 1 },
    );
    assert.deepEqual(reasons, []);
  } finally {
    await client.close();
  }
});

Deno.test('recovery refuses overflow: "drop" (a dropped message would be a silent gap)', async () => {
  assert.throws(
    () => testServer({ recovery: {}, overflow: "drop" }),
    (error: Error) =>
      error instanceof TypeError && /"drop".*recovery/.test(error.message),
  );
  await assert.rejects(
    connect({
      hostname: "127.0.0.1",
      port: 1,
      recovery: true,
      overflow: "drop",
    }),
    (error: Error) =>
      error instanceof TypeError && /"drop".*recovery/.test(error.message),
  );
});
