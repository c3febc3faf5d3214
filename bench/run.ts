// Benchmark orchestrator for issue 6: runs every workload against every
// server, each server in its own process and the load generator in another,
// then prints a Markdown table and (full runs only) writes bench/results.md.
//
//   deno task bench              full run (a few minutes)
//   deno task bench --smoke      tiny run for CI (seconds); exit 1 if broken
//
// Options: --servers=microsocket,floor,naive,node  --workloads=fanout100,
// fanout1000,echo,idle,slow,capacity  --repeat=N  --window=N  --batch=N
// --loadgen=c|deno  --out=PATH  --no-write
//
// Server RSS and CPU are read from /proc/<pid>/{status,stat} (Linux).

import { compileLoadgen } from "./loadgen_c.ts";

const here = new URL(".", import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;

// ---------------------------------------------------------------- options

interface Options {
  smoke: boolean;
  servers: string[];
  workloads: string[];
  repeat: number;
  window: number | undefined;
  batch: number | undefined;
  accumulate: number | undefined;
  loadgen: "c" | "deno" | "auto";
  out: string;
  write: boolean;
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    smoke: false,
    servers: ["microsocket", "floor", "naive", "node"],
    workloads: ["fanout100", "fanout1000", "echo", "idle", "slow", "capacity"],
    repeat: 0,
    window: undefined,
    batch: undefined,
    accumulate: undefined,
    loadgen: "auto",
    out: `${here}results.md`,
    write: true,
  };
  for (const arg of args) {
    const [key, value = ""] = arg.split("=", 2) as [string, string?];
    if (key === "--smoke") options.smoke = true;
    else if (key === "--servers") options.servers = value.split(",");
    else if (key === "--workloads") options.workloads = value.split(",");
    else if (key === "--repeat") options.repeat = Number(value);
    else if (key === "--window") options.window = Number(value);
    else if (key === "--batch") options.batch = Number(value);
    else if (key === "--accumulate") options.accumulate = Number(value);
    else if (key === "--loadgen") options.loadgen = value as Options["loadgen"];
    else if (key === "--out") options.out = value;
    else if (key === "--no-write") options.write = false;
    else {
      console.error(`unknown option ${arg}`);
      Deno.exit(2);
    }
  }
  if (options.repeat === 0) options.repeat = options.smoke ? 1 : 3;
  return options;
}

// ---------------------------------------------------------------- processes

/** Runs `argv` with the open-file limit raised (the shell `exec`s, so the pid is the program's). */
function spawnRaised(
  argv: string[],
  stdin: "piped" | "null",
): Deno.ChildProcess {
  const script =
    'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; exec "$@"';
  return new Deno.Command("sh", {
    args: ["-c", script, "sh", ...argv],
    cwd: root,
    stdin,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

const live = new Set<Deno.ChildProcess>();

function killQuietly(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // already exited
  }
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  killQuietly(child, "SIGTERM");
  const timer = setTimeout(() => killQuietly(child, "SIGKILL"), 1_000);
  await child.status;
  clearTimeout(timer);
  live.delete(child);
}

function cleanupAndExit(code: number): never {
  for (const child of live) killQuietly(child, "SIGKILL");
  Deno.exit(code);
}

Deno.addSignalListener("SIGINT", () => cleanupAndExit(130));
Deno.addSignalListener("SIGTERM", () => cleanupAndExit(143));

/** Reads a stream line by line. */
async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
  if (pending) yield pending;
}

/** Keeps the last few KB of a stream, so a failure can show it. */
function tail(
  stream: ReadableStream<Uint8Array>,
): { text: () => string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) {
      text = (text + decoder.decode(chunk, { stream: true })).slice(-4000);
    }
  })().catch(() => {});
  return { text: () => text, done };
}

