// Benchmark measurement: starts servers and load generators as child
// processes (each in its own), feeds a load generator its workload, and
// collects the figures: the load generator's result, the server's RSS and
// CPU from /proc/<pid>/{status,stat} (Linux), and the write counters a Deno
// server prints on SIGTERM ("stats {...}"). Also the probes of the machine
// the report names (cores, commit, node, the open-file limit).
// bench/run.ts decides what to run; bench/_report.ts renders it.

import { formatRate } from "./_format.ts";

const here = new URL(".", import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;

/** Settings run.ts fills in from its options before the first run. */
export const harness: {
  /** Extra `deno run` flags for Deno servers, e.g. --cpu-prof (see --server-flags). */
  serverFlags: string[];
  /** The Go hub binary, built by run.ts (bench/go_hub_build.ts). */
  goHubBinary: string;
  /** The Bun executable, found by run.ts (findBun). */
  bunBinary: string;
  /** The load generator's command line for a JSON config. */
  loadgenArgv: (config: string) => string[];
} = {
  serverFlags: [],
  goHubBinary: "go_hub",
  bunBinary: "bun",
  loadgenArgv: (config) => [
    Deno.execPath(),
    "run",
    "--quiet",
    "--allow-net=127.0.0.1",
    `${here}loadgen.ts`,
    config,
  ],
};

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

export function cleanupAndExit(code: number): never {
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

export function rssBytes(pid: number): number {
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

/**
 * What a server does: fanout (every line to every other client), chat
 * (fanout plus join/leave announcements, for the waves), echo.
 */
export type Mode = "fanout" | "chat" | "echo";

export interface ServerSpec {
  name: string;
  label: string;
  argv(mode: Mode): string[];
  /** Modes the server implements (default: fanout and echo). */
  modes?: Mode[];
  /** Unless named in --servers, run only in these workloads. */
  onlyFor?: string[];
  /**
   * Runs a forced, memory-reducing GC on SIGUSR2 (bench/servers/
   * _idle_gc.ts): the idle rows then also read RSS after one.
   */
  gcOnSignal?: boolean;
}

export const deno = Deno.execPath();
const denoServer =
  (file: string, ...extra: string[]) => (mode: string): string[] => [
    deno,
    "run",
    "--quiet",
    "--allow-net=127.0.0.1",
    // Only exposes gc() (issue 19 §4's idle rows call it on SIGUSR2).
    "--v8-flags=--expose-gc",
    ...harness.serverFlags,
    `${here}servers/${file}`,
    mode,
    ...extra,
  ];

export const SERVERS: Record<string, ServerSpec> = {
  microsocket: {
    name: "microsocket",
    label: "microsocket",
    argv: denoServer("microsocket.ts"),
    gcOnSignal: true,
    modes: ["fanout", "chat", "echo"],
  },
  // Issue 18: the same server with its metrics scraped every 250 ms. By
  // default it runs only in the fan-outs the cost target names.
  microsocket_metrics: {
    name: "microsocket_metrics",
    label: "microsocket + metrics",
    argv: denoServer("microsocket.ts", "metrics"),
    gcOnSignal: true,
    onlyFor: ["fanout100", "fanout1000"],
  },
  floor: {
    name: "floor",
    label: "raw Deno floor",
    argv: denoServer("floor.ts"),
    gcOnSignal: true,
    modes: ["fanout", "chat", "echo"],
  },
  // A diagnostic, not run by default: the floor writing through a
  // WritableStream writer, to price that path on its own.
  floor_stream: {
    name: "floor_stream",
    label: "floor via stream writer",
    argv: denoServer("floor.ts", "stream"),
    gcOnSignal: true,
  },
  // The floor flushing from one pass per event-loop turn: the design the
  // waves call for (issue 9 §2). By default it runs only in the waves.
  floor_turn: {
    name: "floor_turn",
    label: "floor, flush per turn",
    argv: denoServer("floor.ts", "turn"),
    gcOnSignal: true,
    modes: ["fanout", "chat", "echo"],
    onlyFor: ["waves"],
  },
  // Issue 19 §4: the idle rows' yardsticks. The floor reading into a 16-byte
  // buffer (the cheapest idle connection on Deno), and microsocket with a
  // heartbeat (lengthPrefixed({ heartbeat: true }), a 30 s interval).
  floor_small: {
    name: "floor_small",
    label: "floor, 16 B reads",
    argv: denoServer("floor.ts", "small"),
    gcOnSignal: true,
    onlyFor: ["idle", "idle10000"],
  },
  microsocket_hb: {
    name: "microsocket_hb",
    label: "microsocket, heartbeat",
    argv: denoServer("microsocket.ts", "heartbeat"),
    gcOnSignal: true,
    onlyFor: ["idle", "idle10000"],
  },
  naive: {
    name: "naive",
    label: "raw Deno naive",
    argv: denoServer("naive.ts"),
  },
  node: {
    name: "node",
    label: "Node net",
    argv: (mode) => [
      "node",
      "--expose-gc",
      `${here}servers/node_net.mjs`,
      mode,
    ],
    gcOnSignal: true,
  },
  // Issue 19 §1: Bun.listen (uSockets), what a user would pick instead of
  // us; `bun` from the npm package (npm install -g bun), skipped without it.
  bun: {
    name: "bun",
    label: "Bun",
    argv: (mode) => [harness.bunBinary, `${here}servers/bun_net.mjs`, mode],
    modes: ["fanout", "chat", "echo"],
  },
  // Built by main() (bench/go_hub_build.ts); the path is filled in then.
  go: {
    name: "go",
    label: "Go hub",
    argv: (mode) => [harness.goHubBinary, mode],
    modes: ["fanout", "chat", "echo"],
  },
};

export interface RunningServer {
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  stderr: { text: () => string; done: Promise<void> };
  /** Counters the server printed on SIGTERM. */
  stats: Json | undefined;
  drained?: Promise<void>;
}

export async function startServer(
  spec: ServerSpec,
  mode: Mode,
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
  // Keep draining stdout so the server never blocks on it, and catch the
  // "stats {...}" line a server prints when it is stopped.
  const server: RunningServer = {
    child,
    pid: child.pid,
    port,
    stderr,
    stats: undefined,
  };
  server.drained = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const match = text.match(/^stats (\{.*\})$/m);
      if (match) {
        try {
          server.stats = JSON.parse(match[1]!);
        } catch {
          // partial line: wait for more
        }
      }
      text = text.slice(-2000);
    }
  })().catch(() => {});
  return server;
}

