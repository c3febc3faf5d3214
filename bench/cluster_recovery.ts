// Recovery across a cluster, end to end (issue 17): two node processes
// (bench/servers/recovery_node.ts) on one broker that also keeps the room
// history (nats-server -js, or redis-server 7), loopback only.
//
//   deno run -A bench/cluster_recovery.ts [--receivers=200] [--messages=4000]
//                                         [--recover=1000] [--brokers=nats,redis]
//                                         [--smoke] [--node-flags="--cpu-prof …"]
//
// 1. A room of `receivers` members, half on each node; a plain sender on
//    node 1 writes `messages` 64-byte lines, at most 256 ahead of the
//    slowest receiver. "off": no history, plain receivers (the cluster as
//    before). "on": history on, every receiver a recovery client (its
//    broadcasts come from the engine, each with a position record). Per
//    room message: broker messages (nats-server's /varz in + out; Redis
//    commands executed), broker CPU, node CPU (both nodes), and the rate.
// 2. Memory of a room's history, per message, as the broker counts it
//    (Redis MEMORY USAGE of the room's stream; JetStream's stream bytes).
// 3. Time to recover `recover` clients after their node's death: they are
//    in the room on node 2, which is killed (SIGKILL) after they got 10
//    messages; 20 more are sent; then all of them resume on node 1 at
//    once. Reported: from the first resume hello to the last client having
//    its 20 missed messages, and the p50/p99 of hello → answer.
import { BrokerProcess, cpuSeconds } from "./_broker_process.ts";

const NODE = new URL("./servers/recovery_node.ts", import.meta.url).pathname;
const MAGIC = new Uint8Array([0xff, 0x00, 0x6d, 0x73, 0x72, 0x65, 0x63, 0x01]);
const utf8 = new TextEncoder();
const text = new TextDecoder();
const PAYLOAD = "M".repeat(63 - "say lobby ".length);

interface Options {
  receivers: number;
  messages: number;
  recover: number;
  brokers: ("nats" | "redis")[];
  nodeFlags: string[];
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    receivers: 200,
    messages: 4000,
    recover: 1000,
    brokers: ["nats", "redis"],
    nodeFlags: [],
  };
  for (const arg of args) {
    const [key = "", value = ""] = arg.replace(/^--/, "").split("=");
    if (key === "smoke") {
      Object.assign(options, { receivers: 20, messages: 300, recover: 50 });
    } else if (key === "node-flags") {
      options.nodeFlags = arg.slice(arg.indexOf("=") + 1).split(" ");
    } else if (key === "brokers") {
      options.brokers = value.split(",") as Options["brokers"];
    } else if (key in options) {
      (options as unknown as Record<string, number>)[key] = Number(value);
    } else throw new TypeError(`Unknown option --${key}`);
  }
  return options;
}

interface Node {
  child: Deno.ChildProcess;
  port: number;
}

// Extra deno flags for the nodes (--node-flags), e.g. a CPU profile.
let nodeFlags: string[] = [];

async function spawnNode(url: string, id: number, history: boolean) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...nodeFlags,
      NODE,
      url,
      String(id),
      ...(history ? [] : ["nohistory"]),
    ],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`node ${id} exited`);
    out += value;
  }
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  return { child, port: JSON.parse(out.split("\n")[0]!).port } as Node;
}

async function kill(node: Node, signal: Deno.Signal = "SIGTERM") {
  try {
    node.child.kill(signal);
  } catch {
    // gone
  }
  await node.child.status;
}

/**
 * A receiver that counts lines without copying them; with `recovery` it
 * speaks the preamble and skips the cluster's position records.
 */
class Receiver {
  conn!: Deno.TcpConn;
  lines = 0;
  probes = 0;
  id = 0;
  token = "";
  epoch = "";
  position = 0;
  #pending = 0;
  #inRecord = false;
  #atStart = true;
  #probeLine = false;
  #reading: Promise<void> | undefined;

  async open(port: number, recovery: boolean): Promise<void> {
    this.conn = await Deno.connect({ hostname: "127.0.0.1", port });
    if (recovery) await this.#hello("new");
    this.#reading = this.#read();
    await this.conn.write(utf8.encode("join lobby\n"));
  }