function rssBytes(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = status.match(/VmRSS:\s+(\d+) kB/);
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system) used so far by `pid`. */
function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
function machineJiffies(): { busy: number; total: number } {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
    const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = values.reduce((a, b) => a + b, 0);
    const idle = values[3]! + values[4]!; // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

// ---------------------------------------------------------------- servers

interface ServerSpec {
  name: string;
  label: string;
  argv(mode: "fanout" | "echo"): string[];
}

const deno = Deno.execPath();
const denoServer = (file: string) => (mode: string): string[] => [
  deno,
  "run",
  "--quiet",
  "--allow-net=127.0.0.1",
  `${here}servers/${file}`,
  mode,
];

const SERVERS: Record<string, ServerSpec> = {
  microsocket: {
    name: "microsocket",
    label: "microsocket",
    argv: denoServer("microsocket.ts"),
  },
  floor: {
    name: "floor",
    label: "raw Deno floor",
    argv: denoServer("floor.ts"),
  },
  naive: {
    name: "naive",
    label: "raw Deno naive",
    argv: denoServer("naive.ts"),
  },
  node: {
    name: "node",
    label: "Node net",
    argv: (mode) => ["node", `${here}servers/node_net.mjs`, mode],
  },
};

interface RunningServer {
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  stderr: { text: () => string; done: Promise<void> };
}

async function startServer(
  spec: ServerSpec,
  mode: "fanout" | "echo",
): Promise<RunningServer> {
  const child = spawnRaised(spec.argv(mode), "null");
  live.add(child);
  const stderr = tail(child.stderr);
  // Read stdout by hand: leaving a for-await early would cancel the pipe, and
  // cancelling a child's stdout waits for the child to close it.
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  const timer = setTimeout(() => killQuietly(child, "SIGKILL"), 20_000);
  let text = "";
  let port = 0;
  try {
    while (port === 0) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const match = text.match(/^listening (\d+)$/m);
      if (match) port = Number(match[1]);
    }
  } finally {
    clearTimeout(timer);
  }
  if (port === 0) {
    await stop(child);
    throw new Error(
      `${spec.name} did not start: ${stderr.text().trim().slice(-500)}`,
    );
  }
  // Keep draining stdout so the server never blocks on it.
  (async () => {
    while (!(await reader.read()).done) { /* ignore */ }
  })().catch(() => {});
  return { child, pid: child.pid, port, stderr };
}

// ---------------------------------------------------------------- runs

type Json = Record<string, unknown>;

interface RunResult extends Json {
  error?: string;
  rate?: number;
  serverCpu?: number;
  rssBaseline?: number;
  rssCheckpoint?: number;
  rssPeak?: number;
  rssEnd?: number;
}

let loadgenArgv: (config: string) => string[] = (config) => [
  deno,
  "run",
  "--quiet",
  "--allow-net=127.0.0.1",
  `${here}loadgen.ts`,
  config,
];

const isTty = Deno.stdout.isTerminal();
const encoder = new TextEncoder();

function status(text: string, final: boolean): void {
  if (isTty) {
    Deno.stdout.writeSync(
      encoder.encode(`\r\x1b[2K${text}${final ? "\n" : ""}`),
    );
  } else if (final) console.log(text);
}

