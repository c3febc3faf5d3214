// History engines for the contract tests: nats-server -js and redis-server
// (with AOF) from tests/_brokers.ts, each with a data directory of its own
// so it can be restarted with its data or without it; and the in-memory
// engine.
import { BrokerServer, hasServer } from "../_brokers.ts";
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
      const server = await BrokerServer.start("redis", {
        data: { persist: true },
      });
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
        lose: () => server.restart(0, false),
        keep: () => server.restart(0, true),
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
      const server = await BrokerServer.start("nats", { data: {} });
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
        lose: () => server.restart(0, false),
        keep: () => server.restart(0, true),
        async [Symbol.asyncDispose]() {
          for (const history of opened) await history.close();
          await server[Symbol.asyncDispose]();
        },
      };
    },
  },
];
