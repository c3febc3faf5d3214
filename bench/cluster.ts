// Cluster benchmark: room fan-out to N receivers served by one process vs
// by two cluster nodes (receivers split between them), over NATS and over
// Redis, plus what one broadcast costs in broker messages. Runs on its own:
//
//   deno run -A bench/cluster.ts [--receivers=1000] [--duration=5000]
//                                [--windows=64,1024] [--brokers=nats,redis]
//                                [--repeat=2] [--smoke]
//
// Everything runs on this machine: the broker, the nodes
// (bench/servers/cluster_node.ts, one process each) and this load
// generator. A third node holds one client in another room, to show that
// nodes without members of a room receive none of its traffic. The
// report ends with an estimate, from the measured CPU cost per delivery
// on a node and per message on the broker, of what M machines would carry.
//
// The sender writes 64-byte lines, 16 per write, and stays at most
// `window` messages ahead of the slowest receiver. Two windows are run: 64
// (small queues; a cluster pays the broker hop in latency, which caps
// throughput at window ÷ round trip) and 1024 (64 KiB per receiver in
// flight, well under the 1 MiB budget: every setup runs at CPU saturation). Server, broker and load generator CPU come
// from /proc/<pid>/stat (Linux).

const here = new URL(".", import.meta.url).pathname;
const NODE = `${here}servers/cluster_node.ts`;
const RECORD = 64;
const LINE = new TextEncoder().encode("M".repeat(RECORD - 1) + "\n");

interface Options {
  receivers: number;
  duration: number;
  warmup: number;
  window: number;
  windows: number[];
  batch: number;
  brokers: string[];
  repeat: number;
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    receivers: 1000,
    duration: 5000,
    warmup: 1000,
    window: 64,
    windows: [64, 1024],
    batch: 16,
    brokers: ["nats", "redis"],
    repeat: 2,
  };
  for (const arg of args) {
    const [key = "", value = ""] = arg.replace(/^--/, "").split("=");
    if (key === "smoke") {
      Object.assign(options, {
        receivers: 50,
        duration: 500,
        warmup: 200,
        repeat: 1,
      });
    } else if (key === "brokers") options.brokers = value.split(",");
    else if (key === "windows") options.windows = value.split(",").map(Number);
    else if (key in options) {
      (options as unknown as Record<string, number>)[key] = Number(value);
    } else throw new Error(`unknown option ${arg}`);
  }
  return options;
}

// ---------------------------------------------------------------- processes

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** CPU seconds a process has used (user + system). */
function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

