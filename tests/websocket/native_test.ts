// upgradeWebSocket(): an app's own Deno.serve hands upgrade requests to a
// SessionManager, over Deno's native WebSocket. The sessions share rooms and
// broadcasts with TCP sessions, and a peer that stops reading is cut by the
// outbound budget (the native socket's bufferedAmount is polled).
import assert from "node:assert/strict";
import {
  lines,
  type Session,
  SessionManager,
  upgradeWebSocket,
  webSocketMessages,
} from "../../mod.ts";
import { RawWebSocket, upgradeRequest } from "./_ws_raw.ts";
import { dial, testServer } from "../_server.ts";
import { delay, LineReader, until, utf8, within, writeAll } from "../_util.ts";

Deno.test("upgradeWebSocket: native sessions share a manager and broadcasts with TCP sessions", async () => {
  await using tcp = testServer({
    onMessage: (_s, line) => void tcp.sessions.broadcast(`tcp: ${line}`),
  });
  const codec = lines();
  const opened: Session<unknown, string, string>[] = [];
  const reasons: string[] = [];
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request, info) => {
      const { response, opened: session } = upgradeWebSocket(
        request,
        tcp.sessions,
        {
          codec,
          remoteAddr: info.remoteAddr,
          onOpen: (s) => void s.send(`welcome ${s.id}`),
          onMessage: (_s, line) => void tcp.sessions.broadcast(`web: ${line}`),
          onClose: (_s, reason) => void reasons.push(reason),
        },
      );
      session.then((s) => s && opened.push(s));
      return response;
    },
  );
  const ws = new WebSocket(`ws://127.0.0.1:${http.addr.port}/`);
  const got: string[] = [];
  ws.onmessage = (e) => got.push(e.data);
  const closed = new Promise<number>((r) => (ws.onclose = (e) => r(e.code)));
  await within(new Promise((r) => (ws.onopen = r)), 5000, "open");
  await until(() => got.length === 1);
  const conn = await dial(tcp.addr.port);
  const reader = new LineReader(conn);
  await until(() => tcp.sessions.size === 2);
  assert.equal(new Set([...tcp.sessions].map((s) => s.id)).size, 2);
  ws.send("from web");
  assert.equal(await reader.next(), "web: from web");
  await writeAll(conn, utf8("from tcp\n"));
  assert.equal(await reader.next(), "tcp: from tcp");
  await until(() => got.length === 3);
  assert.deepEqual(got, [
    `welcome ${opened[0]!.id}`,
    "web: from web",
    "tcp: from tcp",
  ]);
  assert.equal(opened[0]!.remoteAddr.transport, "tcp");
  await opened[0]!.close("server shutdown");
  assert.equal(await closed, 1001);
  assert.deepEqual(reasons, ["server shutdown"]);
  conn.close();
  await until(() => tcp.sessions.size === 0);
});

Deno.test("upgradeWebSocket: a peer that stops reading stalls its producer, is refused past the budget and cut within drainTimeout", async () => {
  const reasons: string[] = [];
  let session: Session<unknown, string | Uint8Array> | undefined;
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const up = upgradeWebSocket(
        request,
        new SessionManager<unknown, string | Uint8Array, string | Uint8Array>(),
        {
          codec: webSocketMessages(),
          outboundBudget: 256 * 1024,
          maxBufferedAmount: 64 * 1024,
          drainTimeout: 2000,
          onClose: (_s, reason) => void reasons.push(reason),
        },
      );
      up.opened.then((s) => (session = s));
      return up.response;
    },
  );
  // A raw client that upgrades, then never reads again.
  const conn = await dial(http.addr.port);
  try {
    await writeAll(conn, upgradeRequest("/"));
    const head = new Uint8Array(4096);
    await conn.read(head);
    await until(() => session !== undefined);
    const chunk = new Uint8Array(16 * 1024);
    // A producer that waits for room: it stalls once the native buffer is
    // over maxBufferedAmount and the session's queue over its high-water
    // mark, instead of buffering without bound.
    let sent = 0;
    let stalled = false;
    for (let i = 0; i < 4096; i++) {
      if (!session!.send(chunk)) break;
      sent += chunk.length;
      try {
        await within(session!.drained(), 1000, "room");
      } catch {
        stalled = true;
        break;
      }
    }
    assert.ok(stalled, `sent ${sent} bytes without stalling`);
    assert.ok(sent < 32 << 20, `${sent} bytes before stalling`);
    // Past the budget, sends are refused; the peer doesn't drain, so
    // drainTimeout cuts it.
    for (let i = 0; i < 64 && session!.state === "open"; i++) {
      session!.send(chunk);
    }
    await until(() => reasons.length === 1, 10000, "the cut");
    assert.deepEqual(reasons, ["slow consumer"]);
  } finally {
    conn.close();
    await http.shutdown();
  }
});

Deno.test("upgradeWebSocket: heartbeatInterval is Deno's own ping: a quiet peer that answers stays, one that doesn't is closed", async () => {
  const sessions = new SessionManager<unknown, string, string>();
  const opened: Session<unknown, string, string>[] = [];
  const reasons = new Map<number, string>();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const up = upgradeWebSocket(request, sessions, {
        heartbeatInterval: 1000,
        onClose: (s, reason) => void reasons.set(s.id, reason),
      });
      up.opened.then((s) => s && opened.push(s));
      return up.response;
    },
  );
  // Deno's client answers pings by itself, as browsers do.
  const ws = new WebSocket(`ws://127.0.0.1:${http.addr.port}/`);
  const closed = new Promise<void>((r) => (ws.onclose = () => r()));
  await within(new Promise((r) => (ws.onopen = r)), 5000, "open");
  await until(() => opened.length === 1);
  const answering = opened[0]!;
  // A raw client that never answers a ping.
  const mute = await RawWebSocket.open(http.addr.port, "/");
  try {
    await until(() => opened.length === 2);
    const silent = opened[1]!;
    // Both stay quiet; the one that can't answer is closed.
    await until(() => reasons.has(silent.id), 8000, "the mute peer closed");
    await delay(1500);
    assert.equal(reasons.has(answering.id), false, "the answering peer stays");
    assert.equal(answering.state, "open");
  } finally {
    ws.close();
    await within(closed, 5000, "client close");
    await mute.ended();
    await until(() => sessions.size === 0);
  }
});
