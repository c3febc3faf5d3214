// The clustered chat end to end, for each broker: real nats-server and
// redis-server, chat nodes as `deno run` child processes (node timeout 1 s),
// raw TCP clients on each. Room lines, /who, /msg and join/leave notices
// across nodes; a node started late gets the state; a node without members
// of a room receives none of its traffic; two nodes granting the same nick
// at once settle it the same way; `kill -9` of a node is noticed within the
// node timeout; a broker restart mid-conversation is survived; two nodes
// share one port with --reuse-port.
import assert from "node:assert/strict";
import { type BrokerKind, BrokerServer, skipMessage } from "../_brokers.ts";
import { closeAll, LineClient } from "./_chat_helpers.ts";
import { within } from "../_util.ts";
import { MemoryBrokerHub } from "../../cluster.ts";
import { chatServer } from "../../examples/chat_server.ts";
import { chatCluster } from "../../examples/chat_cluster.ts";
import { chatWebServer } from "../../examples/chat_web.ts";

const SERVER = new URL("../../examples/chat_server.ts", import.meta.url);
const NODE_TIMEOUT_S = 1;
const OUTAGE =
  /^chat cluster: (Socket closed unexpectedly|connect ECONNREFUSED|write EPIPE|read ECONNRESET)/;

/** A chat node child process. */
class Node {
  readonly process: Deno.ChildProcess;
  port = 0;
  #text = "";
  #wake: (() => void) | undefined;
  #ended = false;
  readonly #stdout: Promise<void>;
  readonly #stderr: Promise<string>;

  constructor(args: string[]) {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--unstable-net", SERVER.pathname, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = this.#collect();
    this.#stderr = new Response(this.process.stderr).text();
  }

  static async start(url: string, args: string[] = []): Promise<Node> {
    const node = new Node([
      "--hostname",
      "127.0.0.1",
      "--port",
      "0",
      "--rate",
      "0",
      "--cluster",
      url,
      "--node-timeout",
      String(NODE_TIMEOUT_S),
      ...args,
    ]);
    try {
      const match = await node.waitFor(/listening on 127\.0\.0\.1:(\d+)\n/);
      node.port = Number(match[1]);
      await node.waitFor(/cluster node n\d+ via /);
    } catch (error) {
      await node.kill();
      throw error;
    }
    return node;
  }