async function waitAccepting(port: number): Promise<void> {
  for (let i = 0; i < 250; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error(`nothing listening on ${port}`);
}

class Broker {
  readonly url: string;
  readonly child: Deno.ChildProcess;
  constructor(kind: string) {
    const port = freePort();
    this.url = `${kind}://127.0.0.1:${port}`;
    const [bin, args] = kind === "nats"
      ? ["nats-server", ["-a", "127.0.0.1", "-p", String(port)]]
      : [
        "redis-server",
        [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--save",
          "",
          "--appendonly",
          "no",
        ],
      ] as const;
    this.child = new Deno.Command(bin, {
      args: [...args],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  }
  ready(): Promise<void> {
    return waitAccepting(Number(this.url.split(":").at(-1)));
  }
  async stop(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.child.status;
  }
}

class Node {
  readonly child: Deno.ChildProcess;
  port = 0;
  #out = "";
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  constructor(url?: string) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        // e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" (see profile_top.ts)
        ...(Deno.env.get("NODE_FLAGS")?.split(" ").filter(Boolean) ?? []),
        NODE,
        ...(url ? [url] : []),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#reader = this.child.stdout.getReader();
  }
  async #until(pattern: RegExp): Promise<RegExpMatchArray> {
    const decoder = new TextDecoder();
    for (;;) {
      const match = this.#out.match(pattern);
      if (match) return match;
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`node ended before ${pattern}: ${this.#out}`);
      this.#out += decoder.decode(value);
    }
  }
  async ready(): Promise<void> {
    this.port = Number((await this.#until(/listening (\d+)\n/))[1]);
  }
  // deno-lint-ignore no-explicit-any
  async stop(): Promise<any> {
    this.child.kill("SIGTERM");
    const stats = JSON.parse((await this.#until(/stats (.*)\n/))[1]!);
    await this.child.status;
    await this.#reader.cancel();
    return stats;
  }
}

// ---------------------------------------------------------------- load

class Receiver {
  readonly conn: Deno.TcpConn;
  readonly node: number;
  count = 0;
  #bytes = 0;
  #done: Promise<void> | undefined;
  constructor(conn: Deno.TcpConn, node: number) {
    this.conn = conn;
    this.node = node;
  }
  static async join(
    port: number,
    node: number,
    room: string,
  ): Promise<Receiver> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    await conn.write(new TextEncoder().encode(`room ${room}\n`));
    const ack = new Uint8Array(RECORD);
    let got = 0;
    while (got < RECORD) {
      const n = await conn.read(ack.subarray(got));
      if (n === null) throw new Error("closed before the ack");
      got += n;
    }
    return new Receiver(conn, node);
  }
  start(onRead: () => void): void {
    this.#done = (async () => {
      const buffer = new Uint8Array(65536);
      try {
        for (;;) {
          const n = await this.conn.read(buffer);
          if (n === null) return;
          this.#bytes += n;
          this.count = Math.floor(this.#bytes / RECORD);
          onRead();
        }
      } catch {
        // closed
      }
    })();
  }
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // closed
    }
    await this.#done;
  }
}

interface Run {
  label: string;
  deliveriesPerSecond: number;
  byNode: number[];
  cpu: Record<string, number>;
  broadcasts: number;
  // deno-lint-ignore no-explicit-any
  stats: any[];
}

