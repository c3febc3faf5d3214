// Room history cost on the broker: what one room message costs in broker
// messages, bytes and broker CPU with history off (the cluster's plain
// publish) and on (JetStream / Redis Streams history engines), on loopback:
//
//   deno run -A bench/history.ts [--messages=5000] [--size=64] [--smoke]
//
// Setup, per broker: one sending connection, two member nodes subscribed
// to the room, one node subscribed to another room only (it must receive
// nothing). "Off" publishes each message on the room's subject (the
// cluster's unbatched path: ClusterNode batches a turn's frames into one
// broker message, which would divide both columns alike). "On" appends
// each message to the history engine, up to 256 in flight, which stores
// it and delivers it live with its position. Counters are the broker's
// own: nats-server's /varz (in/out messages and bytes, over its
// monitoring port on 127.0.0.1), Redis INFO (commands, network bytes;
// its outbound messages are the command replies plus the pub/sub
// deliveries counted at the subscribers). Broker CPU is from
// /proc/<pid>/stat. JetStream stores to files (the default), Redis
// without persistence.
import { NatsBroker } from "../src/cluster/nats_broker.ts";
import { RedisBroker } from "../src/cluster/redis_broker.ts";
import type { RoomHistory } from "../src/cluster/history/history.ts";
import { JetStreamHistory } from "../src/cluster/history/jetstream_history.ts";
import { RedisHistory } from "../src/cluster/history/redis_history.ts";
import { BrokerProcess as Server, type Counters } from "./_broker_process.ts";

interface Row {
  broker: string;
  history: string;
  perMessage: Counters;
  rate: number;
  strangerGot: number;
  /** Milliseconds to replay the room's last 1000 entries. */
  replayMs: number;
}

async function until(condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("Timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function measure(
  server: Server,
  history: boolean,
  messages: number,
  size: number,
): Promise<Row> {
  const frame = new Uint8Array(size).fill(77);
  let received = 0;
  let strangerGot = 0;
  const close: (() => Promise<void>)[] = [];
  let send: () => Promise<unknown> | unknown;
  let replay = (): Promise<number> => Promise.resolve(NaN);
  const positions: number[] = [];
  if (history) {
    const connect = (): Promise<RoomHistory> => {
      const limits = { maxMessages: 1000, maxAge: 600_000, window: 60_000 };
      return server.kind === "nats"
        ? JetStreamHistory.connect(server.url, {
          ...limits,
          maxStreamBytes: 256 * 1024 * 1024,
        })
        : RedisHistory.connect(server.url, { ...limits, maxBytes: 1 << 20 });
    };
    const sender = await connect();
    const members = [await connect(), await connect()];
    const stranger = await connect();
    for (const h of [sender, ...members, stranger]) close.push(() => h.close());
    for (const m of members) m.subscribeRoom("room", () => received++);
    members[0]!.subscribeRoom("room", (e) => positions.push(e.position));
    stranger.subscribeRoom("elsewhere", () => strangerGot++);
    send = () => sender.appendRoom("room", frame);
    replay = async () => {
      const { epoch } = await sender.head();
      const after = positions[positions.length - 1001]!;
      const started = performance.now();
      const result = await members[1]!.replay({
        epoch,
        after,
        rooms: [{ room: "room", joined: 0 }],
      });
      if (!result.ok || result.entries.length !== 1000) {
        throw new Error(`Replay: ${JSON.stringify(result.ok || result.gap)}`);
      }
      return performance.now() - started;
    };
  } else {
    const connect = () =>
      server.kind === "nats"
        ? NatsBroker.connect(server.url)
        : RedisBroker.connect(server.url);
    const sender = await connect();
    const members = [await connect(), await connect()];
    const stranger = await connect();
    for (const b of [sender, ...members, stranger]) close.push(() => b.close());
    for (const m of members) m.subscribe("mb.room", () => received++);
    stranger.subscribe("mb.elsewhere", () => strangerGot++);
    send = () => sender.publish("mb.room", frame);
  }
  // Subscriptions settle: one message must reach both members.
  for (let i = 0; i < 200 && received < 2; i++) {
    await send();
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 200));
  const base = received;
  let sent = 0;
  const before = await server.counters(sent, received);
  const started = performance.now();
  const inFlight = new Set<Promise<unknown>>();
  for (let i = 0; i < messages; i++) {
    const done = send();
    sent++;
    if (done instanceof Promise) {
      const tracked = done.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (inFlight.size >= 256) await Promise.race(inFlight);
    } else if (i % 256 === 255) {
      await until(() => received - base >= (i + 1) * 2 - 512, 30_000);
    }
  }
  await Promise.all(inFlight);
  await until(() => received - base >= messages * 2, 30_000);
  const seconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 200));
  const after = await server.counters(sent, received);
  const replayMs = await replay();
  for (const c of close) await c();
  const per = (key: keyof Counters) => (after[key] - before[key]) / messages;
  return {
    broker: server.kind === "nats" ? "nats" : "redis",
    history: history
      ? (server.kind === "nats" ? "JetStream" : "Redis Streams")
      : "off",
    perMessage: {
      executed: per("executed"),
      inMsgs: per("inMsgs"),
      outMsgs: per("outMsgs"),
      inBytes: per("inBytes"),
      outBytes: per("outBytes"),
      cpu: per("cpu") * 1e6,
    },
    rate: messages / seconds,
    replayMs,
    strangerGot,
  };
}

const args = Object.fromEntries(
  Deno.args.map((a) => a.replace(/^--/, "").split("=")).map((
    [k, v],
  ) => [k, v ?? "1"]),
);
const messages = args.smoke ? 500 : Number(args.messages ?? 5000);
const size = Number(args.size ?? 64);
const rows: Row[] = [];
for (const kind of ["nats", "redis"] as const) {
  for (const history of [false, true]) {
    const server = new Server(kind);
    await server.start();
    try {
      rows.push(await measure(server, history, messages, size));
    } finally {
      await server.stop();
    }
  }
}
const f = (n: number, d = 2) => n.toFixed(d);
console.log(
  `# room history on the broker: ${messages} room messages of ${size} bytes, 2 member nodes, 1 node elsewhere\n`,
);
console.log(
  "| broker | history | broker msgs in / msg | out / msg | bytes in / msg | bytes out / msg | commands executed / msg | broker CPU µs / msg | messages/s (≤256 in flight) | node elsewhere received | replay of 1000 entries |",
);
console.log(
  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
);
for (const r of rows) {
  const p = r.perMessage;
  console.log(
    `| ${r.broker} | ${r.history} | ${f(p.inMsgs)} | ${f(p.outMsgs)} | ${
      f(p.inBytes, 0)
    } | ${f(p.outBytes, 0)} | ${
      Number.isNaN(p.executed) ? "–" : f(p.executed, 1)
    } | ${f(p.cpu, 1)} | ${f(r.rate, 0)} | ${r.strangerGot} | ${
      Number.isNaN(r.replayMs) ? "–" : `${f(r.replayMs, 0)} ms`
    } |`,
  );
}
