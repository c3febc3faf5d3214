// listen({ cluster }): the core's ClusterBridge driven by the cluster entry
// point's Cluster, over the in-memory broker (fast, and it can stop) and
// over real NATS and Redis for the publish counts. Servers, clients and
// brokers all live in this process; sanitizers are on.
import assert from "node:assert/strict";
import {
  json as jsonCodec,
  listen,
  type Server,
  type Session,
  SessionManager,
  upgradeWebSocket,
} from "../../mod.ts";
import {
  Cluster,
  ClusterNode,
  connectCluster,
  MemoryBrokerHub,
} from "../../cluster.ts";
import { type BrokerKind, BrokerServer, skipMessage } from "../_brokers.ts";
import { testServer } from "../_server.ts";
import { LineReader as Lines, until } from "../_util.ts";

/** A client's lines, read with a timeout; `close()` hangs up. */
class LineReader {
  readonly conn: Deno.Conn;
  readonly #lines: Lines;
  constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.#lines = new Lines(conn);
  }
  async line(ms = 5000): Promise<string> {
    const line = await this.#lines.next(ms);
    assert.notEqual(line, null, "connection closed, expected a line");
    return line!;
  }
  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

type Meta = { name: string };
type Data = { name: string };

interface Node {
  cluster: Cluster<Meta, Data>;
  server: Server<Data, string, string, Deno.NetAddr>;
}

function node(cluster: Cluster<Meta, Data>, budget?: number): Node {
  const server = testServer<Data, string, string>({
    cluster,
    ...(budget !== undefined && { outboundBudget: budget, drainTimeout: 200 }),
    data: (session) => ({ name: `s${session.id}` }),
    onMessage: (session, line) => {
      if (line.startsWith("join ")) {
        server.sessions.join(session, line.slice(5));
        session.send(`joined ${line.slice(5)}`);
      }
    },
  });
  return { cluster, server };
}

async function stop(...nodes: Node[]): Promise<void> {
  for (const { server } of nodes) await server.close();
  for (const { cluster } of nodes) await cluster.close();
}

/** A client that joined `room` on `n` (waits for the acknowledgement). */
async function member(n: Node, room: string): Promise<LineReader> {
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: n.server.addr.port,
  });
  const reader = new LineReader(conn);
  await reader.conn.write(new TextEncoder().encode(`join ${room}\n`));
  assert.equal(await reader.line(), `joined ${room}`);
  return reader;
}

function memoryCluster(hub: MemoryBrokerHub): Cluster<Meta, Data> {
  return new Cluster<Meta, Data>({
    broker: hub.connect(),
    meta: (session) => ({ name: session.data.name }),
    presence: { heartbeatInterval: 50, nodeTimeout: 200 },
  });
}

/**
 * Nodes over one in-memory broker, and the clients a test opened on them:
 * all closed when the test's scope ends (`await using`).
 */
