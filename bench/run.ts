// Benchmark orchestrator (issues 6 and 9): runs every workload against every
// server, each server in its own process and the load generator in another,
// then prints a Markdown table and (full runs only) writes bench/results.md.
//
//   deno task bench              full run (a few minutes)
//   deno task bench --smoke      tiny run for CI (seconds); exit 1 if broken
//
// Options:
//   --servers=microsocket,microsocket_metrics,floor,naive,node,go,bun   (microsocket_metrics:
//       scraped every 250 ms, fan-outs only; also floor_stream: the floor
//       writing through conn.writable.getWriter(), a diagnostic; go: the Go
//       standard-library hub, built with `go build`, skipped without `go`;
//       bun: Bun.listen, from the npm `bun` package, skipped without it)
//       (floor_small and microsocket_hb, issue 19's idle yardsticks, run only
//       in the idle workloads unless named)
//   --workloads=fanout100,fanout1000,echo,idle,slow,flood,waves,fanout10000,
//       idle10000,sweep,capacity,websocket,deflate,wsidle,cluster,recovery,
//       clusterrecovery
//   --repeat=N        runs per throughput cell, best kept (default 3; smoke 1)
//   --window=N        fan-out messages in flight per receiver (default 32)
//   --batch=N         fan-out messages per sender write (default 1)
//   --accumulate=US   C load generator: pause after thin reads (default 0)
//   --loadgen=c|deno  load generator (default: C if a compiler exists)
//   --server-flags="--cpu-prof --cpu-prof-dir=DIR"   extra flags for Deno servers
//   --out=PATH  --no-write
//
// Server RSS and CPU are read from /proc/<pid>/{status,stat} (Linux). Deno
// servers print their write counters on SIGTERM ("stats {...}").
//
// This file is the entry: options, then the order of runs, the checks that
// fail a smoke run, and writing the results. The parts:
// - bench/_workloads.ts: what is measured (each workload's config, servers,
//   repeats, headline) and the figures derived from a result;
// - bench/_measure.ts: child processes, servers, one load-generator run and
//   its figures, probes of the machine;
// - bench/_report.ts: results.md, results.svg and the progress summaries
//   (bench/_format.ts: their number formatting).

import { findBun } from "./_bun.ts";
import { buildGoHub } from "./go_hub_build.ts";
import { compileLoadgen } from "./loadgen_c.ts";
import {
  cleanupAndExit,
  deno,
  describeCommit,
  describeMachine,
  exists,
  harness,
  hasCommand,
  raisedFileLimit,
  runOnce,
  type RunResult,
  SERVERS,
  type ServerSpec,
  status,
} from "./_measure.ts";
import {
  EXTRA_BENCHES,
  type Options,
  perSession,
  type Workload,
  workloads,
} from "./_workloads.ts";
import { renderChart, renderReport, summarize } from "./_report.ts";

const here = new URL(".", import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;

// ---------------------------------------------------------------- options

function parseOptions(args: string[]): Options {
  const options: Options = {
    smoke: false,
    servers: [
      "microsocket",
      "microsocket_metrics",
      "floor",
      "naive",
      "node",
      "go",
      "bun",
      "floor_turn",
      "floor_small",
      "microsocket_hb",
    ],
    workloads: [
      "fanout100",
      "fanout1000",
      "echo",
      "idle",
      "slow",
      "flood",
      "waves",
      "fanout10000",
      "idle10000",
      "sweep",
      "capacity",
      "websocket",
      "deflate",
      "wsidle",
      "cluster",
      "recovery",
      "clusterrecovery",
    ],
    repeat: 0,
    window: undefined,
    batch: undefined,
    accumulate: undefined,
    loadgen: "auto",
    out: `${here}results.md`,
    write: true,
  };
  for (const arg of args) {
    const equals = arg.indexOf("=");
    const key = equals < 0 ? arg : arg.slice(0, equals);
    const value = equals < 0 ? "" : arg.slice(equals + 1);
    if (key === "--smoke") options.smoke = true;
    else if (key === "--servers") {
      options.servers = value.split(",");
      serversNamed = true;
    } else if (key === "--workloads") options.workloads = value.split(",");
    else if (key === "--repeat") options.repeat = Number(value);
    else if (key === "--window") options.window = Number(value);
    else if (key === "--batch") options.batch = Number(value);
    else if (key === "--accumulate") options.accumulate = Number(value);
    else if (key === "--loadgen") options.loadgen = value as Options["loadgen"];
    else if (key === "--out") options.out = value;
    else if (key === "--server-flags") {
      harness.serverFlags = value.split(" ").filter(Boolean);
    } else if (key === "--no-write") options.write = false;
    else {
      console.error(`unknown option ${arg}`);
      Deno.exit(2);
    }
  }
  if (options.repeat === 0) options.repeat = options.smoke ? 1 : 3;
  for (
    const [name, value] of [["window", options.window], [
      "batch",
      options.batch,
    ]] as const
  ) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
      console.error(`--${name} must be a positive integer`);
      Deno.exit(2);
    }
  }
  // The window sweep is for the report, not for keeping the harness working.
  if (options.smoke && !args.some((a) => a.startsWith("--workloads"))) {
    options.workloads = options.workloads.filter((w) => w !== "sweep");
  }
  return options;
}

