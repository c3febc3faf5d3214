// Recovery on vs off (issue 17): fan-out to N receivers in one room, 64-byte
// lines, in one process. The server broadcasts as fast as its slowest
// receiver drains (drained({ room }) between bursts of 32); the receivers
// are raw sockets (speaking the recovery preamble when it is on) that count
// bytes. With recovery on, every member's message log holds a reference to
// each broadcast's shared bytes (no copy).
//
// The figure that counts is CPU time (user + system, server and receivers:
// one process) per million deliveries for a fixed amount of work: on a
// machine shared with other work throughput swings by ±30% from run to run,
// CPU for the same work by a few percent. Each side runs in a fresh process
// (a server has recovery on or off for its whole life; alternating both in
// one process would also make V8 compile the shared code for both shapes),
// the sides alternate, one warm-up run per process is left out, and the
// driver prints the median and spread of the per-pair ratios, and the GC
// time each process spent (V8's --trace-gc, whole process).
//
//   deno run -A bench/recovery.ts [--n=1000] [--messages=10000] [--pairs=7]
//                                 [--repeat=2] [--flags=<v8 flags>] [--smoke]
//   deno run -A bench/recovery.ts --only=on|off ...   one side, this process
//                                                     (e.g. under --cpu-prof)
import process from "node:process";
import { listen } from "../mod.ts";
import { MAGIC } from "../src/recovery/_preamble.ts";

const args = Object.fromEntries(
  Deno.args.map((arg) => {
    const at = arg.indexOf("=");
    return at < 0
      ? [arg.replace(/^--/, ""), "true"]
      : [arg.slice(0, at).replace(/^--/, ""), arg.slice(at + 1)];
  }),
);
// --smoke (deno task bench --smoke): a quick run that shows it works.
const SMOKE = args.smoke === "true";
const N = Number(args.n ?? (SMOKE ? 100 : 1000));
const MESSAGES = Number(args.messages ?? (SMOKE ? 1000 : 10000));
const PAIRS = Number(args.pairs ?? (SMOKE ? 1 : 7));
// Measured runs per process, after one warm-up run.
const REPEAT = Number(args.repeat ?? (SMOKE ? 1 : 2));
const LINE = "x".repeat(63);

interface Run {
  /** Deliveries per second. */
  rate: number;
  /** CPU ms (user + system, whole process) per million deliveries. */
  cpu: number;
  /** Writes per receiver. */
  writes: number;
  /** The main (JavaScript) thread's share of `cpu`. */
  main: number;
  /**
   * Nanoseconds per delivery of the broadcast calls alone (the queueing on
   * every member; no I/O), in the median burst of 32: what a preemption
   * by another process can't skew.
   */
  fanOut: number;
}

// Nanoseconds the main thread (the JavaScript one: server and receivers)
// has run, from the scheduler's own account (Linux).
function mainThreadNs(): number {
  const stat = Deno.readTextFileSync(`/proc/self/task/${Deno.pid}/schedstat`);
  return Number(stat.split(" ")[0]);
}

