// upgradeWebSocket() (src/transport/native.ts) under load: echo (each of N
// clients keeps `window` 64-byte text messages in flight, each sent back)
// and fan-out (one sender, each message broadcast to all N clients, the
// sender keeping `window` of its own in flight). The server runs in its own
// process (this file with --serve); we count deliveries per second and the
// server's CPU time (/proc/<pid>/stat, Linux) per delivery.
//
// To compare with another version of the adapter, in the same run,
// alternating: --before=<path of a module exporting upgradeWebSocket>, e.g.
// `git show <commit>:src/transport/native.ts` saved with its relative
// imports made absolute.
//
//   deno run -A bench/native_adapter.ts [--clients=50] [--seconds=3]
//     [--rounds=3] [--window=16] [--before=/tmp/native_before.ts]
import { lines, SessionManager } from "../mod.ts";

const self = new URL(import.meta.url).pathname;
const current = new URL("../src/transport/native.ts", import.meta.url)
  .pathname;

function arg(name: string, fallback: string): string {
  const found = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return found === undefined ? fallback : found.slice(name.length + 3);
}

if (Deno.args.includes("--serve")) await serve(arg("impl", current));
else await main();

// The server: echo on "/echo", broadcast to every session on "/fanout".
async function serve(impl: string): Promise<void> {
  const { upgradeWebSocket } = await import(impl);
  const sessions = new SessionManager<unknown, string, string>();
  const codec = lines();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const fanout = new URL(request.url).pathname === "/fanout";
      return upgradeWebSocket(request, sessions, {
        codec,
        onMessage: fanout
          ? (_s: unknown, line: string) => void sessions.broadcast(line)
          : (s: { send(line: string): boolean }, line: string) =>
            void s.send(line),
      }).response;
    },
  );
  console.log(server.addr.port);
  await server.finished;
}

function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime, fields 14 and 15 (1-based, counting pid and comm).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Result {
  perSecond: number;
  cpuMicros: number;
}

async function open(port: number, path: string, n: number) {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    sockets.push(ws);
  }
  return sockets;
}

async function run(
  impl: string,
  workload: "echo" | "fanout",
  clients: number,
  seconds: number,
  window: number,
): Promise<Result> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", self, "--serve", `--impl=${impl}`],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let head = "";
  while (!head.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("server ended");
    head += value;
  }
  const port = Number(head.trim());
  const sockets = await open(port, `/${workload}`, clients);
  const line = "x".repeat(63);
  let delivered = 0;
  let running = true;
  const sender = sockets[0]!;
  for (const ws of sockets) {
    ws.onmessage = () => {
      delivered++;
      // Echo: every client refills its window; fan-out: only the sender,
      // on its own copy.
      if (running && (workload === "echo" || ws === sender)) ws.send(line);
    };
  }
  const cpu0 = cpuSeconds(child.pid);
  const t0 = performance.now();
  const starters = workload === "echo" ? sockets : [sender];
  for (const ws of starters) for (let i = 0; i < window; i++) ws.send(line);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const count = delivered;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(child.pid) - cpu0;
  running = false;
  for (const ws of sockets) ws.close();
  child.kill();
  await child.status;
  await reader.cancel();
  return {
    perSecond: count / elapsed,
    cpuMicros: (cpu / count) * 1e6,
  };
}

async function main(): Promise<void> {
  const clients = Number(arg("clients", "50"));
  const seconds = Number(arg("seconds", "3"));
  const rounds = Number(arg("rounds", "3"));
  const window = Number(arg("window", "16"));
  const before = arg("before", "");
  const impls: [string, string][] = [["current", current]];
  if (before !== "") impls.unshift(["before", before]);
  const rows: string[] = [
    `| workload | version | round | deliveries/s | server CPU µs/delivery |`,
    `|---|---|---|---|---|`,
  ];
  for (const workload of ["echo", "fanout"] as const) {
    for (let round = 1; round <= rounds; round++) {
      for (const [name, impl] of impls) {
        const r = await run(impl, workload, clients, seconds, window);
        rows.push(
          `| ${workload} | ${name} | ${round} | ${
            Math.round(r.perSecond).toLocaleString("en")
          } | ${r.cpuMicros.toFixed(2)} |`,
        );
        console.error(rows.at(-1));
      }
    }
  }
  console.log(
    `${clients} clients, ${seconds} s a run, window ${window}, 64-byte lines\n`,
  );
  console.log(rows.join("\n"));
}