class MemoryNodes implements AsyncDisposable {
  readonly hub = new MemoryBrokerHub();
  readonly all: Node[];
  readonly #readers: LineReader[] = [];
  /**
   * @param count How many nodes.
   * @param budgets Their outbound budgets (unset: the default).
   */
  constructor(count: number, budgets: Array<number | undefined> = []) {
    this.all = Array.from(
      { length: count },
      (_, i) => node(memoryCluster(this.hub), budgets[i]),
    );
  }
  /** A client that joined `room` on `n`, closed with the nodes. */
  async member(n: Node, room: string): Promise<LineReader> {
    const reader = await member(n, room);
    this.#readers.push(reader);
    return reader;
  }
  async [Symbol.asyncDispose](): Promise<void> {
    for (const reader of this.#readers) reader.close();
    await stop(...this.all);
  }
}

Deno.test("listen({ cluster }): session ids come from the cluster node", async () => {
  await using nodes = new MemoryNodes(1);
  const [a] = nodes.all as [Node];
  const ann = await nodes.member(a, "lobby");
  const [session] = [...a.server.sessions];
  assert.equal(ClusterNode.nodeOf(session!.id), a.cluster.node.nodeId);
  assert.ok(Number.isSafeInteger(session!.id));
  ann.close();
});

Deno.test("a room broadcast reaches every node's members with one publish; nodes without members get nothing", async () => {
  await using nodes = new MemoryNodes(3);
  const [a, b, c] = nodes.all as [Node, Node, Node];
  const ann = await nodes.member(a, "lobby");
  const bob = await nodes.member(b, "lobby");
  await nodes.member(c, "attic"); // a member of another room only
  await until(() => a.cluster.members("lobby").length === 2, 3000);
  const before = { a: a.cluster.stats(), c: c.cluster.stats() };
  for (let i = 0; i < 10; i++) {
    a.server.sessions.broadcast(`line ${i}`, { room: "lobby" });
  }
  for (let i = 0; i < 10; i++) {
    assert.equal(await ann.line(), `line ${i}`);
    assert.equal(await bob.line(), `line ${i}`);
  }
  const after = { a: a.cluster.stats(), c: c.cluster.stats() };
  assert.equal(after.a.node.published - before.a.node.published, 10);
  assert.equal(after.c.node.received, before.c.node.received);
  assert.equal(c.cluster.node.localCount("lobby"), 0);
  // A node without local members still publishes (encoded once).
  c.server.sessions.broadcast("from c", { room: "lobby" });
  assert.equal(await ann.line(), "from c");
  assert.equal(await bob.line(), "from c");
  // except crosses nodes.
  const bobId = [...b.server.sessions][0]!.id;
  a.server.sessions.broadcast("not bob", { room: "lobby", except: bobId });
  a.server.sessions.broadcast("all", { room: "lobby" });
  assert.equal(await ann.line(), "not bob");
  assert.equal(await ann.line(), "all");
  assert.equal(await bob.line(), "all");
});

Deno.test("a server sharing a clustered manager gets cluster ids, and other nodes' frames in its own codec", async () => {
  await using nodes = new MemoryNodes(2);
  const [a, b] = nodes.all as [Node, Node];
  // Beside a's lines server, on the same manager: a JSON server (as the
  // chat puts a WebSocket server beside its TCP one).
  const json = testServer<Data, string, string>({
    codec: jsonCodec<string>(),
    sessions: a.server.sessions,
    data: (session) => ({ name: `j${session.id}` }),
    onMessage: (session, room) => {
      a.server.sessions.join(session, room);
      session.send(`joined ${room}`);
    },
  });
  let jay: LineReader | undefined;
  try {
    const bob = await nodes.member(b, "lobby");
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: json.addr.port,
    });
    jay = new LineReader(conn);
    await conn.write(new TextEncoder().encode('"lobby"\n'));
    assert.equal(await jay.line(), '"joined lobby"');
    const [jaySession] = [...json.sessions];
    assert.equal(
      ClusterNode.nodeOf(jaySession!.id),
      a.cluster.node.nodeId,
      "an id from the cluster",
    );
    await until(() => b.cluster.members("lobby").length === 2, 3000);
    // From the other node, a run of frames in the lines encoding: the JSON
    // member gets each as a JSON message, in order.
    for (let i = 0; i < 5; i++) {
      b.server.sessions.broadcast(`line ${i}`, { room: "lobby" });
    }
    for (let i = 0; i < 5; i++) {
      assert.equal(await jay.line(), `"line ${i}"`);
      assert.equal(await bob.line(), `line ${i}`);
    }
    // Send-by-id from the other node, and the way back.
    b.server.sessions.send(jaySession!.id, "psst");
    assert.equal(await jay.line(), '"psst"');
    a.server.sessions.broadcast("from a", { room: "lobby" });
    assert.equal(await jay.line(), '"from a"');
    assert.equal(await bob.line(), "from a");
  } finally {
    jay?.close();
    await json.close();
  }
});

Deno.test("upgradeWebSocket sessions in a clustered manager get cluster ids and other nodes' frames", async () => {
  await using nodes = new MemoryNodes(2);
  const [a, b] = nodes.all as [Node, Node];
  const opened: Session<Data, string, string>[] = [];
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const up = upgradeWebSocket(request, a.server.sessions, {
        data: (session) => ({ name: `w${session.id}` }),
        onOpen: (session) => {
          a.server.sessions.join(session, "lobby");
          session.send("joined lobby");
        },
      });
      up.opened.then((s) => s && opened.push(s));
      return up.response;
    },
  );
  const ws = new WebSocket(`ws://127.0.0.1:${http.addr.port}/`);
  const got: string[] = [];
  ws.onmessage = (event) => got.push(event.data);
  const closed = new Promise<void>((r) => (ws.onclose = () => r()));
  try {
    await until(() => got.length === 1, 5000, "joined");
    assert.equal(ClusterNode.nodeOf(opened[0]!.id), a.cluster.node.nodeId);
    await nodes.member(b, "lobby");
    await until(() => b.cluster.members("lobby").length === 2, 3000);
    b.server.sessions.broadcast("one", { room: "lobby" });
    b.server.sessions.broadcast("two", { room: "lobby" });
    await until(() => got.length === 3, 5000, "two lines from b");
    assert.deepEqual(got, ["joined lobby", "one", "two"]);
  } finally {
    ws.close();
    await closed;
    await until(() => a.server.sessions.size === 0);
  }
});

