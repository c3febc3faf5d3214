// The end of a WebSocket connection's input (issue 16, A9 over WebSocket):
// a peer whose TCP stream ends in the middle of a message (a cut-off frame
// header or payload, or a fragmented message without its final frame) closes
// the session with "truncated frame", as the TCP codecs do, not with "eof";
// the close code that applies is 1006 (RFC 6455 section 7.1.5: the
// connection ended without a close frame), read back by peerCloseCode() on
// both the listen() transport and upgradeWebSocket() (Deno's native
// WebSocket), where Deno gives it.
import assert from "node:assert/strict";
import {
  CloseReason,
  peerCloseCode,
  peerCloseReason,
  type Server,
  SessionManager,
  upgradeWebSocket,
} from "../../mod.ts";
import { encodeFrame, Opcode } from "../../src/websocket/_frame_writer.ts";
import { RawWebSocket } from "./_ws_raw.ts";
import { testServer } from "../_server.ts";
import { until, within } from "../_util.ts";

// deno-lint-ignore no-explicit-any
type AnyServer = Server<any, any, any, Deno.NetAddr>;

interface Closed {
  reason: string;
  code: number | undefined;
  peerReason: string | undefined;
}

function wsServer(closed: Closed[], messages: string[] = []): AnyServer {
  return testServer({
    transport: "websocket",
    path: "/ws",
    onMessage: (_session, message: string) => void messages.push(message),
    onError: () => {},
    onClose: (session, reason) =>
      void closed.push({
        reason,
        code: peerCloseCode(session),
        peerReason: peerCloseReason(session),
      }),
  }) as AnyServer;
}

// Sends `bytes` (after one whole message), then ends the write side, and
// returns how the server closed the session and what the raw client read.
async function cutAfter(bytes: Uint8Array): Promise<{
  closed: Closed;
  closeCode: number | undefined;
  closeReason: string | undefined;
  messages: string[];
  stats: Record<string, number>;
}> {
  const closed: Closed[] = [];
  const messages: string[] = [];
  await using server = wsServer(closed, messages);
  const ws = await RawWebSocket.open(server.addr.port);
  try {
    await ws.frame(Opcode.text, "whole");
    await ws.write(bytes);
    await ws.conn.closeWrite();
    await until(() => closed.length === 1, 5000, "the session to close");
    const outcome = await ws.ended();
    return {
      closed: closed[0]!,
      closeCode: outcome.closeCode,
      closeReason: outcome.closeReason,
      messages,
      stats: server.stats().closedByReason,
    };
  } finally {
    await ws.dispose();
  }
}

Deno.test("websocket: input that ends inside a frame header closes with truncated frame", async () => {
  // A masked text frame's first header byte and part of its length.
  const result = await cutAfter(new Uint8Array([0x81]));
  assert.deepEqual(result.messages, ["whole"]);
  assert.equal(result.closed.reason, CloseReason.TruncatedFrame);
  assert.deepEqual(result.stats, { [CloseReason.TruncatedFrame]: 1 });
});

Deno.test("websocket: input that ends inside a frame payload closes with truncated frame, 1002 sent, 1006 recorded", async () => {
  const frame = encodeFrame(Opcode.text, "hello world", true, true);
  const result = await cutAfter(frame.subarray(0, frame.length - 4));
  assert.deepEqual(result.messages, ["whole"]);
  assert.equal(result.closed.reason, CloseReason.TruncatedFrame);
  // The peer sent no close frame: the connection's close code is 1006,
  // which is never sent; what is sent (a half-closed peer may still read)
  // is a protocol error naming the rule.
  assert.equal(result.closed.code, 1006);
  assert.equal(result.closed.peerReason, "");
  assert.equal(result.closeCode, 1002);
  assert.equal(result.closeReason, "truncated frame");
});

Deno.test("websocket: input that ends inside a fragmented message closes with truncated frame", async () => {
  // A whole first fragment (FIN clear), then nothing.
  const result = await cutAfter(encodeFrame(Opcode.text, "hel", false, true));
  assert.deepEqual(result.messages, ["whole"]);
  assert.equal(result.closed.reason, CloseReason.TruncatedFrame);
  assert.equal(result.closeCode, 1002);
  // An empty first fragment holds no bytes, and still opens a message.
  const empty = await cutAfter(encodeFrame(Opcode.binary, "", false, true));
  assert.equal(empty.closed.reason, CloseReason.TruncatedFrame);
});