/** Starts a server, runs the load generator against it once, stops both. */
async function runOnce(
  spec: ServerSpec,
  mode: "fanout" | "echo",
  config: Json,
  title: string,
  hardTimeoutMs: number,
): Promise<RunResult> {
  let server: RunningServer;
  try {
    server = await startServer(spec, mode);
  } catch (error) {
    return { error: (error as Error).message };
  }
  const result: RunResult = {};
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 100));
  result.rssBaseline = rssBytes(server.pid);
  let rssPeak = result.rssBaseline;
  let cpuStart = NaN;
  let wallStart = NaN;
  let machineStart = machineJiffies();

  const loadgen = spawnRaised(
    loadgenArgv(
      JSON.stringify({ ...config, port: server.port, controlled: true }),
    ),
    "piped",
  );
  live.add(loadgen);
  const loadgenErr = tail(loadgen.stderr);
  const stdin = loadgen.stdin.getWriter();
  const sampler = setInterval(() => {
    const rss = rssBytes(server.pid);
    if (rss > rssPeak) rssPeak = rss;
  }, 50);
  const hardTimer = setTimeout(() => {
    result.error = `timed out after ${hardTimeoutMs} ms`;
    killQuietly(loadgen, "SIGKILL");
  }, hardTimeoutMs);

  try {
    for await (const line of lines(loadgen.stdout)) {
      let event: Json;
      try {
        event = JSON.parse(line);
      } catch {
        continue;
      }
      if (event.type === "checkpoint") {
        if (event.name === "ready") {
          // Idle: let the server settle, then read its memory.
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        result.rssCheckpoint = rssBytes(server.pid);
        rssPeak = result.rssCheckpoint;
        cpuStart = cpuSeconds(server.pid);
        machineStart = machineJiffies();
        wallStart = performance.now();
        await stdin.write(encoder.encode("go\n"));
      } else if (event.type === "progress") {
        const rate = Number(event.rate ?? 0);
        const elapsed = Number(event.elapsedMs) / 1000;
        const detail = event.rate === undefined
          ? `${event.delivered} connections`
          : `${formatRate(rate)}`;
        status(
          `  ${title} · ${spec.name} · ${elapsed.toFixed(1)} s · ${detail}`,
          false,
        );
      } else if (event.type === "mark") {
        // End of the measured interval.
        const wall = (performance.now() - wallStart) / 1000;
        result.serverCpu = (cpuSeconds(server.pid) - cpuStart) / wall;
        const machine = machineJiffies();
        // Share of all cores busy (any process, kernel included).
        result.machineBusy = (machine.busy - machineStart.busy) /
          (machine.total - machineStart.total);
        result.rssEnd = rssBytes(server.pid);
      } else if (event.type === "result") {
        result.rssEnd ??= rssBytes(server.pid);
        Object.assign(result, event);
      }
    }
  } catch (error) {
    result.error ??= String(error);
  } finally {
    clearTimeout(hardTimer);
    clearInterval(sampler);
    await stdin.close().catch(() => {});
    await loadgen.status;
    live.delete(loadgen);
    await loadgenErr.done;
    result.rssPeak = Math.max(rssPeak, result.rssEnd ?? 0);
    const alive = rssBytes(server.pid);
    if (Number.isNaN(alive)) {
      result.error ??= `server exited: ${server.stderr.text().slice(-300)}`;
    }
    await stop(server.child);
    await server.stderr.done;
  }
  if (result.type !== "result" && !result.error) {
    result.error = `load generator gave no result: ${
      loadgenErr.text().trim().slice(-300)
    }`;
  }
  result.wallMs = performance.now() - started;
  return result;
}

// ---------------------------------------------------------------- workloads

interface Workload {
  id: string;
  title: string;
  mode: "fanout" | "echo";
  /** Higher is better for the headline metric (false: lower is better). */
  higherIsBetter: boolean;
  repeatable: boolean;
  config(options: Options): Json;
  timeoutMs(options: Options): number;
  headline(result: RunResult): number;
}

function fanoutConfig(
  options: Options,
  receivers: number,
  stuck: number,
  durationMs: number,
  maxMessages: number,
): Json {
  return {
    workload: "fanout",
    receivers,
    stuck,
    durationMs,
    maxMessages,
    window: options.window ?? 32,
    batch: options.batch ?? 1,
    accumulateUs: options.accumulate ?? 100,
  };
}

