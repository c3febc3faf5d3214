// WebSocket idle memory (issue 19 §4): a device gateway holds many quiet
// connections. Opens N WebSocket connections (each completes its opening
// handshake, then stays silent) against:
//   - microsocket, listen({ transport: "websocket", heartbeatInterval: 30 s })
//                                                  bench/servers/ws_microsocket.ts
//   - the hand-written floor: Deno.listen, the handshake by hand, one pending
//     16-byte read per connection                  bench/servers/ws_floor.ts
//   - Deno.serve + Deno.upgradeWebSocket           bench/servers/ws_native.ts
//   - Node + npm ws (when node and npm:ws are at hand)  bench/servers/ws_node.mjs
// and prints the server's RSS growth ÷ connections (VmRSS from /proc, read
// before the first connection and 0.5 s after the last handshake), like the
// idle rows of `deno task bench`. The growth includes V8's young generation,
// which grows with the allocation burst and which a million connections
// would amortize; so the Deno servers (run with --expose-gc) are also read
// after a forced, memory-reducing GC (SIGUSR2, bench/servers/_idle_gc.ts),
// before the first connection and once they are all idle: the second
// column. Clients are raw sockets in this process.
//
// --v8-flags=... adds V8 flags to the Deno servers (e.g.
// --v8-flags=--max-semi-space-size=1, a cap on the young generation).
// --runs=3 measures every server 3 times, alternating (round 1 runs each
// server once, then round 2...), and prints the median of each column;
// --only=microsocket,floor keeps the servers whose name contains one of
// the words.
//
//   deno run -A bench/ws_idle.ts [--n=10000] [--runs=1] [--only=...] [--smoke]

const here = new URL(".", import.meta.url).pathname;
const deno = Deno.execPath();
const net = "--allow-net=127.0.0.1";

let n = 10_000;
let runs = 1;
let only: string[] | undefined;
// Always --expose-gc (it only exposes gc()), plus what --v8-flags adds.
let v8Flags = "--v8-flags=--expose-gc";
for (const arg of Deno.args) {
  const [name, ...rest] = arg.replace(/^--/, "").split("=");
  const value = rest.join("=");
  if (name === "smoke") n = 200;
  else if (name === "n") n = Number(value);
  else if (name === "v8-flags") v8Flags += `,${value}`;
  else if (name === "runs") runs = Number(value);
  else if (name === "only") only = value.split(",");
  else throw new Error(`unknown option ${arg}`);
}

interface Target {
  name: string;
  command: () => Promise<[string, string[]] | undefined>;
  /** Runs a memory-reducing GC on SIGUSR2 (bench/servers/_idle_gc.ts). */
  gcOnSignal?: boolean;
}

// npm:ws for Node, from Deno's npm cache; undefined when missing.
async function wsModule(): Promise<string | undefined> {
  try {
    const info = JSON.parse(
      new TextDecoder().decode(
        (await new Deno.Command(deno, { args: ["info", "--json"] }).output())
          .stdout,
      ),
    );
    const dir = `${info.npmCache}/registry.npmjs.org/ws`;
    const versions: string[] = [];
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && entry.name.startsWith("8.")) {
        versions.push(entry.name);
      }
    }
    const version = versions.sort((a, b) =>
      a.localeCompare(b, undefined, { numeric: true })
    ).pop();
    return version === undefined ? undefined : `${dir}/${version}/wrapper.mjs`;
  } catch {
    return undefined;
  }
}

async function hasNode(): Promise<boolean> {
  try {
    return (await new Deno.Command("node", { args: ["--version"] }).output())
      .success;
  } catch {
    return false;
  }
}

const TARGETS: Target[] = [
  {
    name: "microsocket ws, heartbeat",
    command: () =>
      Promise.resolve([deno, [
        "run",
        net,
        v8Flags,
        `${here}servers/ws_microsocket.ts`,
        "heartbeat",
      ]]),
    gcOnSignal: true,
  },
  {
    name: "hand-written Deno floor, 16 B reads",
    command: () =>
      Promise.resolve([deno, [
        "run",
        net,
        v8Flags,
        `${here}servers/ws_floor.ts`,
      ]]),
    gcOnSignal: true,
  },
  {
    name: "Deno native ws",
    command: () =>
      Promise.resolve([deno, [
        "run",
        net,
        v8Flags,
        `${here}servers/ws_native.ts`,
      ]]),
    gcOnSignal: true,
  },
  {
    name: "Node ws",
    command: async () => {
      const module = await wsModule();
      if (module === undefined || !(await hasNode())) return undefined;
      return ["node", [`${here}servers/ws_node.mjs`, module]];
    },
  },
];

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) * 1024;
}