Deno.test("local: true and filter keep a room broadcast on its node", async () => {
  await using nodes = new MemoryNodes(2);
  const [a, b] = nodes.all as [Node, Node];
  const ann = await nodes.member(a, "lobby");
  const bob = await nodes.member(b, "lobby");
  const published = a.cluster.stats().node.published;
  a.server.sessions.broadcast("local", { room: "lobby", local: true });
  a.server.sessions.broadcast("filtered", {
    room: "lobby",
    filter: () => true,
  });
  a.server.sessions.broadcast("everyone here"); // no room: this node
  a.server.sessions.broadcast("shared", { room: "lobby" });
  assert.equal(await ann.line(), "local");
  assert.equal(await ann.line(), "filtered");
  assert.equal(await ann.line(), "everyone here");
  assert.equal(await ann.line(), "shared");
  assert.equal(await bob.line(), "shared");
  assert.equal(a.cluster.stats().node.published, published + 1);
});

Deno.test("sessions.send(id) reaches a session on another node", async () => {
  await using nodes = new MemoryNodes(2);
  const [a, b] = nodes.all as [Node, Node];
  const bob = await nodes.member(b, "lobby");
  const bobId = [...b.server.sessions][0]!.id;
  assert.equal(a.server.sessions.send(bobId, "psst"), true);
  assert.equal(await bob.line(), "psst");
  // An id of this node that is not open: false, nothing published.
  const published = a.cluster.stats().node.published;
  assert.equal(
    a.server.sessions.send(a.cluster.node.nodeId * 2 ** 33 + 999, "x"),
    false,
  );
  assert.equal(a.cluster.stats().node.published, published);
});

Deno.test("broker down: local delivery goes on, cross-node broadcasts are dropped and counted, then resume", async () => {
  await using nodes = new MemoryNodes(2);
  const [a, b] = nodes.all as [Node, Node];
  const ann = await nodes.member(a, "lobby");
  const bob = await nodes.member(b, "lobby");
  nodes.hub.stop();
  const dropped = a.cluster.stats().node.dropped;
  assert.equal(
    a.server.sessions.broadcast("while down", { room: "lobby" }),
    1,
  );
  assert.equal(await ann.line(), "while down");
  assert.equal(a.cluster.stats().node.dropped, dropped + 1);
  nodes.hub.start();
  await until(() => a.cluster.node.broker.state === "connected", 3000);
  await until(() => a.cluster.members("lobby").length === 2, 3000);
  a.server.sessions.broadcast("back", { room: "lobby" });
  assert.equal(await bob.line(), "back");
});

Deno.test("frames from other nodes obey the receiver's byte budget", async () => {
  await using nodes = new MemoryNodes(2, [undefined, 256 * 1024]);
  const [a, b] = nodes.all as [Node, Node];
  const ann = await nodes.member(a, "lobby");
  await nodes.member(b, "lobby"); // stuck: never reads again
  const bob = await nodes.member(b, "lobby");
  await until(() => a.cluster.members("lobby").length === 3, 3000);
  const line = "x".repeat(8000); // past what the kernel buffers
  // Bob keeps up (read in step); the stuck member can't hold more than
  // its budget, and is cut.
  for (let i = 0; i < 3000 && b.server.sessions.size > 1; i += 10) {
    for (let j = 0; j < 10; j++) {
      a.server.sessions.broadcast(line, { room: "lobby" });
    }
    for (let j = 0; j < 10; j++) {
      assert.equal(await bob.line(), line);
      assert.equal(await ann.line(), line);
    }
  }
  await until(() => b.server.sessions.size === 1, 5000);
});

Deno.test("a Cluster serves one server; listen() rejects a second", async () => {
  await using nodes = new MemoryNodes(1);
  const [a] = nodes.all as [Node];
  assert.throws(
    () => testServer({ cluster: a.cluster }),
    TypeError,
  );
});

