// History engines for the contract tests: nats-server -js with a temporary
// store directory, redis-server with a temporary dir (AOF on or off), both
// on free 127.0.0.1 ports, killed with SIGKILL and awaited; and the
// in-memory engine. Each can be restarted with its data or without it.
import { freePort, hasServer } from "../_brokers.ts";
import type { RoomHistory } from "../../src/cluster/history/history.ts";
import { MemoryHistoryStore } from "../../src/cluster/history/memory_history.ts";
import { RedisHistory } from "../../src/cluster/history/redis_history.ts";
import { JetStreamHistory } from "../../src/cluster/history/jetstream_history.ts";

/** Bounds for one test; `maxBytes` is per room, or the stream's for JetStream. */
export interface TestLimits {
  maxMessages: number;
  maxBytes: number;
  maxAge: number;
  window: number;
}

export const quiet = (): void => {};

async function waitAccepting(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`Server on port ${port} did not start`, {
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** A nats-server or redis-server child with its own data directory. */
export class DataServer implements AsyncDisposable {
  readonly kind: "nats" | "redis";
  readonly port = freePort();
  readonly persist: boolean;
  #dir: string;
  #child: Deno.ChildProcess | undefined;

  private constructor(kind: "nats" | "redis", dir: string, persist: boolean) {
    this.kind = kind;
    this.#dir = dir;
    this.persist = persist;
  }

  /** `persist`: Redis with AOF (appendfsync always); JetStream always files. */
  static async start(
    kind: "nats" | "redis",
    persist = false,
  ): Promise<DataServer> {
    const server = new DataServer(kind, await Deno.makeTempDir(), persist);
    await server.#spawn();
    return server;
  }

  get url(): string {
    return `${this.kind}://127.0.0.1:${this.port}`;
  }

  async #spawn(): Promise<void> {
    const port = String(this.port);
    const args = this.kind === "nats"
      ? ["-a", "127.0.0.1", "-p", port, "-js", "-sd", this.#dir]
      : [
        "--port",
        port,
        "--bind",
        "127.0.0.1",
        "--dir",
        this.#dir,
        "--save",
        "",
        "--appendonly",
        this.persist ? "yes" : "no",
        "--appendfsync",
        "always",
      ];
    this.#child = new Deno.Command(`${this.kind}-server`, {
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

  /** SIGKILL, awaited. */
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

  /** Restarts on the same port, keeping the data directory or wiping it. */
  async restart(keepData: boolean): Promise<void> {
    await this.stop();
    if (!keepData) {
      await Deno.remove(this.#dir, { recursive: true });
      await Deno.mkdir(this.#dir);
    }
    await this.#spawn();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** One engine for a test: connect nodes, lose or keep the data. */
export interface Fixture extends AsyncDisposable {
  connect(): Promise<RoomHistory>;
  /** The broker restarts without its data (or the stream is lost). */
  lose(): Promise<void>;
  /** The broker restarts with its data; `undefined` when it can't. */
  keep: (() => Promise<void>) | undefined;
}

/** An engine kind the contract suite runs against. */
export interface EngineKind {
  name: string;
  ignore: boolean;
  start(limits: TestLimits): Promise<Fixture>;
}

let streams = 0;

export const ENGINES: EngineKind[] = [
  {
    name: "memory",
    ignore: false,
    start(limits) {
      const store = new MemoryHistoryStore(limits);
      const opened: RoomHistory[] = [];
      return Promise.resolve({
        connect: () => {
          const history = store.connect();
          opened.push(history);
          return Promise.resolve(history);
        },
        lose: () => Promise.resolve(store.lose()),
        keep: () => Promise.resolve(),
        async [Symbol.asyncDispose]() {
          for (const history of opened) await history.close();
        },
      });
    },
  },
  {
    name: "redis",
    ignore: !hasServer("redis"),
    async start(limits) {
      const server = await DataServer.start("redis", true);
      const opened: RoomHistory[] = [];
      return {
        async connect() {
          const history = await RedisHistory.connect(server.url, {
            ...limits,
            prefix: "t",
            onError: quiet,
          });
          opened.push(history);
          return history;
        },
        lose: () => server.restart(false),
        keep: () => server.restart(true),
        async [Symbol.asyncDispose]() {
          for (const history of opened) await history.close();
          await server[Symbol.asyncDispose]();
        },
      };
    },
  },
  {
    name: "jetstream",
    ignore: !hasServer("nats"),
    async start(limits) {
      const server = await DataServer.start("nats");
      const opened: RoomHistory[] = [];
      const stream = `T${++streams}`;
      return {
        async connect() {
          const history = await JetStreamHistory.connect(server.url, {
            maxMessages: limits.maxMessages,
            maxAge: limits.maxAge,
            maxStreamBytes: limits.maxBytes,
            window: limits.window,
            stream,
            prefix: "t",
            timeout: 1000,
            onError: quiet,
          });
          opened.push(history);
          return history;
        },
        lose: () => server.restart(false),
        keep: () => server.restart(true),
        async [Symbol.asyncDispose]() {
          for (const history of opened) await history.close();
          await server[Symbol.asyncDispose]();
        },
      };
    },
  },
];