const encoder = new TextEncoder();
const HANDSHAKE = encoder.encode(
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
    "Sec-WebSocket-Version: 13\r\n\r\n",
);

/** Opens one connection and completes its handshake, within 10 s. */
async function open(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), 10_000);
  try {
    let written = 0;
    while (written < HANDSHAKE.length) {
      written += await conn.write(HANDSHAKE.subarray(written));
    }
    const buffer = new Uint8Array(1024);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const read = await conn.read(buffer);
      if (read === null) throw new Error("closed during the handshake");
      head += new TextDecoder().decode(buffer.subarray(0, read));
    }
    if (!head.startsWith("HTTP/1.1 101")) {
      throw new Error(`no upgrade: ${head.split("\r\n")[0]}`);
    }
    return conn;
  } catch (error) {
    try {
      conn.close();
    } catch { /* closed by the timer */ }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

// Asks a server for a forced, memory-reducing GC and reads its RSS once it
// has settled; NaN for a server without the hook.
async function rssAfterGc(target: Target, pid: number): Promise<number> {
  if (!target.gcOnSignal) return NaN;
  Deno.kill(pid, "SIGUSR2");
  await new Promise((resolve) => setTimeout(resolve, 500));
  return rssBytes(pid);
}

interface Measured {
  perConnection: number;
  perConnectionAfterGc: number;
  acceptMs: number;
}

async function measure(target: Target): Promise<Measured | string> {
  const command = await target.command();
  if (command === undefined) return "skipped (not installed)";
  const [cmd, args] = command;
  const server = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const conns: Deno.TcpConn[] = [];
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
    await new Promise((resolve) => setTimeout(resolve, 300));
    const baseline = rssBytes(server.pid);
    const baselineGc = await rssAfterGc(target, server.pid);
    const started = performance.now();
    let next = 0;
    // 128 handshakes at a time, like the TCP idle rows.
    await Promise.all(Array.from({ length: 128 }, async () => {
      while (next < n) {
        next++;
        conns.push(await open(port));
      }
    }));
    const acceptMs = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const perConnection = (rssBytes(server.pid) - baseline) / n;
    const afterGc = await rssAfterGc(target, server.pid);
    return {
      perConnection,
      perConnectionAfterGc: (afterGc - baselineGc) / n,
      acceptMs,
    };
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    reader.releaseLock();
    try {
      server.kill("SIGKILL");
    } catch { /* exited */ }
    await server.status;
    await server.stdout.cancel().catch(() => {});
  }
}

const targets = only === undefined
  ? TARGETS
  : TARGETS.filter((t) => only!.some((word) => t.name.includes(word)));
const results = new Map<Target, Measured[]>();
const skipped = new Map<Target, string>();
let failed = false;
for (let round = 0; round < runs; round++) {
  for (const target of targets) {
    if (skipped.has(target)) continue;
    try {
      const result = await measure(target);
      if (typeof result === "string") skipped.set(target, result);
      else results.set(target, [...results.get(target) ?? [], result]);
    } catch (error) {
      failed = true;
      skipped.set(target, `error: ${String(error)}`);
    }
  }
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const of = runs === 1 ? "" : `, median of ${runs} alternating runs`;
console.log(
  `| server | RSS per connection (${n} idle WebSocket connections${of}) | ` +
    `the same, after a forced GC | handshakes done in |`,
);
console.log("|---|---:|---:|---:|");
for (const target of targets) {
  const done = results.get(target);
  if (done === undefined) {
    console.log(`| ${target.name} | ${skipped.get(target)} | | |`);
    continue;
  }
  const kb = (bytes: number): string =>
    Number.isNaN(bytes) ? "–" : `${(bytes / 1024).toFixed(1)} KB`;
  console.log(
    `| ${target.name} | ${kb(median(done.map((r) => r.perConnection)))} | ${
      kb(median(done.map((r) => r.perConnectionAfterGc)))
    } | ${Math.round(median(done.map((r) => r.acceptMs)))} ms |`,
  );
  if (runs > 1) {
    console.error(
      `${target.name}: ${
        done.map((r) =>
          `${(r.perConnection / 1024).toFixed(1)}/${
            (r.perConnectionAfterGc / 1024).toFixed(1)
          }`
        ).join(" ")
      } KB`,
    );
  }
}
if (failed) Deno.exit(1);
