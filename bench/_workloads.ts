// Benchmark workloads: what run.ts measures, for each workload the load
// generator's config, the servers it runs on, its repeats and its headline
// figure, plus the figures derived from a run's result (per-session memory,
// wave ratios, messages per write) that the checks and the report share.
// The benchmarks with harnesses of their own (EXTRA_BENCHES) are listed
// here too.

import { type Json, type Mode, type RunResult, SERVERS } from "./_measure.ts";

// ---------------------------------------------------------------- options

export interface Options {
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

// ---------------------------------------------------------------- workloads

export interface Workload {
  id: string;
  title: string;
  mode: Mode;
  /** Higher is better for the headline metric (false: lower is better). */
  higherIsBetter: boolean;
  repeatable: boolean;
  /** At most this many repeats, whatever --repeat says. */
  maxRepeat?: number;
  /** Servers run once whatever the repeats (slow ones, to bound the run). */
  once?: string[];
  /** After a run that satisfies this, the remaining repeats are skipped. */
  enough?: (result: RunResult) => boolean;
  /** Only these servers (default: all). */
  servers?: string[];
  config: Json;
  timeoutMs: number;
  headline(result: RunResult): number;
}

export const SWEEP_WINDOWS = [4, 256];
/**
 * Servers for the big fan-out and the 64 B flood. naive and node write once
 * per message per receiver: at N=10,000 node could not even deliver the sync
 * records (one every 50 ms) in time, and the 4M deliveries of the 64 B flood
 * took them 40–60 s (naive's RSS grew by 2.2 GB).
 */
export const BIG_SERVERS = [
  "microsocket",
  "floor",
  "go",
  "bun",
  "floor_stream",
];
/**
 * Servers with a chat mode for the waves. The Go hub has one, but its
 * gorilla-style policy drops a client whose 256-slot channel is full, and
 * the burst of 1,000 leave notices drops the waves' sender.
 */
export const WAVE_SERVERS = [
  "microsocket",
  "bun",
  "floor",
  "floor_stream",
  "floor_turn",
];
/** Issue 9 §1: lines of 1 KB, with and without stuck receivers, and 64 B. */
export const FLOOD_VARIANTS = [
  { id: "flood", lineBytes: 1024, stuck: 0, lines: 20_000 },
  { id: "floodstuck", lineBytes: 1024, stuck: 4, lines: 20_000 },
  // 20,000 lines of 64 B are 1.25 MiB per receiver, hardly more than the
  // 1 MiB budget: receivers as quick as the C load generator's always kept
  // up with that, so the 64 B flood sends 10× more lines.
  { id: "flood64", lineBytes: 64, stuck: 0, lines: 200_000 },
];
/** The default outbound budget, which the flood's memory target is made of. */
export const BUDGET = 1024 * 1024;
export const SWEEP_SERVERS = ["microsocket", "floor", "node"];

export function fanout(
  options: Options,
  receivers: number,
  stuck: number,
  durationMs: number,
  maxMessages: number,
  window = options.window ?? 32,
): Json {
  return {
    workload: "fanout",
    receivers,
    stuck,
    durationMs,
    maxMessages,
    window,
    batch: options.batch ?? 1,
    accumulateUs: options.accumulate ?? 0,
  };
}

export function workloads(options: Options): Workload[] {
  const smoke = options.smoke;
  const fanMs = smoke ? 200 : 2_000;
  const rate = (r: RunResult): number => r.rate ?? NaN;
  const selected = (id: string): boolean => options.workloads.includes(id);
  const list: Workload[] = [];
  const n100 = smoke ? 10 : 100;
  const n1000 = smoke ? 20 : 1000;
  if (selected("fanout100")) {
    list.push({
      id: "fanout100",
      title: `fan-out N=${n100}`,
      mode: "fanout",
      higherIsBetter: true,
      repeatable: true,
      config: fanout(options, n100, 0, fanMs, 50_000_000),
      timeoutMs: fanMs + 30_000,
      headline: rate,
    });
  }
  if (selected("fanout1000")) {
    list.push({
      id: "fanout1000",
      title: `fan-out N=${n1000}`,
      mode: "fanout",
      higherIsBetter: true,
      repeatable: true,
      config: fanout(options, n1000, 0, fanMs, 50_000_000),
      timeoutMs: fanMs + 40_000,
      headline: rate,
    });
  }
  if (selected("echo")) {
    list.push({
      id: "echo",
      title: "echo 50×16",
      mode: "echo",
      higherIsBetter: true,
      repeatable: true,
      config: {
        workload: "echo",
        connections: 50,
        inflight: 16,
        durationMs: smoke ? 200 : 2_000,
      },
      timeoutMs: 30_000,
      headline: rate,
    });
  }
  if (selected("idle")) {
    list.push({
      id: "idle",
      title: `idle ${smoke ? 200 : 5000}`,
      mode: "echo",
      higherIsBetter: false,
      repeatable: false,
      config: {
        workload: "idle",
        connections: smoke ? 200 : 5_000,
        concurrency: 128,
      },
      timeoutMs: 60_000,
      headline: perSession,
    });
  }
  if (selected("slow")) {
    // Long enough that each stuck receiver is owed far more than the
    // kernel's socket buffers (~4 MB) plus a 1 MiB outbound budget; the
    // reference run is the same run without the stuck receivers.
    const slowMs = smoke ? 200 : 8_000;
    const slowMax = smoke ? 1e9 : 160_000;
    // naive is left out to keep the full run within ~6 minutes: like node it
    // sends too little in 8 s for the budget to matter (see results.md at
    // 804646c: "kept; all of 896 KB delivered late").
    const slowServers = Object.keys(SERVERS).filter((s) => s !== "naive");
    list.push({
      id: "slowref",
      title: `fan-out N=${n100}, long (reference)`,
      mode: "fanout",
      higherIsBetter: true,
      repeatable: false,
      servers: slowServers,
      config: fanout(options, n100, 0, slowMs, slowMax),
      timeoutMs: slowMs + 40_000,
      headline: rate,
    }, {
      id: "slow",
      title: `slow consumers N=${n100}+2`,
      mode: "fanout",
      higherIsBetter: true,
      repeatable: false,
      servers: slowServers,
      // Twice as long: a server with flow control (microsocket) holds the
      // sender back while the stuck receivers are over their high-water
      // mark, up to its 5 s drainTimeout, before it cuts them; the run must
      // outlast that pause, or what is in flight when it ends counts as lost.
      // The load generator's stall limit (5 s by default) must outlast it
      // too.
      config: {
        ...fanout(options, n100, 2, slowMs * 2, slowMax),
        stallMs: 15_000,
      },
      timeoutMs: slowMs * 2 + 40_000,
      headline: rate,
    });
  }
  if (selected("flood")) {
    // Issue 9 §1: the unpaced flood. No window: the sender writes as fast as
    // TCP lets it, so only the server's flow control keeps readers whole.
    const receivers = smoke ? 5 : 20;
    for (const variant of FLOOD_VARIANTS) {
      const lines = smoke ? variant.lines / 10 : variant.lines;
      const stuck = smoke ? Math.min(variant.stuck, 2) : variant.stuck;
      const size = variant.lineBytes >= 1024
        ? `${variant.lineBytes / 1024} KB`
        : `${variant.lineBytes} B`;
      list.push({
        id: variant.id,
        title: `flood ${receivers}${
          stuck ? `+${stuck} stuck` : ""
        } × ${lines} lines of ${size}`,
        mode: "fanout",
        // Whether today's microsocket loses lines varies from run to run
        // with the machine's load, and the requirement holds for every run:
        // up to --repeat runs, the WORST kept (most lost; "higher is
        // better" picks it), stopping at the first run that loses lines.
        headline: (r) => Number(r.lost),
        higherIsBetter: true,
        repeatable: true,
        enough: (r) => Number(r.lost) > 0,
        once: ["naive", "node"],
        // naive and node write once per line per receiver: minutes for the
        // 64 B flood, and naive's RSS grew by 2.2 GB.
        servers: variant.lineBytes < 1024
          ? BIG_SERVERS
          : Object.keys(SERVERS).filter((s) => s !== "naive"),
        config: {
          workload: "flood",
          receivers,
          stuck,
          lines,
          lineBytes: variant.lineBytes,
          // An application's read buffer; the C load generator's own 256 KB
          // reads drain the kernel so fast that the flood rarely bites.
          readBytes: 16 * 1024,
          stallMs: smoke ? 5_000 : 20_000,
        },
        timeoutMs: smoke ? 30_000 : 60_000,
      });
    }
  }
  if (selected("waves")) {
    // Issue 9 §2: waves of clients in one server process. Clients connect
    // 8 at a time with a 0.1 ms pause, as a population arriving over a few
    // ms would; a burst of 1,000 at once lets the server's accept loop
    // batch the announcements and hides the problem.
    const clients = smoke ? 50 : 1_000;
    list.push({
      id: "waves",
      title: `waves 3 × ${clients} clients`,
      mode: "chat",
      higherIsBetter: true,
      repeatable: false,
      servers: WAVE_SERVERS,
      config: {
        workload: "waves",
        waves: 3,
        clients,
        lines: smoke ? 100 : 1_000,
        window: 32,
        connectBatch: 8,
        connectPauseUs: 100,
        stallMs: smoke ? 5_000 : 10_000,
      },
      timeoutMs: smoke ? 30_000 : 120_000,
      headline: laterOverFirst,
    });
  }
  if (selected("fanout10000")) {
    const n = smoke ? 200 : 10_000;
    list.push({
      id: "fanout10000",
      title: `fan-out N=${n}`,
      mode: "fanout",
      higherIsBetter: true,
      repeatable: false,
      servers: BIG_SERVERS,
      config: fanout(options, n, 0, fanMs, 50_000_000),
      timeoutMs: fanMs + 90_000,
      headline: rate,
    });
  }
  if (selected("idle10000")) {
    const n = smoke ? 500 : 10_000;
    list.push({
      id: "idle10000",
      title: `idle ${n}`,
      mode: "echo",
      higherIsBetter: false,
      repeatable: false,
      config: { workload: "idle", connections: n, concurrency: 128 },
      timeoutMs: 90_000,
      headline: perSession,
    });
  }
  if (selected("sweep")) {
    for (const window of SWEEP_WINDOWS) {
      list.push({
        id: `window${window}`,
        title: `fan-out N=${n100}, window ${window}`,
        mode: "fanout",
        higherIsBetter: true,
        repeatable: true,
        maxRepeat: 2,
        servers: SWEEP_SERVERS,
        config: fanout(
          options,
          n100,
          0,
          smoke ? 200 : 1_500,
          50_000_000,
          window,
        ),
        timeoutMs: 40_000,
        headline: rate,
      });
    }
  }
  return list;
}

/** Waves: per-wave deliveries/s. */
export function waveRates(r: RunResult): number[] {
  const report = (r.waveReport as Json[] | undefined) ?? [];
  return report.map((w) => Number(w.rate));
}

/** Waves: the slowest later wave ÷ the first (the issue's target: ≥ 0.8). */
export function laterOverFirst(r: RunResult): number {
  const rates = waveRates(r);
  if (rates.length < 2) return NaN;
  return Math.min(...rates.slice(1)) / rates[0]!;
}

/** Waves: the slowest wave ÷ the fastest (catches a slow first wave too). */
export function slowestOverFastest(r: RunResult): number {
  const rates = waveRates(r);
  if (rates.length < 2) return NaN;
  return Math.min(...rates) / Math.max(...rates);
}

export function perSession(r: RunResult): number {
  const connections = Number(r.connections ?? 0);
  if (
    !connections || r.rssCheckpoint === undefined || r.rssBaseline === undefined
  ) return NaN;
  return (r.rssCheckpoint - r.rssBaseline) / connections;
}

/**
 * Idle rows (issue 19 §4): RSS growth per session between two readings
 * each taken right after a forced, memory-reducing GC, which gives back
 * what V8's young generation grew to during the accept burst.
 */
export function perSessionAfterGc(r: RunResult): number {
  const connections = Number(r.connections ?? 0);
  if (
    !connections || r.rssCheckpointGc === undefined ||
    r.rssBaselineGc === undefined
  ) return NaN;
  return (r.rssCheckpointGc - r.rssBaselineGc) / connections;
}

/** Server RSS growth over the measured run (peak minus the checkpoint). */
export function rssGrowth(r: RunResult): number {
  return Number(r.rssPeak) - Number(r.rssCheckpoint);
}

/** Messages delivered per server write call (whole server life; the measured phase dominates). */
export function perWrite(r: RunResult): number {
  const stats = r.serverStats as Json | undefined;
  const writes = Number(stats?.writes);
  const messages = Number(r.delivered ?? r.frames);
  return writes > 0 ? messages / writes : NaN;
}

/** Benchmarks run as their own scripts; see main(). */
export const EXTRA_BENCHES: {
  id: string;
  script: string;
  title: string;
  about: string;
}[] = [
  {
    id: "websocket",
    script: "ws_fanout.ts",
    title: "WebSocket fan-out",
    about: "From `bench/ws_fanout.ts` (method at the top of that file): 1 " +
      "sender, N receivers, 64-byte text messages relayed to everyone else, " +
      "by microsocket's WebSocket transport, a Deno.serve + " +
      "upgradeWebSocket relay, a Node + npm ws relay, microsocket's own " +
      "TCP fan-out and, when Bun is installed (npm install -g bun), a " +
      "Bun.serve pub/sub relay (uWebSockets), each in its own process. " +
      "Targets: ≥ 5× native, ≥ 3× Node ws, ≥ 0.8× our TCP, ≥ 1× Bun.",
  },
  {
    id: "deflate",
    script: "ws_deflate.ts",
    title: "WebSocket compression (permessage-deflate)",
    about: "From `bench/ws_deflate.ts` (method at the top of that file): a " +
      "chat broadcast from 1 sender to N WebSocket clients, compression off " +
      "and on, alternating runs against the same server in its own process; " +
      "bytes on the wire per delivery and the server's CPU (utime + stime) " +
      "per delivery. Each message is compressed on its own " +
      "(server_no_context_takeover) and once per broadcast. Targets: bytes " +
      "≤ 1/3, CPU ≤ 1.3×.",
  },
  {
    id: "wsidle",
    script: "ws_idle.ts",
    title: "WebSocket idle memory",
    about: "From `bench/ws_idle.ts` (method at the top of that file): " +
      "10,000 WebSocket connections that complete their handshake and stay " +
      "silent, against microsocket's WebSocket transport with a 30 s " +
      "heartbeat, a Deno.serve + upgradeWebSocket server and a Node + npm ws " +
      "server; server RSS growth ÷ connections, like the idle rows. Target " +
      "(issue 19): ≤ 6 KB.",
  },
  {
    id: "cluster",
    script: "cluster.ts",
    title: "Cluster: one process vs 2 nodes over NATS and Redis",
    about:
      "From `bench/cluster.ts` (details and method at the top of that file; " +
      "`bench/cluster_results.md` has a longer run with notes): room " +
      "fan-out to N=1,000 receivers split over 2 nodes, against one process, " +
      "on the same 2 cores as the broker and the load generator; what one " +
      "broadcast costs in broker messages.",
  },
  {
    id: "recovery",
    script: "recovery.ts",
    title: "Recovery on vs off (one process)",
    about: "From `bench/recovery.ts` (method at the top of that file): " +
      "fan-out to N=1,000 members of one room with recovery on and off, " +
      "each side in a fresh process, pairs alternating; CPU for the same " +
      "work (steadier than throughput on a shared machine). Target (issue " +
      "17): on ≤ 10% slower.",
  },
  {
    id: "clusterrecovery",
    script: "cluster_recovery.ts",
    title: "Recovery across a cluster (JetStream, Redis Streams)",
    about: "From `bench/cluster_recovery.ts` (method at the top of that " +
      "file; `bench/cluster_results.md` has the discussion): 2 nodes, 200 " +
      "receivers in one room, history off vs on: broker messages and CPU " +
      "per room message, nodes' CPU, history bytes per message, and the " +
      "time for 1,000 clients of a killed node to resume on the other.",
  },
];