Deno.test("reusePort without --unstable-net is a TypeError that says so", () => {
  if (
    typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function"
  ) {
    // Run with --unstable-net: it must work instead.
    const one = testServer({ reusePort: true });
    const two = listen({
      hostname: "127.0.0.1",
      port: one.addr.port,
      reusePort: true,
    });
    return Promise.all([one.close(), two.close()]).then(() => {});
  }
  assert.throws(
    () => testServer({ reusePort: true }),
    (error: unknown) =>
      error instanceof TypeError && /--unstable-net/.test(error.message),
  );
});

function realBroker(kind: BrokerKind): void {
  Deno.test({
    name:
      `listen({ cluster }) over ${kind}: a broadcast is published once (a turn's share one message), zero deliveries to nodes without members`,
    ignore: skipMessage(kind),
    async fn() {
      await using broker = await BrokerServer.start(kind);
      const make = () =>
        connectCluster<Meta, Data>({
          url: broker.url,
          meta: (session) => ({ name: session.data.name }),
          presence: { heartbeatInterval: 100, nodeTimeout: 500 },
        });
      const a = node(await make());
      const b = node(await make());
      const c = node(await make());
      const readers: LineReader[] = [];
      try {
        const ann = await member(a, "lobby");
        const bob = await member(b, "lobby");
        readers.push(ann, bob, await member(c, "attic"));
        await until(() => a.cluster.members("lobby").length === 2, 5000);
        const before = [a, b, c].map((n) => n.cluster.stats());
        for (let i = 0; i < 100; i++) {
          a.server.sessions.broadcast(`m${i}`, { room: "lobby" });
        }
        for (let i = 0; i < 100; i++) assert.equal(await bob.line(), `m${i}`);
        const after = [a, b, c].map((n) => n.cluster.stats());
        assert.equal(after[0]!.node.published - before[0]!.node.published, 100);
        assert.equal(after[0]!.node.messages - before[0]!.node.messages, 1);
        assert.equal(after[1]!.node.delivered - before[1]!.node.delivered, 100);
        assert.equal(after[2]!.node.received - before[2]!.node.received, 0);
        for (let i = 0; i < 100; i++) assert.equal(await ann.line(), `m${i}`);
        // Broadcasts in separate turns: one message each.
        const lone = a.cluster.stats().node.messages;
        for (let i = 0; i < 3; i++) {
          a.server.sessions.broadcast(`lone ${i}`, { room: "lobby" });
          assert.equal(await bob.line(), `lone ${i}`);
        }
        assert.equal(a.cluster.stats().node.messages - lone, 3);
      } finally {
        for (const r of readers) r.close();
        await stop(a, b, c);
      }
    },
  });
}

realBroker("nats");
realBroker("redis");

Deno.test("members who joined before their manager entered the cluster are subscribed and tracked", async () => {
  await using nodes = new MemoryNodes(1);
  const [b] = nodes.all as [Node];
  // A plain server first; a member joins the lobby.
  const sessions = new SessionManager<Data, string, string>();
  const plain = testServer<Data, string, string>({
    sessions,
    data: (session) => ({ name: `p${session.id}` }),
    onMessage: (session, room) => {
      sessions.join(session, room);
      session.send(`joined ${room}`);
    },
  });
  let early: LineReader | undefined;
  let clustered: Node | undefined;
  try {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: plain.addr.port,
    });
    early = new LineReader(conn);
    await conn.write(new TextEncoder().encode("lobby\n"));
    assert.equal(await early.line(), "joined lobby");
    // Then a server joins the same manager to the cluster.
    const cluster = memoryCluster(nodes.hub);
    clustered = {
      cluster,
      server: testServer<Data, string, string>({
        sessions,
        cluster,
      }),
    };
    const bob = await nodes.member(b, "lobby");
    await until(() => b.cluster.members("lobby").length === 2, 3000);
    b.server.sessions.broadcast("hello early", { room: "lobby" });
    assert.equal(await early.line(), "hello early");
    assert.equal(await bob.line(), "hello early");
  } finally {
    early?.close();
    await plain.close();
    if (clustered !== undefined) await stop(clustered);
  }
});

Deno.test("a manager is in one cluster at most: listen() refuses a second cluster on it", async () => {
  await using nodes = new MemoryNodes(1);
  const [a] = nodes.all as [Node];
  await using other = memoryCluster(nodes.hub);
  assert.throws(
    () =>
      testServer({
        sessions: a.server.sessions,
        cluster: other,
      }),
    TypeError,
  );
  // The first cluster still carries the manager's rooms.
  const ann = await nodes.member(a, "lobby");
  await until(() => a.cluster.members("lobby").length === 1, 3000);
  assert.equal(other.members("lobby").length, 1);
  ann.close();
});