  /** Resumes on `port`; resolves with the time the answer took (ms). */
  async resume(port: number): Promise<number> {
    this.conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const started = performance.now();
    await this.#hello(
      `resume ${this.id} ${this.token} ${
        this.lines + this.probes
      } pos=${this.position} epoch=${this.epoch} sent=1`,
    );
    const took = performance.now() - started;
    this.#atStart = true;
    this.#inRecord = false;
    this.#reading = this.#read();
    return took;
  }

  close(): Promise<void> | undefined {
    try {
      this.conn.close();
    } catch {
      // closed
    }
    return this.#reading;
  }

  async #hello(line: string): Promise<void> {
    const body = utf8.encode(line + "\n");
    const out = new Uint8Array(MAGIC.length + body.length);
    out.set(MAGIC);
    out.set(body, MAGIC.length);
    await this.conn.write(out);
    let got = new Uint8Array(0);
    const chunk = new Uint8Array(512);
    while (got.indexOf(0x0a, MAGIC.length) === -1) {
      const n = await this.conn.read(chunk);
      if (n === null) throw new Error("no answer");
      const next = new Uint8Array(got.length + n);
      next.set(got);
      next.set(chunk.subarray(0, n), got.length);
      got = next;
    }
    const end = got.indexOf(0x0a, MAGIC.length);
    const words = text.decode(got.subarray(MAGIC.length, end)).split(" ");
    if (words[0] !== "ok") throw new Error(words.join(" "));
    this.id = Number(words[2]);
    this.token = words[3]!;
    for (const word of words) {
      if (word.startsWith("epoch=")) this.epoch = word.slice(6);
      if (word.startsWith("pos=") && words[1] === "0") {
        this.position = Number(word.slice(4));
      }
    }
    if (end + 1 < got.length) this.#scan(got.subarray(end + 1));
  }

  async #read(): Promise<void> {
    const chunk = new Uint8Array(65536);
    for (;;) {
      let n: number | null;
      try {
        n = await this.conn.read(chunk);
      } catch {
        return;
      }
      if (n === null) return;
      this.#scan(chunk.subarray(0, n));
    }
  }

  // Lines and records, byte by byte at their starts only.
  #scan(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      if (this.#atStart) {
        this.#atStart = false;
        this.#inRecord = bytes[i] === 0xff;
        this.#probeLine = bytes[i] === 0x70; // "p": a probe
        if (this.#inRecord) this.#pending = 0;
      }
      const end = bytes.indexOf(0x0a, i);
      if (this.#inRecord) {
        // "pos <n>": digits after the space, up to the newline.
        const stop = end === -1 ? bytes.length : end;
        for (let j = i; j < stop; j++) {
          const b = bytes[j]!;
          if (b >= 0x30 && b <= 0x39) {
            this.#pending = this.#pending * 10 + b - 0x30;
          } else if (b === 0x01) this.#pending = 0; // MAGIC's last byte
        }
      }
      if (end === -1) return;
      if (this.#inRecord) {
        this.#inRecord = false;
      } else {
        if (this.#probeLine) this.probes++;
        else this.lines++;
        if (this.#pending !== 0) this.position = this.#pending;
        this.#pending = 0;
      }
      this.#atStart = true;
      i = end + 1;
    }
  }
}

async function until(condition: () => boolean, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function probe(sender: Deno.TcpConn, receivers: Receiver[]) {
  for (let k = 0; receivers.some((r) => r.probes === 0); k++) {
    if (k > 200) throw new Error("receivers never joined");
    await sender.write(utf8.encode(`say lobby p${k}\n`));
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface CostRow {
  broker: string;
  mode: string;
  rate: number;
  brokerMessages: number;
  brokerCpuUs: number;
  nodeCpuUs: number;
  historyBytes: number;
}

async function cost(
  broker: BrokerProcess,
  history: boolean,
  options: Options,
): Promise<CostRow> {
  const nodes = [
    await spawnNode(broker.url, 1, history),
    await spawnNode(broker.url, 2, history),
  ];
  const receivers: Receiver[] = [];
  const sender = await Deno.connect({
    hostname: "127.0.0.1",
    port: nodes[0]!.port,
  });
  try {
    for (let i = 0; i < options.receivers; i++) {
      const r = new Receiver();
      await r.open(nodes[i % 2]!.port, history);
      receivers.push(r);
    }
    await probe(sender, receivers);
    const before = await broker.counters(0, 0);
    const cpu0 = nodes.map((n) => cpuSeconds(n.child.pid));
    const started = performance.now();
    const line = utf8.encode(`say lobby ${PAYLOAD}\n`);
    const batch = new Uint8Array(line.length * 16);
    for (let i = 0; i < 16; i++) batch.set(line, i * line.length);
    let sent = 0;
    const slowest = () => Math.min(...receivers.map((r) => r.lines));
    while (sent < options.messages) {
      while (sent - slowest() > 256) {
        await new Promise((r) => setTimeout(r, 1));
      }
      await sender.write(batch);
      sent += 16;
    }
    await until(() => slowest() >= sent, 60_000, "every delivery");
    const seconds = (performance.now() - started) / 1000;
    const after = await broker.counters(sent, sent * options.receivers);
    const nodeCpu = nodes.reduce(
      (sum, n, i) => sum + cpuSeconds(n.child.pid) - cpu0[i]!,
      0,
    );
    const brokerMessages = broker.kind === "nats"
      ? (after.inMsgs - before.inMsgs + after.outMsgs - before.outMsgs)
      : after.executed - before.executed;
    return {
      broker: broker.kind === "nats" ? "NATS JetStream" : "Redis Streams",
      mode: history ? "on" : "off",
      rate: (sent * options.receivers) / seconds,
      brokerMessages: brokerMessages / sent,
      brokerCpuUs: ((after.cpu - before.cpu) / sent) * 1e6,
      nodeCpuUs: (nodeCpu / sent) * 1e6,
      historyBytes: history ? await historyBytes(broker) : NaN,
    };
  } finally {
    sender.close();
    for (const r of receivers) await r.close();
    for (const node of nodes) await kill(node);
  }
}

// The room's history, as the broker holds it, per message kept.
async function historyBytes(broker: BrokerProcess): Promise<number> {
  if (broker.kind === "nats") {
    const jsz = await (await fetch(
      `http://127.0.0.1:${broker.monitor}/jsz?streams=true`,
    )).json();
    const streams = jsz.account_details?.[0]?.stream_detail ?? [];
    const stream = streams.find((s: { name: string }) =>
      s.name === "MICROSOCKET_HISTORY"
    );
    return stream ? stream.state.bytes / stream.state.messages : NaN;
  }
  const reply = await redis(broker, [
    "MEMORY",
    "USAGE",
    "{microsocket}:r:lobby",
    "SAMPLES",
    "0",
  ]);
  const length = await redis(broker, ["XLEN", "{microsocket}:r:lobby"]);
  return Number(reply) / Number(length);
}

async function redis(broker: BrokerProcess, command: string[]) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: broker.port });
  let out = `*${command.length}\r\n`;
  for (const word of command) {
    out += `$${utf8.encode(word).length}\r\n${word}\r\n`;
  }
  await conn.write(utf8.encode(out));
  const buffer = new Uint8Array(4096);
  const n = await conn.read(buffer);
  conn.close();
  return text.decode(buffer.subarray(0, n ?? 0)).slice(1).split("\r\n")[0];
}