function workloads(options: Options): Workload[] {
  const smoke = options.smoke;
  const fanDuration = smoke ? 200 : 2_000;
  const list: Workload[] = [
    {
      id: "fanout100",
      title: `fan-out N=${smoke ? 10 : 100}`,
      mode: "fanout",
      higherIsBetter: true,
      repeatable: true,
      config: (o) =>
        fanoutConfig(o, smoke ? 10 : 100, 0, fanDuration, 50_000_000),
      timeoutMs: () => fanDuration + 30_000,
      headline: (r) => r.rate ?? NaN,
    },
    {
      id: "fanout1000",
      title: `fan-out N=${smoke ? 20 : 1000}`,
      mode: "fanout",
      higherIsBetter: true,
      repeatable: true,
      config: (o) =>
        fanoutConfig(o, smoke ? 20 : 1000, 0, fanDuration, 50_000_000),
      timeoutMs: () => fanDuration + 40_000,
      headline: (r) => r.rate ?? NaN,
    },
    {
      id: "echo",
      title: "echo 50×16",
      mode: "echo",
      higherIsBetter: true,
      repeatable: true,
      config: () => ({
        workload: "echo",
        connections: 50,
        inflight: 16,
        durationMs: smoke ? 200 : 2_000,
      }),
      timeoutMs: () => 30_000,
      headline: (r) => r.rate ?? NaN,
    },
    {
      id: "idle",
      title: `idle ${smoke ? 200 : 5000}`,
      mode: "echo",
      higherIsBetter: false,
      repeatable: false,
      config: () => ({
        workload: "idle",
        connections: smoke ? 200 : 5_000,
        concurrency: 128,
      }),
      timeoutMs: () => 60_000,
      headline: (r) => perSession(r),
    },
    {
      id: "slow",
      title: `slow consumers N=${smoke ? 10 : 100}+2`,
      mode: "fanout",
      higherIsBetter: true,
      repeatable: false,
      // Long enough that each stuck receiver is owed far more than the
      // kernel's socket buffers (~4 MB) plus a 1 MiB outbound budget.
      config: (o) =>
        fanoutConfig(
          o,
          smoke ? 10 : 100,
          2,
          smoke ? 200 : 12_000,
          smoke ? 1e9 : 200_000,
        ),
      timeoutMs: () => (smoke ? 30_000 : 60_000),
      headline: (r) => r.rate ?? NaN,
    },
  ];
  return list.filter((w) => options.workloads.includes(w.id));
}

function perSession(r: RunResult): number {
  const connections = Number(r.connections ?? 0);
  if (
    !connections || r.rssCheckpoint === undefined || r.rssBaseline === undefined
  ) return NaN;
  return (r.rssCheckpoint - r.rssBaseline) / connections;
}

// ---------------------------------------------------------------- formatting

function formatRate(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M/s`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(0)}k/s`;
  return `${value.toFixed(0)}/s`;
}

function formatBytes(value: number): string {
  if (!Number.isFinite(value)) return "–";
  const sign = value < 0 ? "-" : "";
  value = Math.abs(value);
  if (value >= 1024 * 1024) {
    return `${sign}${(value / 1024 / 1024).toFixed(1)} MB`;
  }
  if (value >= 1024) return `${sign}${(value / 1024).toFixed(1)} KB`;
  return `${sign}${value.toFixed(0)} B`;
}

function formatMs(us: unknown): string {
  const value = Number(us) / 1000;
  if (!Number.isFinite(value)) return "–";
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}

function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "–";
}

