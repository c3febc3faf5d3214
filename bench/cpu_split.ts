// Where a fan-out server's CPU goes, split into the kernel (the write
// syscalls and the loopback delivery they do), the runtime's native code
// (V8's C++ and builtins, Deno's Rust ops and tokio, or Bun's Zig and C++)
// and JIT-compiled JavaScript, per delivery (issue 19 §1). It shows why the
// hand-written Deno floor, and so any Deno server, stays below Bun at
// N=1,000: the kernel's share per delivery is about the same for all of
// them; the runtime's own per-write cost is not.
//
//   deno run -A bench/cpu_split.ts [--servers=floor,bun,microsocket]
//                                  [--workload=fanout1000] [--seconds=14]
//
// Needs `perf` (linux-perf) and the rights to sample the whole system
// (root, or kernel.perf_event_paranoid ≤ 0). For each server it runs
// `deno task bench --servers=<server> --workloads=<workload> --repeat=1`
// under `perf record -a`, takes the server's process (the busiest process of
// its command name), and splits its samples by DSO. The window also holds
// the setup (connecting the receivers), which costs every server alike.

import { hasCommand } from "./_measure.ts";

interface Options {
  servers: string[];
  workload: string;
  seconds: number;
}

function parse(args: string[]): Options {
  const options: Options = {
    servers: ["floor", "bun", "microsocket"],
    workload: "fanout1000",
    seconds: 14,
  };
  for (const arg of args) {
    const [key, value = ""] = arg.split("=", 2);
    if (key === "--servers") options.servers = value.split(",");
    else if (key === "--workload") options.workload = value;
    else if (key === "--seconds") options.seconds = Number(value);
    else throw new TypeError(`Unknown option ${arg}`);
  }
  return options;
}

const COMMAND_OF: Record<string, string> = { bun: "bun", node: "node" };

interface Split {
  rate: number;
  cpu: number;
  kernel: number;
  native: number;
  jit: number;
}

async function measure(
  server: string,
  options: Options,
): Promise<Split | string> {
  const data = await Deno.makeTempFile({ suffix: ".perf" });
  try {
    const perf = new Deno.Command("perf", {
      args: [
        "record",
        "-a",
        "-F",
        "999",
        "-o",
        data,
        "--",
        "sleep",
        String(options.seconds),
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const bench = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "bench",
        `--servers=${server}`,
        `--workloads=${options.workload}`,
        "--repeat=1",
        "--no-write",
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    await perf.status;
    const out = new TextDecoder().decode(bench.stdout);
    const row = out.split("\n").find((line) =>
      line.startsWith("| fan-out") && line.split("|")[2]?.trim() === server
    );
    if (row === undefined) return "no fan-out row in the bench's output";
    const cells = row.split("|").map((cell) => cell.trim());
    const rate = parseRate(cells[3]!);
    const cpu = Number(cells[8]!.replace("%", "")) / 100;
    const report = await new Deno.Command("perf", {
      args: ["report", "-i", data, "--sort", "pid,dso", "--stdio"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return split(
      new TextDecoder().decode(report.stdout),
      COMMAND_OF[server] ?? "deno",
      rate,
      cpu,
    );
  } finally {
    await Deno.remove(data).catch(() => {});
  }
}

function parseRate(cell: string): number {
  const match = /^([\d.]+)([kM])\/s$/.exec(cell);
  if (match === null) return NaN;
  return Number(match[1]) * (match[2] === "M" ? 1e6 : 1e3);
}

// Lines like "  5.47%    28493:deno   [kernel.kallsyms]".
function split(
  report: string,
  command: string,
  rate: number,
  cpu: number,
): Split | string {
  const byPid = new Map<
    string,
    { kernel: number; native: number; jit: number }
  >();
  for (const line of report.split("\n")) {
    const match = /^\s*([\d.]+)%\s+(\d+):(\S+)\s+(.+?)\s*$/.exec(line);
    if (match === null || match[3] !== command) continue;
    const share = Number(match[1]);
    const dso = match[4]!;
    const entry = byPid.get(match[2]!) ?? { kernel: 0, native: 0, jit: 0 };
    if (dso === "[kernel.kallsyms]") entry.kernel += share;
    else if (dso.startsWith("[JIT]") || dso.startsWith("perf-")) {
      entry.jit += share;
    } else entry.native += share;
    byPid.set(match[2]!, entry);
  }
  let busiest: { kernel: number; native: number; jit: number } | undefined;
  let most = 0;
  for (const entry of byPid.values()) {
    const total = entry.kernel + entry.native + entry.jit;
    if (total > most) {
      most = total;
      busiest = entry;
    }
  }
  if (busiest === undefined) return `no samples of a "${command}" process`;
  // ns of server CPU per delivery, split by the samples' shares.
  const perDelivery = cpu * 1e9 / rate;
  return {
    rate,
    cpu,
    kernel: perDelivery * busiest.kernel / most,
    native: perDelivery * busiest.native / most,
    jit: perDelivery * busiest.jit / most,
  };
}

if (import.meta.main) {
  const options = parse(Deno.args);
  if (!await hasCommand("perf")) {
    console.log("perf not found (apt-get install linux-perf): skipped");
    Deno.exit(0);
  }
  console.log(
    `| server | deliveries/s | server CPU | ns per delivery | kernel | runtime native | JIT JS |`,
  );
  console.log(`|---|---:|---:|---:|---:|---:|---:|`);
  for (const server of options.servers) {
    const result = await measure(server, options);
    if (typeof result === "string") {
      console.log(`| ${server} | ${result} | | | | | |`);
      continue;
    }
    const total = result.kernel + result.native + result.jit;
    const ns = (value: number) =>
      `${value.toFixed(0)} (${(100 * value / total).toFixed(0)}%)`;
    console.log(
      `| ${server} | ${(result.rate / 1e6).toFixed(2)}M/s | ${
        (result.cpu * 100).toFixed(0)
      }% | ${total.toFixed(0)} | ${ns(result.kernel)} | ${
        ns(result.native)
      } | ${ns(result.jit)} |`,
    );
  }
}
