// WebSocket fan-out benchmark (issue 10): 1 sender, N receivers, 64-byte
// text messages, each relayed to every other client, in one run against:
//   - microsocket, listen({ transport: "websocket" })   bench/servers/ws_microsocket.ts
//   - Deno.serve + Deno.upgradeWebSocket relay         bench/servers/ws_native.ts
//   - Node + npm ws relay                               bench/servers/ws_node.mjs
//   - microsocket's own TCP fan-out (64-byte lines)     bench/servers/microsocket.ts
//   - Bun.serve pub/sub (uWebSockets), if Bun is found  bench/servers/ws_bun.mjs
//     (npm install -g bun, or $BUN; issue 19 §1)
// Each server runs in its own process, the load generator (bench/ws_loadgen.ts)
// in another. Prints deliveries per second (and the server's CPU per delivery,
// which other load on the machine disturbs less) and the ratios the issue targets:
// ≥ 5× native, ≥ 3× Node ws, ≥ 0.8× our TCP fan-out, ≥ 1× Bun.
//
//   deno run -A bench/ws_fanout.ts [--n=100,1000] [--seconds=3] [--repeat=2]
//                                   [--window=32] [--smoke] [--json]
//                                   [--only=microsocket ws,Bun ws]

import { findBun } from "./_bun.ts";

const here = new URL(".", import.meta.url).pathname;

interface Options {
  sizes: number[];
  seconds: number;
  repeat: number;
  window: number;
  json: boolean;
  /** Only these targets, by name (--only; the table then is skipped). */
  only: string[] | undefined;
}

function parse(args: string[]): Options {
  const options: Options = {
    sizes: [100, 1000],
    seconds: 3,
    repeat: 2,
    window: 32,
    json: false,
    only: undefined,
  };
  for (const arg of args) {
    const [name, value = ""] = arg.replace(/^--/, "").split("=");
    if (name === "smoke") {
      options.sizes = [20];
      options.seconds = 0.5;
      options.repeat = 1;
    } else if (name === "n") options.sizes = value.split(",").map(Number);
    else if (name === "seconds") options.seconds = Number(value);
    else if (name === "repeat") options.repeat = Number(value);
    else if (name === "window") options.window = Number(value);
    else if (name === "json") options.json = true;
    else if (name === "only") options.only = value.split(",");
    else throw new Error(`unknown option ${arg}`);
  }
  return options;
}

interface Target {
  name: string;
  protocol: "websocket" | "tcp";
  command: () => Promise<[string, string[]]> | [string, string[]];
}

const deno = Deno.execPath();
const net = "--allow-net=127.0.0.1";

// npm:ws for Node, from Deno's npm cache (filled by `deno cache npm:ws@8`).
async function wsModule(): Promise<string> {
  const info = JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(deno, { args: ["info", "--json"] }).output())
        .stdout,
    ),
  );
  const dir = `${info.npmCache}/registry.npmjs.org/ws`;
  const pick = async () => {
    const versions: string[] = [];
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && entry.name.startsWith("8.")) {
        versions.push(entry.name);
      }
    }
    return versions.sort((a, b) =>
      a.localeCompare(b, undefined, { numeric: true })
    ).pop();
  };
  let version = await pick().catch(() => undefined);
  if (version === undefined) {
    await new Deno.Command(deno, { args: ["cache", "npm:ws@8"] }).output();
    version = await pick();
  }
  if (version === undefined) throw new Error("npm:ws@8 is not in the cache");
  return `${dir}/${version}/wrapper.mjs`;
}

const TARGETS: Target[] = [
  {
    name: "microsocket ws",
    protocol: "websocket",
    command: () => [deno, ["run", net, `${here}servers/ws_microsocket.ts`]],
  },
  {
    name: "Deno native ws",
    protocol: "websocket",
    command: () => [deno, ["run", net, `${here}servers/ws_native.ts`]],
  },
  {
    name: "Node ws",
    protocol: "websocket",
    command:
      async () => ["node", [`${here}servers/ws_node.mjs`, await wsModule()]],
  },
  {
    name: "microsocket tcp",
    protocol: "tcp",
    command:
      () => [deno, ["run", net, `${here}servers/microsocket.ts`, "fanout"]],
  },
];

/** CPU seconds (user + system) `pid` has used; NaN off Linux. */
function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** One run: deliveries/s, and the server's CPU per delivery (ns). */
interface Measured {
  rate: number;
  cpuNs: number;
}