function formatPercent(value: unknown): string {
  const n = Number(value);
  return Number.isFinite(n) ? `${Math.round(n * 100)}%` : "–";
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  const notes: string[] = [];
  const failures: string[] = [];

  if (options.loadgen !== "deno") {
    const binary = await compileLoadgen(here);
    if (binary) {
      loadgenArgv = (config) => [binary, config];
    } else if (options.loadgen === "c") {
      console.error("no C compiler (cc) found for --loadgen=c");
      return 2;
    } else notes.push("No C compiler found: the Deno load generator was used.");
  }
  const loadgenName = loadgenArgv("")[0] === deno
    ? "Deno (bench/loadgen.ts)"
    : "C (bench/loadgen.c)";

  const servers: ServerSpec[] = [];
  for (const name of options.servers) {
    const spec = SERVERS[name];
    if (!spec) {
      console.error(`unknown server ${name}`);
      return 2;
    }
    if (name === "microsocket") {
      const ready = await exists(`${root}mod.ts`) &&
        await exists(`${here}servers/microsocket.ts`);
      if (!ready) {
        notes.push(
          "microsocket: mod.ts or bench/servers/microsocket.ts missing; skipped.",
        );
        continue;
      }
    }
    if (name === "node" && !(await hasCommand("node"))) {
      notes.push("node: not installed; skipped.");
      continue;
    }
    servers.push(spec);
  }

  const machine = await describeMachine();
  console.log(
    `microsocket bench${
      options.smoke ? " (smoke)" : ""
    } · ${machine} · load generator: ${loadgenName}`,
  );

  const results = new Map<string, Map<string, RunResult>>();
  for (const workload of workloads(options)) {
    const row = new Map<string, RunResult>();
    results.set(workload.id, row);
    for (const spec of servers) {
      let best: RunResult | undefined;
      const repeats = workload.repeatable ? options.repeat : 1;
      for (let i = 0; i < repeats; i++) {
        const label = repeats > 1
          ? `${workload.title} (${i + 1}/${repeats})`
          : workload.title;
        const result = await runOnce(
          spec,
          workload.mode,
          workload.config(options),
          label,
          workload.timeoutMs(options),
        );
        if (!best || better(workload, result, best)) best = result;
        status(
          `  ${label} · ${spec.name} · ${summarize(workload, result)}`,
          true,
        );
      }
      row.set(spec.name, best!);
      failures.push(...check(workload, spec.name, best!, options));
    }
  }

  let capacity: RunResult | undefined;
  if (
    options.workloads.includes("capacity") &&
    servers.some((s) => s.name === "floor")
  ) {
    // Load-generator capacity: the floor with the sender writing large batches
    // does one write per receiver per many messages, so the run is bounded by
    // how fast the load generator can receive and parse.
    const receivers = options.smoke ? 10 : 100;
    capacity = await runOnce(
      SERVERS.floor!,
      "fanout",
      {
        workload: "fanout",
        receivers,
        stuck: 0,
        durationMs: options.smoke ? 200 : 2_000,
        maxMessages: 50_000_000,
        window: 4096,
        batch: 256,
      },
      `capacity N=${receivers}`,
      60_000,
    );
    status(
      `  loadgen capacity (floor, 256-message batches) · ${
        formatRate(capacity.rate ?? NaN)
      } deliveries`,
      true,
    );
    if (capacity.error) failures.push(`capacity: ${capacity.error}`);
  }

  const report = renderReport(
    options,
    servers,
    results,
    capacity,
    machine,
    loadgenName,
    notes,
  );
  console.log("");
  console.log(report);
  if (!options.smoke && options.write) {
    await Deno.writeTextFile(options.out, report);
    console.log(`written to ${options.out}`);
  }
  if (failures.length > 0) {
    console.error(
      `\n${options.smoke ? "smoke run failed" : "problems"}:\n- ${
        failures.join("\n- ")
      }`,
    );
    return options.smoke ? 1 : 0;
  }
  return 0;
}

function better(workload: Workload, a: RunResult, b: RunResult): boolean {
  if (a.error) return false;
  if (b.error) return true;
  const x = workload.headline(a);
  const y = workload.headline(b);
  if (!Number.isFinite(y)) return true;
  return workload.higherIsBetter ? x > y : x < y;
}

function summarize(workload: Workload, r: RunResult): string {
  if (r.error) return `error: ${r.error}`;
  if (workload.id === "idle") {
    return `${formatBytes(perSession(r))}/session, accepted in ${
      Number(r.acceptMs).toFixed(0)
    } ms`;
  }
  const base =
    `${formatRate(r.rate ?? NaN)} · p50 ${formatMs(r.p50Us)} · p99 ${
      formatMs(r.p99Us)
    }` +
    ` · cpu server ${formatPercent(r.serverCpu)} loadgen ${
      formatPercent(r.loadgenCpu)
    }` +
    ` machine ${formatPercent(r.machineBusy)}`;
  if (workload.mode === "fanout") return `${base} · lost ${r.lost}`;
  return base;
}

