// The transport seam (src/transport/): each transport behind one Listener
// and dial interface, looked up by name; the one openSession() that turns
// what they yield into a session; the WebSocket listener's connections
// carrying their upgrade request and prelude; and the WebSocket-only
// counters under `server.stats().websocket`.
import assert from "node:assert/strict";
import { connect, lines, listen, webSocketRequest } from "../../mod.ts";
import { transports } from "../../src/transport/transports.ts";
import type { Attempt } from "../../src/transport/transport.ts";
import {
  type WebSocketConnection,
  WebSocketListener,
} from "../../src/transport/websocket.ts";
import { openSession } from "../../src/transport/open_session.ts";
import type { Session } from "../../src/session/session.ts";
import { encodeFrame, Opcode } from "../../src/websocket/_frame_writer.ts";
import { exchange, upgradeRequest } from "../websocket/_ws_raw.ts";
import { until, utf8, within } from "../_util.ts";
import { dial, portOf } from "../_server.ts";

function newAttempt(): Attempt {
  return { conn: undefined, abandoned: false };
}

Deno.test("transports: TCP and Unix listeners yield connections that are ready at once, and dial them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [name, where] of [
        ["tcp", { hostname: "127.0.0.1", port: 0 }],
        ["unix", { path: `${dir}/t.sock` }],
      ] as const
    ) {
      const transport = transports[name];
      const listener = transport.listen(where, (error) => {
        throw error;
      });
      try {
        const port = listener.addr.transport === "tcp"
          ? portOf(listener.addr)
          : undefined;
        const dialed = transport.dial(
          port === undefined ? where : { hostname: "127.0.0.1", port },
          newAttempt(),
        );
        const raw = await listener.accept();
        const accepted = listener.open(raw);
        assert.ok(!(accepted instanceof Promise), `${name}: ready at once`);
        assert.equal(accepted.prelude, undefined);
        const client = await dialed;
        assert.equal(client.prelude, undefined);
        await client.conn.write(utf8("ping\n"));
        const buffer = new Uint8Array(8);
        const n = await accepted.conn.read(buffer);
        assert.equal(
          new TextDecoder().decode(buffer.subarray(0, n!)),
          "ping\n",
        );
        client.conn.close();
        accepted.conn.close();
      } finally {
        listener.close();
        await listener.settled();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("transports: the WebSocket listener yields the upgrade request and the frames read with the head", async () => {
  const listener = new WebSocketListener(
    { transport: "websocket", hostname: "127.0.0.1", port: 0, path: "/ws" },
    (error) => {
      throw error;
    },
  );
  const peer = await dial(portOf(listener.addr));
  try {
    const frame = encodeFrame(Opcode.text, "hi", true, true);
    const request = upgradeRequest("/ws?room=den");
    // Head and first frame in one write: the handshake reads both.
    const bytes = new Uint8Array(request.length + frame.length);
    bytes.set(request);
    bytes.set(frame, request.length);
    await peer.write(bytes);
    const raw = await listener.accept();
    const opened = await within(
      listener.open(raw),
      5000,
      "the handshake",
    ) as WebSocketConnection;
    assert.ok(opened !== undefined);
    assert.equal(opened.request?.target, "/ws?room=den");
    assert.equal(opened.request?.path, "/ws");
    assert.equal(opened.request?.headers.get("host"), "127.0.0.1");
    assert.deepEqual(opened.prelude, frame);
    opened.conn.close();
    assert.deepEqual(listener.stats(), {
      websocket: { handshakeRefused: 0, handshakeFailed: 0, httpRequests: 0 },
    });
  } finally {
    peer.close();
    listener.close();
    await listener.settled();
  }
});

Deno.test("transports: a refused WebSocket connection is answered with its status, a TCP one is closed", async () => {
  const ws = transports.websocket.listen(
    { transport: "websocket", hostname: "127.0.0.1", port: 0 },
    () => {},
  );
  const tcp = transports.tcp.listen(
    { hostname: "127.0.0.1", port: 0 },
    () => {},
  );
  try {
    const answer = exchange(portOf(ws.addr), upgradeRequest());
    ws.refuse(await ws.accept(), 429, "Too many connections from your address");
    assert.match(await answer, /^HTTP\/1\.1 429 /);
    const closed = exchange(portOf(tcp.addr), utf8("hello\n"));
    tcp.refuse(await tcp.accept(), 503, "Server full");
    assert.equal(await closed, "");
  } finally {
    ws.close();
    tcp.close();
    await ws.settled();
    await tcp.settled();
  }
});

Deno.test("openSession(): the session gets the prelude first, and a data() that throws is reported and closes it", async () => {
  const listener = transports.tcp.listen(
    { hostname: "127.0.0.1", port: 0 },
    () => {},
  );
  const peer = await dial(portOf(listener.addr));
  try {
    const raw = await listener.accept();
    const errors: unknown[] = [];
    const messages: string[] = [];
    const enrolled: Session<number, string, string>[] = [];
    const { session, dataFailed } = openSession<number, string, string>(
      { conn: raw, prelude: utf8("first\n") },
      {
        codec: lines(),
        onMessage: (_session, line) => void messages.push(line),
        onError: (error) => void errors.push(error),
      },
      { id: 7, enrol: (s) => void enrolled.push(s), data: () => 42 },
    );
    assert.equal(dataFailed, false);
    assert.equal(session.id, 7);
    assert.equal(session.data, 42);
    assert.deepEqual(enrolled, [session]);
    await peer.write(utf8("second\n"));
    await until(() => messages.length === 2);
    assert.deepEqual(messages, ["first", "second"]);
    await session.close();

    const peer2 = await dial(portOf(listener.addr));
    const raw2 = await listener.accept();
    const boom = new Error("boom");
    const failed = openSession<number, string, string>(
      { conn: raw2, prelude: undefined },
      { codec: lines(), onError: (error) => void errors.push(error) },
      {
        data: () => {
          throw boom;
        },
      },
    );
    assert.equal(failed.dataFailed, true);
    assert.equal(failed.dataError, boom);
    assert.equal(await failed.session.closed, "error");
    assert.deepEqual(errors, [boom]);
    peer2.close();
  } finally {
    peer.close();
    listener.close();
  }
});

Deno.test("Server.stats(): WebSocket handshake counters appear under `websocket`, only for a WebSocket server", async () => {
  await using tcp = listen({ hostname: "127.0.0.1", port: 0 });
  assert.equal(tcp.stats().websocket, undefined);
  assert.equal("handshakeRefused" in tcp.stats().rejected, false);
  assert.equal("httpRequests" in tcp.stats(), false);

  await using ws = listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    path: "/ws",
  });
  const port = portOf(ws.addr);
  // A plain request (404), an upgrade to the wrong path (404: refused).
  await exchange(port, utf8("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await exchange(port, upgradeRequest("/elsewhere"));
  await until(() => ws.stats().websocket?.handshakeRefused === 1);
  assert.deepEqual(ws.stats().websocket, {
    handshakeRefused: 1,
    handshakeFailed: 0,
    httpRequests: 1,
  });
});

Deno.test("webSocketRequest(): set on sessions a WebSocket server opened, not on a client's or a TCP server's", async () => {
  let seen: unknown = "unset";
  let tcpSeen: unknown = "unset";
  await using ws = listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    onOpen: (session) => void (seen = webSocketRequest(session)?.target),
  });
  await using tcp = listen({
    hostname: "127.0.0.1",
    port: 0,
    onOpen: (session) => void (tcpSeen = webSocketRequest(session)),
  });
  await using client = await connect({
    url: `ws://127.0.0.1:${portOf(ws.addr)}/chat?x=1`,
  });
  await until(() => seen !== "unset");
  assert.equal(seen, "/chat?x=1");
  assert.equal(webSocketRequest(client.session!), undefined);
  const peer = await dial(portOf(tcp.addr));
  try {
    await until(() => tcpSeen !== "unset");
    assert.equal(tcpSeen, undefined);
  } finally {
    peer.close();
  }
});