async function measure(
  target: Target,
  receivers: number,
  options: Options,
): Promise<Measured> {
  const [cmd, args] = await target.command();
  const server = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let text = "";
    let port = 0;
    const deadline = Date.now() + 20_000;
    while (port === 0) {
      if (Date.now() > deadline) throw new Error(`${target.name}: no port`);
      const { value, done } = await reader.read();
      if (done) throw new Error(`${target.name} exited`);
      text += value;
      const match = /listening (\d+)/.exec(text);
      if (match) port = Number(match[1]);
    }
    const config = {
      protocol: target.protocol,
      port,
      receivers,
      durationMs: options.seconds * 1000,
      window: options.window,
    };
    // The server's CPU over the load generator's whole run (connecting the
    // receivers included): per delivery, a figure that other load on the
    // machine disturbs less than the rate.
    const cpuBefore = cpuSeconds(server.pid);
    const output = await new Deno.Command(deno, {
      args: [
        "run",
        net,
        `${here}ws_loadgen.ts`,
        JSON.stringify(config),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!output.success) {
      throw new Error(`${target.name}: load generator failed`);
    }
    const result = JSON.parse(new TextDecoder().decode(output.stdout));
    const cpu = cpuSeconds(server.pid) - cpuBefore;
    return {
      rate: result.perSecond as number,
      cpuNs: cpu / Number(result.deliveries) * 1e9,
    };
  } finally {
    try {
      server.kill("SIGTERM");
    } catch {
      // Exited already.
    }
    // Drain stdout so the process can exit.
    (async () => {
      try {
        while (!(await reader.read()).done) { /* drain */ }
      } catch {
        // Closed.
      }
    })();
    await server.status;
  }
}

const options = parse(Deno.args);
const bun = await findBun();
if (bun === undefined) {
  console.error("Bun ws: bun not found (npm install -g bun, or $BUN); skipped");
} else {
  TARGETS.push({
    name: "Bun ws",
    protocol: "websocket",
    command: () => [bun, [`${here}servers/ws_bun.mjs`]],
  });
}
const results: Record<string, Record<number, number>> = {};
/** The best run's server CPU per delivery, in ns. */
const cpu: Record<string, Record<number, number>> = {};
for (const n of options.sizes) {
  for (const target of TARGETS) {
    if (options.only && !options.only.includes(target.name)) continue;
    let best: Measured = { rate: 0, cpuNs: NaN };
    for (let r = 0; r < options.repeat; r++) {
      const run = await measure(target, n, options);
      if (run.rate > best.rate) best = run;
    }
    (results[target.name] ??= {})[n] = best.rate;
    (cpu[target.name] ??= {})[n] = best.cpuNs;
    if (!options.json) {
      console.error(
        `N=${n} ${target.name}: ${
          Math.round(best.rate).toLocaleString("en")
        } deliveries/s, server CPU ${Math.round(best.cpuNs)} ns/delivery`,
      );
    }
  }
}

const k = (x: number) => `${(x / 1000).toFixed(0)}k`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
if (options.json) {
  console.log(JSON.stringify({ ...results, cpuNsPerDelivery: cpu }));
} else if (!options.only) {
  const hasBun = results["Bun ws"] !== undefined;
  console.log(
    `\n| N | microsocket ws | Deno native ws | Node ws | microsocket tcp |${
      hasBun ? " Bun ws |" : ""
    } vs native (≥5×) | vs Node ws (≥3×) | vs our tcp (≥0.8×) |${
      hasBun ? " vs Bun ws (≥1×) |" : ""
    }`,
  );
  console.log(`|---|---|---|---|---|---|---|---|${hasBun ? "---|---|" : ""}`);
  for (const n of options.sizes) {
    const ms = results["microsocket ws"]![n]!;
    const native = results["Deno native ws"]![n]!;
    const node = results["Node ws"]![n]!;
    const tcp = results["microsocket tcp"]![n]!;
    const bunRate = results["Bun ws"]?.[n];
    console.log(
      `| ${n} | ${k(ms)}/s | ${k(native)}/s | ${k(node)}/s | ${k(tcp)}/s |${
        bunRate === undefined ? "" : ` ${k(bunRate)}/s |`
      } ${ratio(ms, native)} | ${ratio(ms, node)} | ${ratio(ms, tcp)} |${
        bunRate === undefined ? "" : ` ${ratio(ms, bunRate)} |`
      }`,
    );
  }
}