/** Whether --servers named the servers (see ServerSpec.onlyFor). */
let serversNamed = false;

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  const notes: string[] = [];
  const failures: string[] = [];

  if (options.loadgen !== "deno") {
    const binary = await compileLoadgen(here);
    if (binary) {
      harness.loadgenArgv = (config) => [binary, config];
    } else if (options.loadgen === "c") {
      console.error("no C compiler (cc) found for --loadgen=c");
      return 2;
    } else {
      notes.push(
        "No C compiler found: the Deno load generator was used; it is much " +
          "weaker (see bench/results.md of a full run for the C one).",
      );
    }
  }
  const loadgenName = harness.loadgenArgv("")[0] === deno
    ? "Deno (bench/loadgen.ts)"
    : "C (bench/loadgen.c)";
  if (harness.loadgenArgv("")[0] === deno) {
    // The flood and the waves exist only in the C load generator.
    const cOnly = ["flood", "waves"].filter((w) =>
      options.workloads.includes(w)
    );
    if (cOnly.length > 0) {
      options.workloads = options.workloads.filter((w) => !cOnly.includes(w));
      notes.push(
        `${cOnly.join(", ")}: skipped, the Deno load generator lacks them.`,
      );
    }
  }

  const servers: ServerSpec[] = [];
  for (const name of options.servers) {
    const spec = SERVERS[name];
    if (!spec) {
      console.error(`unknown server ${name}`);
      return 2;
    }
    if (name.startsWith("microsocket")) {
      const ready = await exists(`${root}mod.ts`) &&
        await exists(`${here}servers/microsocket.ts`);
      if (!ready) {
        notes.push(`${name}: mod.ts missing; skipped.`);
        continue;
      }
    }
    if (name === "node" && !(await hasCommand("node"))) {
      notes.push("node: not installed; skipped.");
      continue;
    }
    if (name === "bun") {
      const bun = await findBun();
      if (!bun) {
        notes.push(
          "bun: not installed (`npm install -g bun`, or set $BUN); skipped.",
        );
        continue;
      }
      harness.bunBinary = bun;
    }
    if (name === "go") {
      const built = await buildGoHub(here);
      if ("error" in built) {
        notes.push(`Go hub: ${built.error}; skipped.`);
        continue;
      }
      harness.goHubBinary = built.binary;
    }
    servers.push(spec);
  }

  // The big workloads need ~10,000 descriptors in the server and in the
  // load generator; spawnRaised lifts the soft limit as far as it may.
  const fileLimit = await raisedFileLimit();
  for (const id of ["fanout10000", "idle10000"]) {
    const w = workloads(options).find((w) => w.id === id);
    const needed = Number(w?.config.receivers ?? w?.config.connections) + 64;
    if (w && fileLimit < needed) {
      options.workloads = options.workloads.filter((x) => x !== id);
      notes.push(
        `${w.title}: skipped, the open-file limit is ${fileLimit} ` +
          `(needs ${needed}; raise \`ulimit -Hn\`).`,
      );
    }
  }

  const machine = `${await describeMachine()}, ${await describeCommit()}`;
  console.log(
    `microsocket bench${
      options.smoke ? " (smoke)" : ""
    } · ${machine} · load generator: ${loadgenName}`,
  );

  const started = performance.now();
  const results = new Map<string, Map<string, RunResult>>();
  const list = workloads(options);
  for (const workload of list) {
    const row = new Map<string, RunResult>();
    results.set(workload.id, row);
    for (const spec of servers) {
      if (workload.servers && !workload.servers.includes(spec.name)) continue;
      if (!(spec.modes ?? ["fanout", "echo"]).includes(workload.mode)) continue;
      if (
        spec.onlyFor && !serversNamed && !spec.onlyFor.includes(workload.id)
      ) continue;
      let best: RunResult | undefined;
      const repeats = workload.repeatable && !workload.once?.includes(spec.name)
        ? Math.min(options.repeat, workload.maxRepeat ?? Infinity)
        : 1;
      for (let i = 0; i < repeats; i++) {
        const label = repeats > 1
          ? `${workload.title} (${i + 1}/${repeats})`
          : workload.title;
        const result = await runOnce(
          spec,
          workload.mode,
          workload.config,
          label,
          workload.timeoutMs,
        );
        if (!best || better(workload, result, best)) best = result;
        status(
          `  ${label} · ${spec.name} · ${summarize(workload, result)}`,
          true,
        );
        if (!result.error && workload.enough?.(result)) break;
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
    // does one write per receiver per 256 messages, so the run is bounded by
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
      `load generator capacity N=${receivers}`,
      60_000,
    );
    status(
      `  load generator capacity (floor, 256-message batches) · ${
        summarize({ id: "capacity", mode: "fanout" } as Workload, capacity)
      }`,
      true,
    );
    if (capacity.error) failures.push(`capacity: ${capacity.error}`);
  }

  // Benchmarks with harnesses of their own (brokers, other protocols): run
  // as scripts, their Markdown appended to the report.
  const sections: string[] = [];
  for (const extra of EXTRA_BENCHES) {
    if (!options.workloads.includes(extra.id)) continue;
    status(`  ${extra.title} (bench/${extra.script})`, true);
    const { code, stdout, stderr } = await new Deno.Command(deno, {
      args: [
        "run",
        "-A",
        `${here}${extra.script}`,
        ...(options.smoke ? ["--smoke"] : []),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(stdout).trim();
    if (code !== 0) {
      failures.push(
        `${extra.id}: exit ${code}: ${
          new TextDecoder().decode(stderr).trim().split("\n").slice(-3).join(
            " / ",
          )
        }`,
      );
    }
    sections.push(`## ${extra.title}\n\n${extra.about}\n\n${text}\n`);
  }

  const report = renderReport(
    options,
    servers,
    list,
    results,
    capacity,
    machine,
    loadgenName,
    notes,
    (performance.now() - started) / 1000,
  ) + sections.map((section) => `\n${section}`).join("");
  console.log("");
  console.log(report);
  if (!options.smoke && options.write) {
    await Deno.writeTextFile(options.out, report);
    console.log(`written to ${options.out}`);
    const svg = renderChart(servers, list, results);
    if (svg) {
      const path = options.out.replace(/\.md$/, "") + ".svg";
      await Deno.writeTextFile(path, svg);
      // `deno fmt --check` covers .svg files: keep the committed one clean.
      await new Deno.Command(deno, {
        args: ["fmt", "--quiet", path],
        stdout: "null",
        stderr: "null",
      }).output().catch(() => {});
      console.log(`written to ${path}`);
    }
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
  if (workload.config.workload === "flood") {
    // Loss and cut receivers are what the flood measures, not breakage;
    // reordering, corruption or a room that never drains are.
    if (!(Number(r.delivered) > 0)) {
      problems.push(`${where}: nothing delivered`);
    }
    if (Number(r.corrupt) > 0) {
      problems.push(`${where}: ${r.corrupt} corrupt lines`);
    }
    if (Number(r.gaps) > 0) problems.push(`${where}: ${r.gaps} sequence gaps`);
    if (r.stalled) {
      problems.push(
        `${where}: stalled (no delivery for ${
          Number(workload.config.stallMs) / 1000
        } s)`,
      );
    }
    return problems;
  }
  if (workload.id === "waves") {
    if (r.waveError) problems.push(`${where}: ${r.waveError}`);
    if (Number(r.lost) > 0) problems.push(`${where}: ${r.lost} lines lost`);
    if (Number(r.gaps) > 0) problems.push(`${where}: ${r.gaps} sequence gaps`);
    if (Number(r.corrupt) > 0) {
      problems.push(`${where}: ${r.corrupt} corrupt lines`);
    }
    return problems;
  }
  if (workload.id.startsWith("idle")) {
    if (Number(r.opened) !== Number(r.connections)) {
      problems.push(`${where}: only ${r.opened} connections`);
    }
    if (!(perSession(r) > 0)) problems.push(`${where}: no RSS reading`);
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
  if (!options.smoke && Number(r.loadgenCpu) > 0.95) {
    problems.push(
      `${where}: load generator near 100% CPU; the figure may be loadgen-bound`,
    );
  }
  return problems;
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