// ---------------------------------------------------------------- runs

export type Json = Record<string, unknown>;

export interface RunResult extends Json {
  error?: string;
  rate?: number;
  serverCpu?: number;
  rssBaseline?: number;
  rssCheckpoint?: number;
  /** Idle rows: RSS after a forced, memory-reducing GC (issue 19 §4). */
  rssBaselineGc?: number;
  rssCheckpointGc?: number;
  rssPeak?: number;
  rssEnd?: number;
  /** Waves: server RSS at the end of each wave. */
  waveRss?: number[];
}

const isTty = Deno.stdout.isTerminal();
const encoder = new TextEncoder();

export function status(text: string, final: boolean): void {
  if (isTty) {
    Deno.stdout.writeSync(
      encoder.encode(`\r\x1b[2K${text}${final ? "\n" : ""}`),
    );
  } else if (final) console.log(text);
}

// Asks the server for a forced, memory-reducing GC (SIGUSR2, see
// bench/servers/_idle_gc.ts) and reads its RSS once it has settled.
async function rssAfterGc(server: RunningServer): Promise<number> {
  try {
    Deno.kill(server.pid, "SIGUSR2");
  } catch {
    return NaN;
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  return rssBytes(server.pid);
}

/** Starts a server, runs the load generator against it once, stops both. */
export async function runOnce(
  spec: ServerSpec,
  mode: Mode,
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
  // Issue 19 §4: the idle rows also read RSS after a forced GC, from a
  // baseline taken the same way.
  const gcReadings = config.workload === "idle" && spec.gcOnSignal === true;
  if (gcReadings) result.rssBaselineGc = await rssAfterGc(server);
  let rssPeak = result.rssBaseline;
  let cpuStart = NaN;
  let wallStart = NaN;
  let machineStart = machineJiffies();

  const loadgen = spawnRaised(
    harness.loadgenArgv(
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
        if (event.name === "ready" && gcReadings) {
          result.rssCheckpointGc = await rssAfterGc(server);
        }
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
      } else if (event.type === "wave") {
        // What each wave leaves behind in the server.
        (result.waveRss ??= []).push(rssBytes(server.pid));
        status(
          `  ${title} · ${spec.name} · wave ${event.wave}: ${
            formatRate(Number(event.rate))
          }`,
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
    await server.drained;
    if (server.stats) result.serverStats = server.stats;
  }
  if (result.type !== "result" && !result.error) {
    result.error = `load generator gave no result: ${
      loadgenErr.text().trim().slice(-300)
    }`;
  }
  result.wallMs = performance.now() - started;
  return result;
}

// ---------------------------------------------------------------- environment

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The open-file limit a spawnRaised child gets. */
export async function raisedFileLimit(): Promise<number> {
  try {
    const out = await new Deno.Command("sh", {
      args: [
        "-c",
        'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; ulimit -n',
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    return text === "unlimited" ? Infinity : Number(text) || 0;
  } catch {
    return 0;
  }
}

export async function hasCommand(name: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(name, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** The commit measured, and whether src/ or mod.ts had uncommitted changes. */
export async function describeCommit(): Promise<string> {
  const run = async (args: string[]): Promise<string> => {
    const out = await new Deno.Command("git", {
      args,
      cwd: root,
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  };
  try {
    const head = await run(["rev-parse", "--short", "HEAD"]);
    const dirty = await run(["status", "--porcelain", "--", "src", "mod.ts"]);
    if (!head) return "not a git checkout";
    return `commit ${head}${dirty ? " + uncommitted src/ changes" : ""}`;
  } catch {
    return "not a git checkout";
  }
}

export async function describeMachine(): Promise<string> {
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