Deno.test("websocket: input that ends between messages closes with eof, 1006 recorded", async () => {
  const result = await cutAfter(new Uint8Array(0));
  assert.deepEqual(result.messages, ["whole"]);
  assert.equal(result.closed.reason, CloseReason.Eof);
  assert.equal(result.closed.code, 1006);
  assert.equal(result.closeCode, 1000);
});

Deno.test("websocket: a peer's close frame is recorded, not 1006", async () => {
  const closed: Closed[] = [];
  await using server = wsServer(closed);
  const ws = await RawWebSocket.open(server.addr.port);
  try {
    const payload = new Uint8Array([0x0f, 0xa1, 0x62, 0x79, 0x65]); // 4001 "bye"
    await ws.frame(Opcode.close, payload);
    await until(() => closed.length === 1, 5000, "the session to close");
    assert.deepEqual(closed[0], {
      reason: CloseReason.Eof,
      code: 4001,
      peerReason: "bye",
    });
    assert.equal((await ws.ended()).closeCode, 4001);
  } finally {
    await ws.dispose();
  }
});

Deno.test("upgradeWebSocket: peerCloseCode() and peerCloseReason() give the code and reason of the peer's close", async () => {
  const closed: Closed[] = [];
  const sessions = new SessionManager();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      upgradeWebSocket(request, sessions, {
        onClose: (session, reason) =>
          void closed.push({
            reason,
            code: peerCloseCode(session),
            peerReason: peerCloseReason(session),
          }),
      }).response,
  );
  const ws = new WebSocket(`ws://127.0.0.1:${http.addr.port}/`);
  const done = new Promise<number>((r) => (ws.onclose = (e) => r(e.code)));
  await within(new Promise((r) => (ws.onopen = r)), 5000, "open");
  await until(() => sessions.size === 1, 5000, "the session");
  ws.close(4001, "bye");
  assert.equal(await within(done, 5000, "the close"), 4001);
  await until(() => closed.length === 1, 5000, "the session to close");
  assert.deepEqual(closed[0], {
    reason: CloseReason.Eof,
    code: 4001,
    peerReason: "bye",
  });
});

Deno.test("upgradeWebSocket: a session the server closes has no peer close code", async () => {
  const closed: Closed[] = [];
  const sessions = new SessionManager();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      upgradeWebSocket(request, sessions, {
        onOpen: (session) => void session.close("kicked"),
        onClose: (session, reason) =>
          void closed.push({
            reason,
            code: peerCloseCode(session),
            peerReason: peerCloseReason(session),
          }),
      }).response,
  );
  const ws = new WebSocket(`ws://127.0.0.1:${http.addr.port}/`);
  const done = new Promise<CloseEvent>((r) => (ws.onclose = r));
  const event = await within(done, 5000, "the close");
  assert.equal(event.reason, "kicked");
  await until(() => closed.length === 1, 5000, "the session to close");
  // As on listen(): the peer's echo of our close is not its own close.
  assert.deepEqual(closed[0], {
    reason: "kicked",
    code: undefined,
    peerReason: undefined,
  });
});

Deno.test("upgradeWebSocket: a peer gone without a close frame reads 1006", async () => {
  const closed: Closed[] = [];
  const sessions = new SessionManager();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      upgradeWebSocket(request, sessions, {
        onClose: (session, reason) =>
          void closed.push({
            reason,
            code: peerCloseCode(session),
            peerReason: peerCloseReason(session),
          }),
      }).response,
  );
  const ws = await RawWebSocket.open(http.addr.port, "/");
  try {
    await until(() => sessions.size === 1, 5000, "the session");
    ws.close();
    await until(() => closed.length === 1, 5000, "the session to close");
    assert.equal(closed[0]!.code, 1006);
    assert.equal(closed[0]!.peerReason, "");
  } finally {
    await ws.dispose();
  }
});