async function run(recovery: boolean, messages: number): Promise<Run> {
  let joined = 0;
  let closing = false;
  const server = listen({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: N + 10,
    // A loaded machine can stall a receiver for seconds: never a reason
    // to cut one here.
    drainTimeout: 60_000,
    // A loaded machine can hold a receiver's hello back past the default
    // wait (the session would then start plain and fail on it).
    ...(recovery && { recovery: { window: 30_000, helloTimeout: 10_000 } }),
    onOpen: (session) => {
      session.join("room");
      joined++;
    },
    onError: (error) => {
      if (!closing) console.error(`Server error: ${error}`);
    },
    onClose: (_session, reason) => {
      if (!closing) console.error(`A receiver's session closed: ${reason}`);
    },
  });
  const hello = new Uint8Array([
    ...MAGIC,
    ...new TextEncoder().encode("new\n"),
  ]);
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < N; i++) {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.addr.port,
    });
    if (recovery) await conn.write(hello);
    conns.push(conn);
  }
  while (joined < N) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const expected = messages * 64;
  let done = 0;
  const readers = conns.map(async (conn) => {
    const buffer = new Uint8Array(65536);
    let got = 0;
    let skip = recovery ? -1 : 0; // the answer line, when on
    while (got < expected) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("Closed early");
      let start = 0;
      if (skip === -1) {
        const newline = buffer.subarray(0, n).indexOf(0x0a, MAGIC.length);
        start = newline + 1;
        skip = 0;
      }
      got += n - start;
    }
    done++;
  });
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const mainBefore = mainThreadNs();
  const bursts: number[] = [];
  for (let sent = 0; sent < messages;) {
    const burstStart = performance.now();
    let i = 0;
    for (; i < 32 && sent < messages; i++, sent++) {
      server.sessions.broadcast(LINE, { room: "room" });
    }
    if (i === 32) bursts.push(performance.now() - burstStart);
    await server.sessions.drained({ room: "room" });
  }
  await Promise.all(readers);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpuBefore);
  const main = (mainThreadNs() - mainBefore) / 1e6;
  const writes = server.stats().writes / N;
  closing = true;
  for (const conn of conns) conn.close();
  await server.shutdown();
  if (done !== N) throw new Error(`${done} of ${N} receivers done`);
  return {
    rate: (messages * N) / seconds,
    cpu: (used.user + used.system) / 1000 / (messages * N / 1e6),
    writes,
    main: main / (messages * N / 1e6),
    // ns per delivery, median burst (1e6 ns per ms / 32 N deliveries).
    fanOut: median(bursts) * 1e6 / (32 * N),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const spread = (xs: number[]) =>
  `median ${median(xs).toFixed(2)}, min ${Math.min(...xs).toFixed(2)}, max ${
    Math.max(...xs).toFixed(2)
  }`;

if (args.only === "on" || args.only === "off") {
  // One side in this process: a short warm-up run, then the measured ones;
  // the last line is the result for the driver.
  const recovery = args.only === "on";
  await run(recovery, Math.min(MESSAGES, 2000));
  const runs: Run[] = [];
  for (let i = 0; i < REPEAT; i++) runs.push(await run(recovery, MESSAGES));
  console.log(
    `recovery ${args.only}: ${
      runs.map((r) =>
        `${(r.rate / 1e6).toFixed(2)} M/s, ${
          r.cpu.toFixed(0)
        } CPU ms/M (main thread ${r.main.toFixed(0)}, fan-out ${
          r.fanOut.toFixed(1)
        } ns/delivery), ${r.writes.toFixed(0)} writes/receiver`
      ).join("; ")
    }`,
  );
  console.log(
    "RESULT " + JSON.stringify({
      rate: median(runs.map((r) => r.rate)),
      cpu: median(runs.map((r) => r.cpu)),
      main: median(runs.map((r) => r.main)),
      fanOut: median(runs.map((r) => r.fanOut)),
      // The whole process's main-thread ms (GC's share is of this).
      life: mainThreadNs() / 1e6,
    }),
  );
  Deno.exit(0);
}

interface Side {
  rate: number;
  cpu: number;
  main: number;
  fanOut: number;
  /** Main-thread ms of the whole process. */
  life: number;
  /** GC pause ms (whole process), and how many of them were major. */
  gc: number;
  majors: number;
}

// Runs one side in a fresh process with --trace-gc; sums its GC pauses.
// (A process whose receiver was closed early is run again.)
async function side(recovery: boolean): Promise<Side> {
  for (let attempt = 1;; attempt++) {
    try {
      return await sideOnce(recovery);
    } catch (error) {
      if (attempt === 3) throw error;
      console.error(`${error} (retrying)`);
    }
  }
}

async function sideOnce(recovery: boolean): Promise<Side> {
  const flags = ["--trace-gc", ...(args.flags ?? "").split(",")]
    .filter((flag) => flag !== "").join(",");
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--v8-flags=${flags}`,
      new URL(import.meta.url).pathname,
      `--only=${recovery ? "on" : "off"}`,
      `--n=${N}`,
      `--messages=${MESSAGES}`,
      `--repeat=${REPEAT}`,
    ],
    stderr: "inherit",
  }).output();
  if (!success) throw new Error("A bench process failed");
  let result: Omit<Side, "gc" | "majors"> | undefined;
  let gc = 0;
  let majors = 0;
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    if (line.startsWith("RESULT ")) result = JSON.parse(line.slice(7));
    // "... ms: Scavenge 9.1 (10.0) -> 8.2 (11.0) MB, pooled: 0.0 MB,
    // 1.23 / 0.00 ms ..." (the pause, then time spent outside it).
    const pause =
      /: (Scavenge|Minor Mark-Sweep|(?:Incremental )?Mark-(?:Compact|Sweep))\b.*? MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/
        .exec(line);
    if (pause !== null) {
      // A major GC's incremental marking steps ran on the main thread too.
      const steps = /\(\+ ([\d.]+) ms in \d+ steps/.exec(line);
      gc += Number(pause[2]) + Number(steps?.[1] ?? 0);
      if (pause[1]!.includes("Mark-") && pause[1] !== "Minor Mark-Sweep") {
        majors++;
      }
    }
  }
  if (result === undefined) {
    throw new Error("A bench process printed no result");
  }
  return { ...result, gc, majors };
}

console.log(
  `fan-out N=${N}, ${MESSAGES} messages of 64 B; ${PAIRS} pairs of fresh processes, ${REPEAT} measured runs each`,
);
const cpuRatios: number[] = [];
const mainRatios: number[] = [];
const fanOutRatios: number[] = [];
const rateRatios: number[] = [];
const sides = { off: [] as Side[], on: [] as Side[] };
for (let i = 0; i < PAIRS; i++) {
  // Alternate which side goes first, so a drift in the machine's load
  // weighs on both.
  const order = i % 2 === 0 ? [false, true] : [true, false];
  const got: Record<string, Side> = {};
  for (const recovery of order) {
    got[recovery ? "on" : "off"] = await side(recovery);
  }
  sides.off.push(got.off!);
  sides.on.push(got.on!);
  cpuRatios.push(got.on!.cpu / got.off!.cpu);
  mainRatios.push(got.on!.main / got.off!.main);
  fanOutRatios.push(got.on!.fanOut / got.off!.fanOut);
  rateRatios.push(got.on!.rate / got.off!.rate);
  console.log(
    `pair ${i + 1}: off ${got.off!.cpu.toFixed(0)} CPU ms/M (${
      (got.off!.rate / 1e6).toFixed(2)
    } M/s, fan-out ${got.off!.fanOut.toFixed(1)} ns/delivery, GC ${
      got.off!.gc.toFixed(0)
    } ms, ${got.off!.majors} major); on ${got.on!.cpu.toFixed(0)} CPU ms/M (${
      (got.on!.rate / 1e6).toFixed(2)
    } M/s, fan-out ${got.on!.fanOut.toFixed(1)} ns/delivery, GC ${
      got.on!.gc.toFixed(0)
    } ms, ${got.on!.majors} major)`,
  );
}
const list = (xs: Side[], key: keyof Side) => median(xs.map((x) => x[key]));
const share = (xs: Side[]) =>
  `${(median(xs.map((x) => x.gc / x.life)) * 100).toFixed(1)}%`;
console.log(
  `CPU ms per million deliveries: off median ${
    list(sides.off, "cpu").toFixed(0)
  }, on median ${list(sides.on, "cpu").toFixed(0)}`,
);
console.log(
  `main thread CPU ms per million deliveries: off median ${
    list(sides.off, "main").toFixed(0)
  }, on median ${list(sides.on, "main").toFixed(0)}`,
);
console.log(`CPU on/off per pair (lower is better): ${spread(cpuRatios)}`);
console.log(`main thread CPU on/off per pair: ${spread(mainRatios)}`);
console.log(
  `fan-out ns per delivery: off median ${
    list(sides.off, "fanOut").toFixed(1)
  }, on median ${list(sides.on, "fanOut").toFixed(1)}; on/off per pair: ${
    spread(fanOutRatios)
  }`,
);
console.log(`throughput on/off per pair: ${spread(rateRatios)}`);
console.log(
  `GC pause ms per process (whole process): off median ${
    list(sides.off, "gc").toFixed(0)
  } (${share(sides.off)} of its main thread), on median ${
    list(sides.on, "gc").toFixed(0)
  } (${share(sides.on)}); major GCs off ${list(sides.off, "majors")}, on ${
    list(sides.on, "majors")
  }`,
);