  async #collect(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.process.stdout) {
        this.#text += decoder.decode(chunk, { stream: true });
        this.#wake?.();
      }
    } finally {
      this.#ended = true;
      this.#wake?.();
    }
  }

  async waitFor(pattern: RegExp, ms = 15000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const match = this.#text.match(pattern);
      if (match !== null) return match;
      if (this.#ended) {
        throw new Error(`Node ended before ${pattern}: ${await this.#stderr}`);
      }
      const changed = new Promise<void>((resolve) => this.#wake = resolve);
      await within(
        changed,
        Math.max(1, deadline - Date.now()),
        `waiting for ${pattern}; stdout: ${JSON.stringify(this.#text)}`,
      ).finally(() => this.#wake = undefined);
    }
  }

  #reports = 0;
  /** The node's cluster counters (SIGUSR2 makes it print them). */
  async stats(): Promise<Record<string, number>> {
    const n = ++this.#reports;
    this.process.kill("SIGUSR2");
    const match = await this.waitFor(new RegExp(`cluster stats ${n} (.*)\n`));
    return JSON.parse(match[1]!);
  }

  /** SIGTERM (graceful) or SIGKILL; returns stderr. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<string> {
    try {
      this.process.kill(signal);
    } catch {
      // already gone
    }
    await within(this.process.status, 10000, "node exit");
    await this.#stdout;
    return await this.#stderr;
  }
}

/** Reads lines until one equals `expected` (or matches it); returns it. */
async function expectLine(
  client: LineClient,
  expected: string | RegExp,
  ms = 5000,
): Promise<string> {
  const deadline = Date.now() + ms;
  const seen: string[] = [];
  for (;;) {
    const left = deadline - Date.now();
    let line: string;
    try {
      line = await client.line(Math.max(1, left));
    } catch (error) {
      throw new Error(
        `${client.nick}: no ${expected} within ${ms} ms; saw ${
          JSON.stringify(seen)
        }`,
        { cause: error },
      );
    }
    if (
      typeof expected === "string" ? line === expected : expected.test(line)
    ) return line;
    seen.push(line);
  }
}

/** Connects, reads the welcome, and takes `nick`. */
async function member(port: number, nick?: string): Promise<LineClient> {
  const client = await LineClient.open(port);
  const welcome = await client.line();
  const match = /^\* welcome (guest\d+)$/.exec(welcome);
  assert.ok(match, `welcome: ${welcome}`);
  client.nick = match[1]!;
  if (nick !== undefined) {
    await client.send(`/nick ${nick}`);
    await expectLine(client, `* ${client.nick} is now ${nick}`);
    client.nick = nick;
  }
  return client;
}

/** Asks /who until it lists exactly `nicks` (presence converges). */
async function whoUntil(
  client: LineClient,
  nicks: string[],
  ms = 8000,
): Promise<void> {
  const want = `* online: ${[...nicks].sort().join(", ")}`;
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    await client.send("/who");
    last = await expectLine(client, /^\* online: /);
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(last, want);
}

/** Asks /who until the nicks satisfy `ok`. */
async function whoMatches(
  client: LineClient,
  ok: (nicks: string[]) => boolean,
  ms = 8000,
): Promise<void> {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    await client.send("/who");
    last = await expectLine(client, /^\* online: /);
    if (ok(last.slice("* online: ".length).split(", "))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${client.nick}: /who never matched; last ${last}`);
}

function clusterTest(kind: BrokerKind): void {
  Deno.test({
    name: `clustered chat over ${kind}: every command works across 3 nodes`,
    ignore: skipMessage(kind),
    async fn(t) {
      // nats-server with JetStream: the chat keeps its room history there.
      await using broker = await BrokerServer.start(
        kind,
        kind === "nats" ? { data: {} } : {},
      );
      const nodes: Node[] = [];
      const clients: LineClient[] = [];
      const errors: string[] = [];
      try {
        const [a, b] = await Promise.all([
          Node.start(broker.url),
          Node.start(broker.url),
        ]);
        nodes.push(a!, b!);
        const ann = await member(a!.port, "ann");
        clients.push(ann);
        const bob = await member(b!.port);
        clients.push(bob);

        await t.step("guest names differ across nodes", () => {
          assert.notEqual(ann.nick, bob.nick);
        });

        await t.step("join and rename notices cross nodes", async () => {
          await expectLine(ann, `* ${bob.nick} joined`);
          await bob.send("/nick bob");
          await expectLine(bob, `* ${bob.nick} is now bob`);
          await expectLine(ann, `* ${bob.nick} is now bob`);
          bob.nick = "bob";
        });

        await t.step("room lines, /who and /msg cross nodes", async () => {
          await ann.send("hello from a");
          await expectLine(bob, "ann: hello from a");
          await bob.send("hello from b");
          await expectLine(ann, "bob: hello from b");
          await whoUntil(bob, ["ann", "bob"]);
          await bob.send("/msg ann psst");
          await expectLine(ann, "[bob] psst");
          await ann.send("/msg BOB hi bob");
          await expectLine(bob, "[ann] hi bob");
          // The nick is taken on another node.
          await bob.send("/nick Ann");
          await expectLine(bob, "! nick Ann is taken");
          await bob.send("/msg nobody x");
          await expectLine(bob, "! no such user nobody");
        });

        let cat: LineClient;
        let c: Node;
        await t.step("a node started later gets the room's state", async () => {
          c = await Node.start(broker.url);
          nodes.push(c);
          cat = await member(c.port, "cat");
          clients.push(cat);
          await whoUntil(cat, ["ann", "bob", "cat"]);
          // As a guest then renamed, or already renamed when A heard of
          // C (its full state arrived after the rename).
          const seen = await expectLine(
            ann,
            /^\* (cat joined|guest\d+ joined)$/,
          );
          if (seen !== "* cat joined") await expectLine(ann, /is now cat$/);
          await cat.send("meow");
          await expectLine(ann, "cat: meow");
          await expectLine(bob, "cat: meow");
        });

        await t.step(
          "/join moves a member across rooms on every node",
          async () => {
            await cat.send("/join attic");
            await expectLine(cat, "* you are in attic");
            await expectLine(ann, "* cat left");
            await expectLine(bob, "* cat left");
            await whoUntil(ann, ["ann", "bob"]);
            await whoUntil(cat, ["cat"]);
          },
        );

        await t.step(
          "a node without members of a room receives none of its traffic",
          async () => {
            const before = await c.stats();
            assert.equal(before.rooms, 1); // attic only
            for (let i = 0; i < 20; i++) await ann.send(`line ${i}`);
            await expectLine(bob, "ann: line 19");
            await bob.send("/msg ann done");
            await expectLine(ann, "[bob] done");
            const after = await c.stats();
            assert.equal(after.received, before.received);
            assert.equal(after.unwanted, 0);
            // One publish per broadcast on the sender's node.
            const sender = await a!.stats();
            assert.ok(sender.published! >= 20, JSON.stringify(sender));
            await cat.send("/join lobby");
            await expectLine(cat, "* you are in lobby");
            await expectLine(ann, "* cat joined");
          },
        );

        await t.step(
          "two nodes granting the same nick at once agree on who keeps it",
          async () => {
            const dan = await member(a!.port);
            const eve = await member(b!.port);
            clients.push(dan, eve);
            await whoUntil(cat, ["ann", "bob", "cat", dan.nick, eve.nick]);
            // Same instant, two nodes.
            await Promise.all([dan.send("/nick zed"), eve.send("/nick zed")]);
            const granted = await Promise.all(
              [dan, eve].map(async (client) =>
                (await expectLine(
                  client,
                  new RegExp(
                    `^(\\* ${client.nick} is now zed|! nick zed is taken)$`,
                  ),
                )).startsWith("*")
              ),
            );
            // Every node converges on one zed, the other back to a guest.
            for (const client of [ann, bob, cat]) {
              await whoMatches(client, (nicks) =>
                nicks.length === 5 &&
                nicks.filter((n) => n === "zed").length === 1);
            }
            const [danLines, eveLines] = await Promise.all([
              dan.drain(),
              eve.drain(),
            ]);
            const told = [danLines, eveLines].map((lines) =>
              lines.some((line) =>
                /^\* nick zed was taken elsewhere; you are now guest\d+$/.test(
                  line,
                )
              )
            );
            if (granted[0] && granted[1]) {
              // Both granted: exactly one is renamed back, and told.
              assert.equal(told.filter(Boolean).length, 1);
              console.log(
                `  collision: both granted, node ${
                  told[0] ? "b" : "a"
                } kept zed`,
              );
            } else {
              assert.equal(granted.filter(Boolean).length, 1);
              assert.deepEqual(told, [false, false]);
              console.log("  no collision: one node saw the other's first");
            }
            const holder = granted[0] && !told[0] ? dan : eve;
            await cat.send("/msg zed found you");
            await expectLine(holder, "[cat] found you");
            await dan.close();
            await eve.close();
            await whoUntil(cat, ["ann", "bob", "cat"]);
          },
        );

        await t.step(
          "kill -9 of a node: its users leave everywhere",
          async () => {
            const started = performance.now();
            await b!.kill("SIGKILL");
            await expectLine(ann, "* bob left", 4000);
            await expectLine(cat, "* bob left", 4000);
            const ms = performance.now() - started;
            console.log(`  '* bob left' after ${Math.round(ms)} ms`);
            // Within nodeTimeout of the kill (plus the notice's trip).
            assert.ok(ms < NODE_TIMEOUT_S * 1000 + 250, `${ms} ms`);
            await whoUntil(ann, ["ann", "cat"]);
          },
        );

        await t.step(
          "a broker restart mid-conversation is survived",
          async () => {
            await broker.restart(300);
            // Traffic resumes: keep talking until a line crosses.
            const deadline = Date.now() + 15000;
            let crossed = false;
            for (let i = 0; !crossed && Date.now() < deadline; i++) {
              await ann.send(`after restart ${i}`);
              try {
                await expectLine(cat, `ann: after restart ${i}`, 300);
                crossed = true;
              } catch {
                // not yet
              }
            }
            assert.ok(crossed, "no line crossed after the broker restart");
            await whoUntil(cat, ["ann", "cat"]);
            await whoUntil(ann, ["ann", "cat"]);
            await cat.send("/msg ann still here");
            await expectLine(ann, "[cat] still here");
          },
        );
      } finally {
        await closeAll(clients);
        for (const node of nodes) {
          const stderr = await node.kill("SIGTERM");
          // The broker restart is reported (one line per attempt); nothing
          // else may be.
          for (const line of stderr.split("\n")) {
            if (line === "" || OUTAGE.test(line)) continue;
            errors.push(line);
          }
        }
      }
      // A node that was SIGKILLed printed nothing; others must be clean.
      assert.deepEqual(errors, []);
    },
  });
}

clusterTest("nats");
clusterTest("redis");

Deno.test({
  name: "clustered chat: two nodes share one port with --reuse-port",
  ignore: skipMessage("nats") || Deno.build.os !== "linux",
  async fn() {
    await using broker = await BrokerServer.start("nats");
    const a = await Node.start(broker.url, ["--reuse-port"]);
    let b: Node | undefined;
    const clients: LineClient[] = [];
    try {
      const port = a.port;
      b = await Node.start(broker.url, [
        "--reuse-port",
        "--port",
        String(port),
      ]);
      assert.equal(b.port, port);
      // The kernel spreads connections over both processes; with enough
      // of them both get some, and they all share one chat.
      for (let i = 0; i < 12; i++) clients.push(await member(port));
      const [first, ...rest] = clients;
      await whoUntil(first!, clients.map((c) => c.nick));
      await first!.send("to everyone");
      for (const client of rest) {
        await expectLine(client, `${first!.nick}: to everyone`);
      }
      const [sa, sb] = await Promise.all([a.stats(), b.stats()]);
      // Both nodes hold lobby members: each has subscribed to it.
      assert.equal(sa.rooms, 1);
      assert.equal(sb.rooms, 1);
    } finally {
      await closeAll(clients);
      await a.kill("SIGTERM");
      await b?.kill("SIGTERM");
    }
  },
});

for (const first of ["a", "b"]) {
  Deno.test(`clustered chat: of two nodes that granted one nick 30 ms apart, the earlier keeps it (${first} first)`, async () => {
    // In one process over the in-memory broker, which can be stopped: the
    // two nodes can't hear each other while both grant the nick.
    const hub = new MemoryBrokerHub();
    const [ca, cb] = await Promise.all([
      chatCluster({ broker: hub.connect(), nodeTimeout: 400 }),
      chatCluster({ broker: hub.connect(), nodeTimeout: 400 }),
    ]);
    const a = chatServer({ port: 0, rate: 0, cluster: ca });
    const b = chatServer({ port: 0, rate: 0, cluster: cb });
    const clients: LineClient[] = [];
    try {
      const onA = await member((a.addr as Deno.NetAddr).port);
      const onB = await member((b.addr as Deno.NetAddr).port);
      clients.push(onA, onB);
      const [early, late] = first === "a" ? [onA, onB] : [onB, onA];
      await whoMatches(early, (nicks) => nicks.length === 2);
      hub.stop();
      await early.send("/nick zed");
      await expectLine(early, `* ${early.nick} is now zed`);
      await new Promise((r) => setTimeout(r, 30));
      await late.send("/nick zed");
      await expectLine(late, `* ${late.nick} is now zed`);
      hub.start();
      // The later one's node gives it back its guest name.
      await expectLine(
        late,
        `* nick zed was taken elsewhere; you are now ${late.nick}`,
      );
      for (const client of [early, late]) {
        await whoMatches(
          client,
          (nicks) =>
            nicks.length === 2 && nicks.includes("zed") &&
            nicks.includes(late.nick),
        );
      }
      const told = await early.drain();
      assert.ok(!told.some((line) => line.includes("taken elsewhere")));
    } finally {
      await closeAll(clients);
      await a.shutdown();
      await b.shutdown();
      await ca.close();
      await cb.close();
    }
  });
}

/** A WebSocket chat client (one line per text message), with timeouts. */
class WebClient {
  readonly socket: WebSocket;
  nick = "";
  #lines: string[] = [];
  #wake: (() => void) | undefined;
  readonly #closed: Promise<void>;
  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.socket.onmessage = (event) => {
      this.#lines.push(String(event.data));
      this.#wake?.();
    };
    this.#closed = new Promise((resolve) =>
      this.socket.onclose = () => resolve()
    );
  }
  static async join(port: number): Promise<WebClient> {
    const client = new WebClient(`ws://127.0.0.1:${port}/ws`);
    await within(
      new Promise((resolve, reject) => {
        client.socket.onopen = resolve;
        client.socket.onerror = () => reject(new Error("WebSocket failed"));
      }),
      5000,
      "WebSocket open",
    );
    const match = /^\* welcome (guest\d+)$/.exec(await client.line());
    assert.ok(match, "welcome");
    client.nick = match[1]!;
    return client;
  }
  async line(ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (this.#lines.length === 0) {
      await within(
        new Promise<void>((resolve) => this.#wake = resolve),
        Math.max(1, deadline - Date.now()),
        `a line for ${this.nick}`,
      ).finally(() => this.#wake = undefined);
    }
    return this.#lines.shift()!;
  }
  /** Reads lines until one matches; returns it. */
  async expect(expected: string | RegExp): Promise<string> {
    const seen: string[] = [];
    for (;;) {
      const line = await this.line().catch((error) => {
        throw new Error(`${error.message}; seen ${JSON.stringify(seen)}`);
      });
      if (
        typeof expected === "string" ? line === expected : expected.test(line)
      ) {
        return line;
      }
      seen.push(line);
    }
  }
  send(line: string): void {
    this.socket.send(line);
  }
  async close(): Promise<void> {
    this.socket.close();
    await within(this.#closed, 5000, "WebSocket close");
  }
}

Deno.test("clustered chat: browsers (WebSocket) on one node and nc users on another share rooms, /who and /msg", async () => {
  const hub = new MemoryBrokerHub();
  const [ca, cb] = await Promise.all([
    chatCluster({ broker: hub.connect(), nodeTimeout: 2000 }),
    chatCluster({ broker: hub.connect(), nodeTimeout: 2000 }),
  ]);
  const a = chatServer({ port: 0, rate: 0, cluster: ca });
  const b = chatServer({ port: 0, rate: 0, cluster: cb, webPort: 0 });
  const web = chatWebServer(b)!;
  const clients: LineClient[] = [];
  let ws: WebClient | undefined;
  try {
    const tcp = await member((a.addr as Deno.NetAddr).port, "ann");
    clients.push(tcp);
    ws = await WebClient.join((web.addr as Deno.NetAddr).port);
    // A cluster-wide guest name: the id comes from b's cluster node.
    assert.ok(Number(ws.nick.slice(5)) > 2 ** 33, ws.nick);
    await expectLine(tcp, `* ${ws.nick} joined`);
    ws.send("hello from the web");
    await expectLine(tcp, `${ws.nick}: hello from the web`);
    // Several lines in one turn on a: one batch, split into messages.
    await tcp.send("one\ntwo\nthree");
    for (const line of ["one", "two", "three"]) {
      await ws.expect(`ann: ${line}`);
    }
    ws.send("/who");
    const who = (await ws.expect(/^\* online: /)).slice(10).split(", ");
    assert.deepEqual(who.sort(), ["ann", ws.nick].sort());
    await tcp.send(`/msg ${ws.nick} psst`);
    await ws.expect("[ann] psst");
    ws.send("/nick bea");
    await expectLine(tcp, `* ${ws.nick} is now bea`);
    await tcp.send("/msg bea again");
    await ws.expect("[ann] again");
  } finally {
    await ws?.close();
    await closeAll(clients);
    await Promise.all([a.shutdown(), b.shutdown(), web.shutdown()]);
    await ca.close();
    await cb.close();
  }
});
