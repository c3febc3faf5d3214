// A broker server process for the cluster benches (bench/history.ts,
// bench/cluster_recovery.ts): nats-server with JetStream (and its
// monitoring port, for /varz) or redis-server without persistence, on
// free loopback ports, with the broker's own counters and its CPU from
// /proc/<pid>/stat.
/** A broker's counters, and its CPU seconds. */
export interface Counters {
  /** Redis: commands executed, those inside scripts included. */
  executed: number;
  inMsgs: number;
  outMsgs: number;
  inBytes: number;
  outBytes: number;
  cpu: number;
}

/** A port nothing listens on now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Waits until something accepts on `port`. */
export async function waitAccepting(port: number): Promise<void> {
  for (let i = 0; i < 250; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error(`Nothing listens on ${port}`);
}

/** CPU seconds a process has used (user + system). */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A nats-server -js or redis-server of its own, with its counters. */
export class BrokerProcess {
  readonly port = freePort();
  readonly monitor = freePort();
  readonly kind: "nats" | "redis";
  child!: Deno.ChildProcess;
  dir = "";
  constructor(kind: "nats" | "redis") {
    this.kind = kind;
  }
  async start(): Promise<void> {
    this.dir = await Deno.makeTempDir();
    const args = this.kind === "nats"
      ? [
        "-a",
        "127.0.0.1",
        "-p",
        String(this.port),
        "-m",
        String(this.monitor),
        "-js",
        "-sd",
        this.dir,
      ]
      : [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--save",
        "",
        "--appendonly",
        "no",
      ];
    this.child = new Deno.Command(`${this.kind}-server`, {
      args,
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitAccepting(this.port);
    if (this.kind === "nats") await waitAccepting(this.monitor);
  }
  get url(): string {
    return `${this.kind}://127.0.0.1:${this.port}`;
  }
  /** `sent`, `delivered`: counted at the clients (Redis can't tell). */
  async counters(sent: number, delivered: number): Promise<Counters> {
    const cpu = cpuSeconds(this.child.pid);
    if (this.kind === "nats") {
      const varz = await (await fetch(`http://127.0.0.1:${this.monitor}/varz`))
        .json();
      return {
        executed: NaN,
        inMsgs: varz.in_msgs,
        outMsgs: varz.out_msgs,
        inBytes: varz.in_bytes,
        outBytes: varz.out_bytes,
        cpu,
      };
    }
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    await conn.write(new TextEncoder().encode("INFO stats\r\n"));
    let text = "";
    const buffer = new Uint8Array(65536);
    while (!text.includes("total_net_output_bytes") || !text.endsWith("\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    conn.close();
    const get = (name: string) =>
      Number(new RegExp(`${name}:(\\d+)`).exec(text)?.[1]);
    return {
      executed: get("total_commands_processed"),
      // One command per send, one reply per command, plus the deliveries.
      inMsgs: sent,
      outMsgs: sent + delivered,
      inBytes: get("total_net_input_bytes"),
      outBytes: get("total_net_output_bytes"),
      cpu,
    };
  }
  async stop(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.child.status;
    await Deno.remove(this.dir, { recursive: true });
  }
}