interface RecoverRow {
  broker: string;
  clients: number;
  allMs: number;
  p50: number;
  p99: number;
}

async function recoverMany(
  broker: BrokerProcess,
  options: Options,
): Promise<RecoverRow> {
  const a = await spawnNode(broker.url, 11, true);
  const b = await spawnNode(broker.url, 12, true);
  const receivers: Receiver[] = [];
  const sender = await Deno.connect({ hostname: "127.0.0.1", port: a.port });
  try {
    for (let i = 0; i < options.recover; i++) {
      const r = new Receiver();
      await r.open(b.port, true);
      receivers.push(r);
    }
    await probe(sender, receivers);
    const say = (n: number) =>
      sender.write(utf8.encode(`say lobby ${n}\n`.repeat(1)));
    for (let n = 1; n <= 10; n++) await say(n);
    await until(
      () => receivers.every((r) => r.lines >= 10),
      30_000,
      "the first 10",
    );
    await kill(b, "SIGKILL");
    for (const r of receivers) await r.close();
    for (let n = 11; n <= 30; n++) await say(n);
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    const latencies = await Promise.all(
      receivers.map((r) => r.resume(a.port)),
    );
    await until(
      () => receivers.every((r) => r.lines >= 30),
      120_000,
      "every client's missed messages",
    );
    const allMs = performance.now() - started;
    latencies.sort((x, y) => x - y);
    return {
      broker: broker.kind === "nats" ? "NATS JetStream" : "Redis Streams",
      clients: options.recover,
      allMs,
      p50: latencies[Math.floor(latencies.length / 2)]!,
      p99: latencies[Math.floor(latencies.length * 0.99)]!,
    };
  } finally {
    sender.close();
    for (const r of receivers) await r.close();
    await kill(a);
    await kill(b);
  }
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  nodeFlags = options.nodeFlags;
  const costs: CostRow[] = [];
  const recovers: RecoverRow[] = [];
  for (const kind of options.brokers) {
    const broker = new BrokerProcess(kind);
    await broker.start();
    try {
      for (const history of [false, true]) {
        costs.push(await cost(broker, history, options));
        console.error(JSON.stringify(costs.at(-1)));
      }
      recovers.push(await recoverMany(broker, options));
      console.error(JSON.stringify(recovers.at(-1)));
    } finally {
      await broker.stop();
    }
  }
  const f = (n: number, d = 1) =>
    Number.isNaN(n) ? "–" : n.toLocaleString("en-US", {
      maximumFractionDigits: d,
      minimumFractionDigits: d,
    });
  console.log(
    `\nRecovery across a cluster: 2 nodes, ${options.receivers} receivers in one room, ${options.messages} messages of 64 bytes\n`,
  );
  console.log(
    "| broker | history | deliveries/s | broker msgs per room msg | broker CPU per room msg | nodes' CPU per room msg | history bytes per msg |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const r of costs) {
    console.log(
      `| ${r.broker} | ${r.mode} | ${f(r.rate, 0)} | ${f(r.brokerMessages)} | ${
        f(r.brokerCpuUs)
      } µs | ${f(r.nodeCpuUs)} µs | ${f(r.historyBytes, 0)} |`,
    );
  }
  console.log(
    "\n| broker | clients resumed on another node | all caught up | hello → answer p50 | p99 |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const r of recovers) {
    console.log(
      `| ${r.broker} | ${r.clients} | ${f(r.allMs, 0)} ms | ${
        f(r.p50, 1)
      } ms | ${f(r.p99, 1)} ms |`,
    );
  }
}

if (import.meta.main) await main();