/** Conditions that mean the harness (or a server) is broken, not merely slow. */
function check(
  workload: Workload,
  server: string,
  r: RunResult,
  options: Options,
): string[] {
  const where = `${workload.title} · ${server}`;
  if (r.error) return [`${where}: ${r.error}`];
  const problems: string[] = [];
  if (workload.id === "idle") {
    if (Number(r.opened) !== Number(r.connections)) {
      problems.push(`${where}: only ${r.opened} connections`);
    }
    return problems;
  }
  if (!(Number(r.rate) > 0)) problems.push(`${where}: no throughput`);
  if (Number(r.corrupt) > 0) {
    problems.push(`${where}: ${r.corrupt} corrupt records`);
  }
  if (workload.mode === "fanout") {
    if (r.stalled) problems.push(`${where}: stalled`);
    if (Number(r.lost) > 0) problems.push(`${where}: ${r.lost} messages lost`);
    if (Number(r.gaps) > 0) problems.push(`${where}: ${r.gaps} sequence gaps`);
  } else if (Number(r.errors) > 0) {
    problems.push(`${where}: ${r.errors} connection errors`);
  }
  if (!options.smoke && workload.id !== "slow" && Number(r.loadgenCpu) > 0.95) {
    problems.push(
      `${where}: load generator near 100% CPU; the figure may be loadgen-bound`,
    );
  }
  return problems;
}

// ---------------------------------------------------------------- report