async function run(
  options: Options,
  label: string,
  brokerKind: string | undefined,
): Promise<Run> {
  const broker = brokerKind ? new Broker(brokerKind) : undefined;
  await broker?.ready();
  const nodeCount = broker ? 2 : 1;
  const nodes = Array.from(
    { length: broker ? 3 : 1 },
    () => new Node(broker?.url),
  );
  const receivers: Receiver[] = [];
  let bystander: Receiver | undefined;
  let sender: Deno.TcpConn | undefined;
  try {
    await Promise.all(nodes.map((n) => n.ready()));
    for (let i = 0; i < options.receivers; i++) {
      const node = i % nodeCount;
      receivers.push(await Receiver.join(nodes[node]!.port, node, "r"));
    }
    if (broker) bystander = await Receiver.join(nodes[2]!.port, 2, "other");
    sender = await Deno.connect({
      hostname: "127.0.0.1",
      port: nodes[0]!.port,
    });
    sender.setNoDelay(true);
    await sender.write(new TextEncoder().encode("room r\n"));
    await sender.read(new Uint8Array(RECORD));

    let wake: (() => void) | undefined;
    const onRead = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    for (const r of receivers) r.start(onRead);
    bystander?.start(() => {});
    const slowest = () => {
      let min = Infinity;
      for (const r of receivers) if (r.count < min) min = r.count;
      return min;
    };
    // Cross-node subscriptions are made asynchronously: wait until one
    // message reaches everyone before measuring.
    const batch = new Uint8Array(LINE.length * options.batch);
    for (let i = 0; i < options.batch; i++) batch.set(LINE, i * LINE.length);
    let sent = 0;
    const deadline = Date.now() + 10000;
    await sender.write(LINE);
    sent = 1;
    while (slowest() < 1) {
      if (Date.now() > deadline) throw new Error("a receiver got nothing");
      await new Promise((r) => setTimeout(r, 10));
    }

    const pids = [
      ...nodes.map((n) => n.child.pid),
      ...(broker ? [broker.child.pid] : []),
      Deno.pid,
    ];
    const total = () => receivers.reduce((n, r) => n + r.count, 0);
    const perNode = () => {
      const out = new Array(nodeCount).fill(0);
      for (const r of receivers) out[r.node] += r.count;
      return out;
    };
    const start = Date.now();
    let t0 = 0, d0 = 0, n0: number[] = [], cpu0: number[] = [];
    let measuring = false;
    const end = start + options.warmup + options.duration;
    while (Date.now() < end) {
      if (!measuring && Date.now() >= start + options.warmup) {
        measuring = true;
        t0 = performance.now();
        d0 = total();
        n0 = perNode();
        cpu0 = pids.map(cpuSeconds);
      }
      if (sent - slowest() < options.window) {
        await sender.write(batch);
        sent += options.batch;
      } else {
        const timer = new Promise<void>((r) => wake = r);
        await Promise.race([timer, new Promise((r) => setTimeout(r, 50))]);
      }
    }
    const elapsed = (performance.now() - t0) / 1000;
    const delivered = total() - d0;
    const byNode = perNode().map((n, i) => (n - n0[i]!) / elapsed);
    const cpu1 = pids.map(cpuSeconds);
    const cpu: Record<string, number> = {};
    const names = [
      ...nodes.map((_, i) => `node${i}`),
      ...(broker ? ["broker"] : []),
      "loadgen",
    ];
    names.forEach((name, i) => cpu[name] = (cpu1[i]! - cpu0[i]!) / elapsed);
    // Let the last messages arrive (bounded), so counters line up.
    for (let i = 0; i < 200 && slowest() < sent; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    sender.close();
    sender = undefined;
    await Promise.all(
      [...receivers, ...(bystander ? [bystander] : [])].map((r) => r.close()),
    );
    const stats = [];
    for (const n of nodes) stats.push(await n.stop());
    return {
      label,
      deliveriesPerSecond: delivered / elapsed,
      byNode,
      cpu,
      broadcasts: sent,
      stats,
    };
  } finally {
    try {
      sender?.close();
    } catch {
      // closed
    }
    for (const r of receivers) await r.close();
    for (const n of nodes) {
      try {
        n.child.kill("SIGKILL");
      } catch {
        // exited
      }
      await n.child.status;
    }
    await broker?.stop();
  }
}

// ---------------------------------------------------------------- report

function rate(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M/s` : `${Math.round(n / 1e3)}k/s`;
}

function pct(cpu: Record<string, number>): string {
  return Object.entries(cpu).map(([k, v]) => `${k} ${Math.round(v * 100)}%`)
    .join(", ");
}

// Best of `repeat` for each setup, the setups interleaved so that a burst
// of load from elsewhere on the machine doesn't favour one of them.
async function bestOf(
  options: Options,
  setups: Array<[string, string | undefined]>,
): Promise<Run[]> {
  const top: Array<Run | undefined> = setups.map(() => undefined);
  for (let i = 0; i < options.repeat; i++) {
    for (const [k, [label, broker]] of setups.entries()) {
      const r = await run(options, label, broker);
      const known = top[k];
      if (
        known === undefined || r.deliveriesPerSecond > known.deliveriesPerSecond
      ) top[k] = r;
    }
  }
  return top as Run[];
}

// Deliveries per CPU-second of every process involved (nodes, broker,
// load generator): less sensitive than raw rates to what else the machine
// is running.
function perCpu(r: Run): number {
  return r.deliveriesPerSecond /
    Object.values(r.cpu).reduce((a, b) => a + b, 0);
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const cores = navigator.hardwareConcurrency;
  console.log(
    `# cluster fan-out, N=${options.receivers} receivers, ${cores} cores, deno ${Deno.version.deno}, ${
      new Date().toISOString()
    }`,
  );
  let rows: Run[] = [];
  const lines: string[] = [];
  // What broadcasts cost in broker messages, for each load.
  const costs: Array<[string, Run]> = [];
  for (const window of options.windows) {
    const o = { ...options, window };
    rows = await bestOf(o, [
      ["one process", undefined],
      ...options.brokers.map((kind): [string, string] => [
        `2 nodes over ${kind}`,
        kind,
      ]),
    ]);
    const single = rows[0]!;
    for (const r of rows.slice(1)) {
      costs.push([`window ${window}, ${options.batch} per write`, r]);
    }
    for (const r of rows) {
      lines.push(
        `| ${window} | ${r.label} | ${rate(r.deliveriesPerSecond)} | ${
          (r.deliveriesPerSecond / single.deliveriesPerSecond).toFixed(2)
        }× | ${rate(perCpu(r))} | ${
          (perCpu(r) / perCpu(single)).toFixed(2)
        }× | ${r.byNode.map(rate).join(" + ")} | ${pct(r.cpu)} |`,
      );
    }
  }
  console.log(
    "\n| window | setup | deliveries/s | ÷ one process | per CPU-second | ÷ one process | per node | CPU (share of one core) |",
  );
  console.log("|---:|---|---:|---:|---:|---:|---|---|");
  for (const line of lines) console.log(line);
  // Broadcasts one at a time (each waits until every receiver has the one
  // before): what a lone broadcast costs.
  for (const kind of options.brokers) {
    const lone = {
      ...options,
      window: 1,
      batch: 1,
      warmup: 0,
      duration: Math.min(options.duration, 1000),
    };
    costs.push(["one at a time", await run(lone, `over ${kind}`, kind)]);
  }
  console.log(
    "\n| load | broker | broadcasts | frames published by the sender's node | in broker messages | messages per broadcast | frames received by the other member node | received by the node without members | echoed frames ignored |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const [load, r] of costs) {
    const [a, b, c] = r.stats.map((s) => s.cluster.node);
    const broadcasts = r.broadcasts;
    console.log(
      `| ${load} | ${
        r.label.split(" ").at(-1)
      } | ${broadcasts} | ${a.published} | ${a.messages} | ${
        (a.messages / broadcasts).toFixed(3)
      } | ${b.received} | ${c.received} | ${a.echoes + b.echoes} |`,
    );
  }

  // The estimate uses the last (largest) window.

  // What M machines would carry, from measured costs: a node spends
  // cpu(node)/deliveries(node) per local delivery (its share of decoding,
  // publishing and receiving included), the broker cpu(broker)/messages per
  // message it handles (one publish in, one delivery out per member node),
  // and one broadcast costs the measured broker messages per broadcast
  // (below one when a turn's broadcasts share a message: a property of the
  // load, here 16 lines per write from the sender).
  console.log(
    "\nEstimate for M machines, one node each, N receivers spread evenly:",
  );
  for (const r of rows.slice(1)) {
    const nodeCost = (r.cpu.node0! + r.cpu.node1!) /
      (r.byNode[0]! + r.byNode[1]!);
    const broadcastsPerSecond = r.deliveriesPerSecond / options.receivers;
    const sender = r.stats[0].cluster.node;
    const share = sender.messages / sender.published;
    // Broker messages per broadcast with m member nodes: one publish in,
    // one delivery out per member node but the sender's (NATS, no echo) or
    // per member node (Redis echoes to the sender's node too).
    const nats = r.label.endsWith("nats");
    const perBroadcast = (m: number) => share * (nats ? m : 1 + m);
    const brokerCost = r.cpu.broker! / (broadcastsPerSecond * perBroadcast(2));
    const line = [1, 2, 4, 8, 16].map((m) => {
      const byNodes = m / nodeCost; // each node one core
      const byBroker = options.receivers / (brokerCost * perBroadcast(m));
      return `M=${m}: ${rate(Math.min(byNodes, byBroker))}${
        byBroker < byNodes ? " (broker-bound)" : ""
      }`;
    }).join(", ");
    console.log(
      `- ${r.label}: ${
        (nodeCost * 1e9).toFixed(0)
      } ns of node CPU per delivery, ${
        (brokerCost * 1e6).toFixed(1)
      } µs of broker CPU per message → ${line}`,
    );
  }
}

if (import.meta.main) await main();
