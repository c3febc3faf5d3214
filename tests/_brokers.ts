// Real broker servers for the cluster tests: nats-server and redis-server
// started as child processes on free loopback ports, stopped (and awaited,
// for the sanitizers) at the end. Tests skip with a message when a binary
// is missing.

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The broker kinds the tests run against. */
export type BrokerKind = "nats" | "redis";

const BINARY: Record<BrokerKind, string> = {
  nats: "nats-server",
  redis: "redis-server",
};

/** Whether the server binary for `kind` is on the PATH. */
export function hasServer(kind: BrokerKind): boolean {
  const name = BINARY[kind];
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return true;
    } catch {
      // not there
    }
  }
  return false;
}

/** Says why a test is skipped, once per kind. */
const warned = new Set<BrokerKind>();
export function skipMessage(kind: BrokerKind): boolean {
  if (hasServer(kind)) return false;
  if (!warned.has(kind)) {
    warned.add(kind);
    console.warn(
      `SKIPPED: ${BINARY[kind]} is not installed (apt-get install ${
        BINARY[kind]
      }); the ${kind} cluster tests did not run`,
    );
  }
  return true;
}

/** Waits until something accepts connections on 127.0.0.1:`port`. */
export async function waitAccepting(
  port: number,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`Broker on port ${port} did not start`, {
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** A broker server child process. */
export class BrokerServer implements AsyncDisposable {
  readonly kind: BrokerKind;
  readonly port: number;
  #child: Deno.ChildProcess | undefined;
  #config: string | undefined;
  // With `data`: the server's own data directory (JetStream's store, Redis's
  // dir), and whether Redis keeps an append-only file in it.
  #dir: string | undefined;
  #persist = false;

  private constructor(kind: BrokerKind, port: number) {
    this.kind = kind;
    this.port = port;
  }

  /**
   * Starts a server of `kind` on a free port and waits until it accepts.
   * `natsConfig` is the text of a nats-server configuration file. `data`
   * gives the server a data directory of its own (nats-server runs with
   * JetStream there; `persist` turns on Redis's append-only file, fsynced
   * on every write), which `restart()` can keep or wipe.
   */
  static async start(
    kind: BrokerKind,
    options: { natsConfig?: string; data?: { persist?: boolean } } = {},
  ): Promise<BrokerServer> {
    const server = new BrokerServer(kind, freePort());
    if (options.data !== undefined) {
      server.#dir = await Deno.makeTempDir();
      server.#persist = options.data.persist ?? false;
    }
    if (options.natsConfig !== undefined) {
      server.#config = await Deno.makeTempFile({ suffix: ".conf" });
      await Deno.writeTextFile(server.#config, options.natsConfig);
    }
    try {
      await server.#spawn();
    } catch (error) {
      await server.#removeFiles();
      throw error;
    }
    return server;
  }

  async #removeFiles(): Promise<void> {
    if (this.#config !== undefined) {
      await Deno.remove(this.#config).catch(() => {});
      this.#config = undefined;
    }
    if (this.#dir !== undefined) {
      await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
      this.#dir = undefined;
    }
  }

  /** The URL clients connect to. */
  get url(): string {
    return `${this.kind}://127.0.0.1:${this.port}`;
  }

  async #spawn(): Promise<void> {
    const port = String(this.port);
    const dir = this.#dir;
    const args = this.kind === "nats"
      ? [
        "-a",
        "127.0.0.1",
        "-p",
        port,
        ...(this.#config === undefined ? [] : ["-c", this.#config]),
        ...(dir === undefined ? [] : ["-js", "-sd", dir]),
      ]
      : [
        "--port",
        port,
        "--bind",
        "127.0.0.1",
        ...(dir === undefined ? [] : ["--dir", dir]),
        "--save",
        "",
        "--appendonly",
        this.#persist ? "yes" : "no",
        ...(this.#persist ? ["--appendfsync", "always"] : []),
      ];
    this.#child = new Deno.Command(BINARY[this.kind], {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitAccepting(this.port, 5000);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** Kills the server (SIGKILL: no goodbye to clients) and awaits its exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
  }

  /**
   * Restarts the server on the same port, after `downMs`; with a data
   * directory, `keepData: false` wipes it first (the broker comes back
   * without its data).
   */
  async restart(downMs = 0, keepData = true): Promise<void> {
    await this.stop();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    if (!keepData && this.#dir !== undefined) {
      await Deno.remove(this.#dir, { recursive: true });
      await Deno.mkdir(this.#dir);
    }
    await this.#spawn();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await this.#removeFiles();
  }
}