function renderReport(
  options: Options,
  servers: ServerSpec[],
  results: Map<string, Map<string, RunResult>>,
  capacity: RunResult | undefined,
  machine: string,
  loadgenName: string,
  notes: string[],
): string {
  const names = servers.map((s) => s.name);
  const get = (id: string, name: string): RunResult | undefined =>
    results.get(id)?.get(name);
  const out: string[] = [];
  out.push(`# microsocket benchmarks${options.smoke ? " (smoke run)" : ""}`);
  out.push("");
  out.push(
    `${
      new Date().toISOString().slice(0, 16).replace("T", " ")
    } UTC · ${machine} · load generator: ${loadgenName}` +
      (options.repeat > 1
        ? ` · throughput rows: best of ${options.repeat}`
        : ""),
  );
  out.push("");
  out.push(
    "Reproduce with `deno task bench` (this file) or `deno task bench --smoke` (seconds).",
  );
  out.push("");

  // Summary table.
  const header = [
    "workload",
    ...servers.map((s) => s.label),
    "microsocket/floor",
    "microsocket/node",
    "target",
  ];
  out.push(`| ${header.join(" | ")} |`);
  out.push(`|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`);
  const ratio = (
    id: string,
    value: (r: RunResult) => number,
    other: string,
  ): number => {
    const a = get(id, "microsocket");
    const b = get(id, other);
    if (!a || !b || a.error || b.error) return NaN;
    return value(a) / value(b);
  };
  const row = (
    label: string,
    id: string,
    value: (r: RunResult) => number,
    format: (n: number) => string,
    target: string,
  ): void => {
    if (!results.has(id)) return;
    const cells = names.map((name) => {
      const r = get(id, name);
      if (!r) return "–";
      if (r.error) return "error";
      return format(value(r));
    });
    out.push(
      `| ${label} | ${cells.join(" | ")} | ${
        formatRatio(ratio(id, value, "floor"))
      } | ${formatRatio(ratio(id, value, "node"))} | ${target} |`,
    );
  };
  const rate = (r: RunResult): number => Number(r.rate);
  const fanTitle = (id: string) =>
    workloads(options).find((w) => w.id === id)?.title ?? id;
  row(
    `${fanTitle("fanout100")}, deliveries/s`,
    "fanout100",
    rate,
    formatRate,
    "≥ 0.7× floor, ≥ 4× node",
  );
  row(
    `${fanTitle("fanout1000")}, deliveries/s`,
    "fanout1000",
    rate,
    formatRate,
    "≥ 0.7× floor, ≥ 4× node",
  );
  row(
    "echo 50 conns × 16 in flight, frames/s",
    "echo",
    rate,
    formatRate,
    "≥ 0.8× floor",
  );
  row(
    `${fanTitle("idle")}, RSS per session`,
    "idle",
    perSession,
    formatBytes,
    "≤ 16 KB",
  );
  row(
    `${fanTitle("idle")}, time to accept all`,
    "idle",
    (r) => Number(r.acceptMs) * 1000,
    formatMs,
    "",
  );
  row(
    `${fanTitle("slow")}, deliveries/s to readers`,
    "slow",
    rate,
    formatRate,
    "≥ 0.8× unstuck",
  );
  if (results.has("slow") && results.has("fanout100")) {
    row(
      "slow consumers ÷ unstuck fan-out rate",
      "slow",
      (r) => {
        const name = names.find((n) => get("slow", n) === r)!;
        return rate(r) / rate(get("fanout100", name) ?? { rate: NaN });
      },
      formatRatio,
      "≥ 0.8",
    );
  }
  row(
    "slow consumers, server RSS growth",
    "slow",
    (r) => Number(r.rssPeak) - Number(r.rssCheckpoint),
    formatBytes,
    "≤ 2 budgets + 20 MB",
  );
  out.push("");
  out.push(
    "Ratios are microsocket ÷ the other server (for memory and time, lower is better). " +
      "`floor` forwards each read chunk's complete lines with one write per receiver (coalescing " +
      "queue); `naive` does one `writer.write()` per message per receiver; `node` does one " +
      "`socket.write()` per message per receiver.",
  );
  out.push("");

  // Details.
  out.push("## Details");
  out.push("");
  out.push(
    "| workload | server | result | p50 | p99 | lost | server CPU | loadgen CPU | server RSS |",
  );
  out.push("|---|---|---:|---:|---:|---:|---:|---:|---|");
  for (const workload of workloads(options)) {
    for (const spec of servers) {
      const r = get(workload.id, spec.name);
      if (!r) continue;
      if (r.error) {
        out.push(
          `| ${workload.title} | ${spec.name} | error: ${
            r.error.replaceAll("|", "/").slice(0, 200)
          } | | | | | | |`,
        );
        continue;
      }
      const rss =
        `${formatBytes(Number(r.rssBaseline))} → ${
          formatBytes(Number(r.rssCheckpoint))
        }` +
        (workload.id === "idle"
          ? ""
          : ` (peak ${formatBytes(Number(r.rssPeak))})`);
      if (workload.id === "idle") {
        out.push(
          `| ${workload.title} | ${spec.name} | ${r.opened} open, ${
            formatBytes(perSession(r))
          }/session, accepted in ${
            Number(r.acceptMs).toFixed(0)
          } ms | | | | | | ${rss} |`,
        );
        continue;
      }
      const lost = workload.mode === "fanout" ? `${r.lost}` : "";
      out.push(
        `| ${workload.title} | ${spec.name} | ${formatRate(Number(r.rate))} | ${
          formatMs(r.p50Us)
        } | ${formatMs(r.p99Us)} | ${lost} | ${formatPercent(r.serverCpu)} | ${
          formatPercent(r.loadgenCpu)
        } | ${rss} |`,
      );
    }
  }
  out.push("");

  if (results.has("slow")) {
    out.push("### Stuck receivers (slow consumers)");
    out.push("");
    out.push(
      "| server | sent | each stuck receiver got | how it ended | RSS growth |",
    );
    out.push("|---|---:|---|---|---:|");
    for (const spec of servers) {
      const r = get("slow", spec.name);
      if (!r || r.error) continue;
      const stuck = (r.stuckReport as Json[] | undefined) ?? [];
      const got = stuck.map((s) => `${s.received}`).join(", ");
      const ended = stuck.map((s) =>
        describeEnd(String(s.endedBy), Number(s.received), Number(s.owed))
      ).join("; ");
      out.push(
        `| ${spec.name} | ${r.sent} (${
          formatBytes(Number(r.sent) * 64)
        } each) | ${got} | ${ended} | ${
          formatBytes(Number(r.rssPeak) - Number(r.rssCheckpoint))
        } |`,
      );
    }
    out.push("");
  }

  if (capacity) {
    out.push("## Does the load generator saturate the floor?");
    out.push("");
    const floor100 = get("fanout100", "floor");
    out.push(
      `- Capacity probe: the floor server with the sender writing 256-message batches (one server write per ` +
        `receiver per 256 messages) reached **${
          formatRate(Number(capacity.rate))
        }** deliveries at ` +
        `N=${capacity.receivers}, load generator CPU ${
          formatPercent(capacity.loadgenCpu)
        }, server CPU ` +
        `${formatPercent(capacity.serverCpu)}.` +
        (floor100 && !floor100.error
          ? ` The standard fan-out run against the floor reached ${
            formatRate(Number(floor100.rate))
          }, ` +
            `i.e. ${
              (Number(capacity.rate) / Number(floor100.rate)).toFixed(1)
            }× headroom.`
          : ""),
    );
    out.push(
      "- CPU columns above: a server near 100% of one core with the load generator below it means the " +
        "server is the bottleneck.",
    );
    out.push("");
  }

  out.push("## Method");
  out.push("");
  const fan = fanoutConfig(options, 0, 0, 0, 0);
  out.push(
    `- Every server runs as its own process on 127.0.0.1 (fresh process per run); one load-generator ` +
      `process drives it. Fan-out: 1 sender, N receivers, 64-byte lines carrying the send time and a ` +
      `sequence number; the sender writes ${fan.batch} message(s) per write and keeps at most ` +
      `${fan.window} messages ahead of the slowest reader (so queues stay far below any outbound budget); ` +
      `latency is send → receive in the load generator. Echo: 50 connections × 16 frames in flight, ` +
      `4-byte length + 64-byte payload. Idle: connections opened 128 at a time, one echo round trip ` +
      `each (the accept time runs until the last echo), RSS read 0.5 s later. Slow consumers: fan-out ` +
      `plus 2 receivers that never read; each is owed far more than the kernel's socket buffers (~4 MB) ` +
      `plus a 1 MiB budget; afterwards they read what they can get.`,
  );
  out.push(
    "- Server RSS is VmRSS from /proc; CPU is user+system time of the process over the measured interval.",
  );
  for (const note of notes) out.push(`- ${note}`);
  out.push("");
  return out.join("\n");
}

