// Recovery on vs off (issue 17): fan-out to N receivers in one room, 64-byte
// lines, in one process. The server broadcasts as fast as its slowest
// receiver drains (drained({ room }) between bursts of 32); the receivers
// are raw sockets (speaking the recovery preamble when it is on) that count
// bytes. With recovery on, every member's message log holds a reference to
// each broadcast's shared bytes (no copy). Runs alternate off/on to share
// the machine's noise; prints deliveries per second, each pair's ratio
// on/off, and their median and spread (target ≥ 0.9).
//
//   deno run -A bench/recovery.ts [--n=1000] [--messages=2000] [--repeat=3]
//                                 [--only=on|off]
import process from "node:process";
import { listen } from "../mod.ts";
import { MAGIC } from "../src/recovery/_preamble.ts";

const args = Object.fromEntries(
  Deno.args.map((arg) => arg.replace(/^--/, "").split("=")),
);
const N = Number(args.n ?? 1000);
const MESSAGES = Number(args.messages ?? 2000);
const REPEAT = Number(args.repeat ?? 3);
const LINE = "x".repeat(63);

// CPU time (user + system, ms) of the timed parts, per side: steadier than
// throughput on a machine shared with other work.
const cpu = { on: [] as number[], off: [] as number[] };
// Writes per receiver per run (fewer: more messages coalesced per write).
const writes = { on: [] as number[], off: [] as number[] };

async function run(recovery: boolean): Promise<number> {
  let joined = 0;
  const server = listen({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: N + 10,
    ...(recovery && { recovery: { window: 30_000 } }),
    onOpen: (session) => {
      session.join("room");
      joined++;
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
  const expected = MESSAGES * 64;
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
  for (let sent = 0; sent < MESSAGES;) {
    for (let i = 0; i < 32 && sent < MESSAGES; i++, sent++) {
      server.sessions.broadcast(LINE, { room: "room" });
    }
    await server.sessions.drained({ room: "room" });
  }
  await Promise.all(readers);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpuBefore);
  // Per million deliveries.
  cpu[recovery ? "on" : "off"].push(
    (used.user + used.system) / 1000 / (MESSAGES * N / 1e6),
  );
  writes[recovery ? "on" : "off"].push(server.stats().writes / N);
  for (const conn of conns) conn.close();
  await server.shutdown();
  if (done !== N) throw new Error(`${done} of ${N} receivers done`);
  return (MESSAGES * N) / seconds;
}

const off: number[] = [];
const on: number[] = [];
// --only=on (or off): one side, e.g. under --cpu-prof.
for (let i = 0; i < REPEAT; i++) {
  if (args.only !== "on") off.push(await run(false));
  if (args.only !== "off") on.push(await run(true));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const fmt = (x: number) => `${(x / 1e6).toFixed(2)} M/s`;
console.log(
  `fan-out N=${N}, ${MESSAGES} messages of 64 B, ${REPEAT} runs each`,
);
console.log(
  `recovery off: ${off.map(fmt).join(", ")} (median ${fmt(median(off))})`,
);
console.log(
  `recovery on:  ${on.map(fmt).join(", ")} (median ${fmt(median(on))})`,
);
const ms = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
console.log(
  `CPU ms per million deliveries (server and receivers, one process): off ${
    ms(cpu.off)
  }; on ${ms(cpu.on)}`,
);
console.log(
  `writes per receiver: off ${ms(writes.off)}; on ${ms(writes.on)}`,
);
if (args.only !== undefined) Deno.exit(0);
const ratios = on.map((x, i) => x / off[i]!);
console.log(
  `on/off per pair: ${ratios.map((r) => r.toFixed(2)).join(", ")} (median ${
    median(ratios).toFixed(2)
  }, min ${Math.min(...ratios).toFixed(2)}, max ${
    Math.max(...ratios).toFixed(2)
  }); ratio of medians ${(median(on) / median(off)).toFixed(2)}`,
);
console.log(
  `CPU off/on (higher is better for on): ${
    (median(cpu.off) / median(cpu.on)).toFixed(2)
  }`,
);