function describeEnd(endedBy: string, received: number, owed: number): string {
  if (endedBy === "eof") return `closed by server after ${received}/${owed}`;
  if (endedBy.startsWith("error")) {
    return `reset by server after ${received}/${owed} (${endedBy})`;
  }
  if (received >= owed) return "kept open, got everything late";
  return `kept open, ${received}/${owed} delivered`;
}

// ---------------------------------------------------------------- environment

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function hasCommand(name: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(name, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

async function describeMachine(): Promise<string> {
  let cores = String(navigator.hardwareConcurrency);
  let node = "no node";
  try {
    const out = await new Deno.Command("nproc", { stdout: "piped" }).output();
    cores = new TextDecoder().decode(out.stdout).trim();
  } catch {
    // keep navigator's figure
  }
  try {
    const out = await new Deno.Command("node", {
      args: ["--version"],
      stdout: "piped",
    }).output();
    node = `node ${new TextDecoder().decode(out.stdout).trim()}`;
  } catch {
    // no node
  }
  return `${cores} cores (nproc), ${Deno.build.os} ${Deno.build.arch}, deno ${Deno.version.deno}, ${node}`;
}

if (import.meta.main) {
  let code = 2;
  try {
    code = await main();
  } catch (error) {
    console.error(error);
  }
  cleanupAndExit(code);
}
