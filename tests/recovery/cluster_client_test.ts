// The client's side of cluster recovery (issue 17, src/recovery/
// _cluster_wire.ts): a server whose answer carries `pos= epoch=` puts a
// position record before some messages; the client strips each one (never
// delivered, never counted), takes its position once the message after it
// has arrived whole, and resumes with `pos= epoch= sent=`. The servers here
// are written by hand on real sockets, so every byte of the wire is the
// test's own: records split at every byte, back to back, a record at the
// very end of a connection, and a record's bytes inside a binary payload
// (not at a frame start: data, not a record).
import assert from "node:assert/strict";
import { connect, DecodeError, lengthPrefixed, lines } from "../../mod.ts";
import { connect as connectBrowser } from "../../src/browser/microsocket.js";
import {
  positionRecord,
  webSocketPositionRecord,
} from "../../src/recovery/_cluster_wire.ts";
import {
  MAGIC,
  MAX_LINE,
  preamble,
  readPreamble,
  readWebSocketLine,
  webSocketLine,
} from "../../src/recovery/_preamble.ts";
import {
  type Committed,
  PositionDecoder,
} from "../../src/recovery/_positions.ts";
import { acceptKey } from "../../src/websocket/_handshake.ts";
import { delay, readBytes, until, utf8, within } from "../_util.ts";
import { testCertificates } from "../_tls_certs.ts";

const TOKEN = "abcdefghijklmnopqrstuv";
const TOKEN2 = "ABCDEFGHIJKLMNOPQRSTUV";
const TOKEN3 = "zyxwvutsrqponmlkjihgfe";

const { ca, ...pair } = await testCertificates();

// A listener (on 127.0.0.1, port 0, unless given one) whose accepts are
// bounded.
class RawServer implements AsyncDisposable {
  readonly listener: Deno.Listener;
  readonly conns = new Set<Deno.Conn>();

  constructor(
    listener: Deno.Listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  ) {
    this.listener = listener;
  }

  get port(): number {
    return (this.listener.addr as Deno.NetAddr).port;
  }

  async accept(): Promise<Deno.Conn> {
    const conn = await within(this.listener.accept(), 5000, "a connection");
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    this.conns.add(conn);
    return conn;
  }

  cut(conn: Deno.Conn): void {
    this.conns.delete(conn);
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    for (const conn of this.conns) this.cut(conn);
    this.listener.close();
    return Promise.resolve();
  }
}

// Reads the client's preamble line (MAGIC "…\n").
async function readHello(conn: Deno.Conn): Promise<string> {
  const read = await readPreamble(conn, performance.now() + 5000, true);
  assert.ok(read.line !== undefined, "a preamble");
  return read.line;
}

// Reads `count` bytes (after `initial`) as text.
async function readText(
  conn: Deno.Conn,
  initial: Uint8Array,
  count: number,
): Promise<string> {
  const bytes = concat(
    initial,
    await readBytes(conn, Math.max(0, count - initial.length)),
  );
  return new TextDecoder().decode(bytes);
}

// Writes each piece on its own, with a pause between, so that the client
// reads them apart (a record split where one piece ends).
async function writePieces(
  conn: Deno.Conn,
  pieces: Uint8Array[],
): Promise<void> {
  for (const piece of pieces) {
    for (let at = 0; at < piece.length;) {
      at += await conn.write(piece.subarray(at));
    }
    await delay(2);
  }
}

function concat(...parts: (Uint8Array | string)[]): Uint8Array {
  const bytes = parts.map((part) =>
    typeof part === "string" ? utf8(part) : part
  );
  const out = new Uint8Array(bytes.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of bytes) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// The stream of the first connection, as pieces written apart, and the
// messages and last position it leaves the client with. `message` encodes
// one message and `record` one position record in the transport's form;
// `cutAtEveryByte` splits a piece at each of its bytes.
function firstStream(
  message: (text: string) => Uint8Array,
  record: (position: number) => Uint8Array,
): { pieces: Uint8Array[]; messages: string[]; last: number } {
  const pieces: Uint8Array[] = [];
  const messages: string[] = [];
  const say = (text: string) => {
    messages.push(text);
    return message(text);
  };
  // A record inside a chunk, between two messages.
  pieces.push(concat(say("m0"), record(11), say("m1")));
  // A record split at every byte (the message after it in the second part).
  const split = record(1000);
  for (let k = 1; k < split.length; k++) {
    const bytes = record(1000 + k);
    pieces.push(bytes.subarray(0, k));
    pieces.push(concat(bytes.subarray(k), say(`s${k}`)));
  }
  // Two records back to back: the second one names the message after them.
  pieces.push(concat(record(2000), record(2001), say("m2")));
  // Several records and messages in one chunk.
  pieces.push(
    concat(say("m3"), record(2002), say("m4"), record(2003), say("m5")),
  );
  // A message split, then a record split, in the same reads.
  const m7 = say("m6");
  const r = record(2004);
  pieces.push(m7.subarray(0, 1));
  pieces.push(concat(m7.subarray(1), r.subarray(0, 3)));
  pieces.push(concat(r.subarray(3), say("m7")));
  // A record at the very end, and half of another: never committed.
  pieces.push(concat(record(3000), record(3001).subarray(0, 5)));
  return { pieces, messages, last: 2004 };
}

// The byte-stream case over TCP, TLS or a Unix socket: the same client
// code (a ResumableConn and the decoder wrap) under each.
async function streamCase(transport: "tcp" | "tls" | "unix"): Promise<void> {
  const dir = transport === "unix"
    ? await Deno.makeTempDir({ prefix: "microsocket_cluster_" })
    : undefined;
  const path = `${dir}/s.sock`;
  await using server = new RawServer(
    transport === "tls"
      ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...pair })
      : transport === "unix"
      ? Deno.listen({ transport: "unix", path })
      : undefined,
  );
  const got: string[] = [];
  const opened = (async () => {
    const conn = await server.accept();
    assert.equal(await readHello(conn), "new");
    await conn.write(preamble(`ok 0 7 ${TOKEN} 0 5000 pos=10 epoch=e1`));
    return conn;
  })();
  const onMessage = (_session: unknown, line: string) => void got.push(line);
  const client = await connect(
    transport === "unix"
      ? { transport: "unix", path, recovery: true, onMessage }
      : transport === "tls"
      ? { port: server.port, tls: { caCerts: [ca] }, recovery: true, onMessage }
      : { port: server.port, recovery: true, onMessage },
  );
  try {
    const conn = await opened;
    assert.ok(client.send("a"));
    assert.ok(client.send("b"));
    const line = (text: string) => utf8(text + "\n");
    const { pieces, messages, last } = firstStream(line, positionRecord);
    await writePieces(conn, pieces);
    await until(() => got.length >= messages.length, 5000, "every message");
    await delay(20);
    assert.deepEqual(got, messages);
    // The cut: the client comes back with its last committed position.
    server.cut(conn);
    const second = await server.accept();
    // Redialing, so detached: what is sent now isn't in `sent=`, and goes
    // out again once resumed.
    assert.ok(client.send("d"));
    const hello = await readPreamble(second, performance.now() + 5000, true);
    assert.equal(
      hello.line,
      `resume 7 ${TOKEN} ${messages.length} pos=${last} epoch=e1 sent=2`,
    );
    // Resumed: the answer's position is the client's from now on.
    await second.write(preamble(`ok 1 7 ${TOKEN2} 2 5000 pos=2100 epoch=e1`));
    await until(() => client.resumes === 1, 5000, "the resume");
    assert.equal(await readText(second, hello.rest, 2), "d\n");
    assert.ok(client.send("c"));
    assert.equal(await readText(second, new Uint8Array(0), 2), "c\n");
    server.cut(second);
    const third = await server.accept();
    assert.equal(
      await readHello(third),
      `resume 7 ${TOKEN2} ${messages.length} pos=2100 epoch=e1 sent=4`,
    );
    await third.write(preamble(`ok 1 7 ${TOKEN3} 4 5000 pos=2100 epoch=e1`));
    await until(() => client.resumes === 2, 5000, "the second resume");
    await writePieces(third, [concat(positionRecord(5000), line("m8"))]);
    await until(() => got.length === messages.length + 1, 5000, "m8");
    assert.equal(got.at(-1), "m8");
    server.cut(third);
    const fourth = await server.accept();
    assert.equal(
      await readHello(fourth),
      `resume 7 ${TOKEN3} ${messages.length + 1} pos=5000 epoch=e1 sent=4`,
    );
    await fourth.write(preamble("fail gone"));
    server.cut(fourth);
    assert.equal(
      await within(client.closed, 5000, "the end"),
      "recovery failed",
    );
  } finally {
    await client.close();
    if (dir !== undefined) await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("connect() in cluster mode strips pos records, commits each on the next message, and resumes with pos, epoch and sent", async () => {
  await streamCase("tcp");
});

Deno.test("connect() in cluster mode over TLS: the same", async () => {
  await streamCase("tls");
});

Deno.test("connect() in cluster mode over a Unix socket: the same", async () => {
  await streamCase("unix");
});

Deno.test("connect() in cluster mode: a record's bytes inside a binary frame are data, not a record", async () => {
  await using server = new RawServer();
  const got: Uint8Array[] = [];
  const opened = (async () => {
    const conn = await server.accept();
    assert.equal(await readHello(conn), "new");
    await conn.write(preamble(`ok 0 3 ${TOKEN} 0 5000 pos=10 epoch=e1`));
    return conn;
  })();
  const client = await connect({
    port: server.port,
    codec: lengthPrefixed(),
    recovery: true,
    onMessage: (_session, frame) => void got.push(frame.slice()),
  });
  try {
    const conn = await opened;
    const frame = (payload: Uint8Array) => {
      const out = new Uint8Array(4 + payload.length);
      new DataView(out.buffer).setUint32(0, payload.length);
      out.set(payload, 4);
      return out;
    };
    // Payloads that hold a whole record, a record's start, and 0xFF bytes.
    const payloads = [
      positionRecord(999),
      concat(new Uint8Array([0xff, 0xff]), positionRecord(998)),
      positionRecord(997).subarray(0, 9),
      new Uint8Array([1, 0xff, 2, 0xff]),
    ];
    const bytes = concat(
      frame(payloads[0]!),
      positionRecord(20),
      frame(payloads[1]!),
      frame(payloads[2]!),
      positionRecord(21),
      frame(payloads[3]!),
    );
    // One byte per read: every split of the stream.
    await writePieces(
      conn,
      Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)),
    );
    await until(() => got.length === 4, 5000, "the frames");
    assert.deepEqual(got, payloads);
    server.cut(conn);
    const second = await server.accept();
    assert.equal(
      await readHello(second),
      `resume 3 ${TOKEN} 4 pos=21 epoch=e1 sent=0`,
    );
    await second.write(preamble("fail gone"));
    server.cut(second);
    await within(client.closed, 5000, "the end");
  } finally {
    await client.close();
  }
});

Deno.test("connect() without cluster words: the resume hello is unchanged", async () => {
  await using server = new RawServer();
  const got: string[] = [];
  const opened = (async () => {
    const conn = await server.accept();
    assert.equal(await readHello(conn), "new");
    await conn.write(preamble(`ok 0 5 ${TOKEN} 0 5000`));
    return conn;
  })();
  const client = await connect({
    port: server.port,
    recovery: true,
    onMessage: (_session, line) => void got.push(line),
  });
  try {
    const conn = await opened;
    assert.ok(client.send("a"));
    await writePieces(conn, [utf8("m0\nm1\n")]);
    await until(() => got.length === 2, 5000, "the messages");
    server.cut(conn);
    const second = await server.accept();
    assert.equal(await readHello(second), `resume 5 ${TOKEN} 2`);
    await second.write(preamble("fail gone"));
    server.cut(second);
    await within(client.closed, 5000, "the end");
  } finally {
    await client.close();
  }
});

// A WebSocket server by hand: the upgrade, then frames as the test writes
// them (unmasked), and the client's hello read as a frame.
async function upgrade(conn: Deno.Conn): Promise<Uint8Array> {
  let got: Uint8Array = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  const text = new TextDecoder();
  for (;;) {
    const n = await within(conn.read(buffer), 5000, "the upgrade");
    assert.ok(n !== null, "an upgrade request");
    got = concat(got, buffer.subarray(0, n));
    const end = text.decode(got).indexOf("\r\n\r\n");
    if (end === -1) continue;
    const head = text.decode(got.subarray(0, end));
    assert.match(head, /microsocket-recovery=1/);
    const key = /sec-websocket-key: *([^\r\n]+)/i.exec(head)?.[1];
    assert.ok(key !== undefined, "a key");
    await conn.write(utf8(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Accept: ${await acceptKey(
          key.trim(),
        )}\r\n\r\n`,
    ));
    return got.subarray(end + 4);
  }
}

async function readWebSocketHello(conn: Deno.Conn): Promise<string> {
  return (await readWebSocketHelloAndRest(conn)).line;
}

async function readWebSocketHelloAndRest(
  conn: Deno.Conn,
): Promise<{ line: string; rest: Uint8Array }> {
  const rest = await upgrade(conn);
  const read = await readWebSocketLine(conn, performance.now() + 5000, rest);
  assert.ok(read.line !== undefined, "a hello");
  return { line: read.line, rest: read.rest };
}

// Reads a client's (masked) text frame of under 126 bytes, after `initial`.
async function readClientText(
  conn: Deno.Conn,
  initial: Uint8Array,
): Promise<string> {
  let got = initial;
  if (got.length < 2) got = concat(got, await readBytes(conn, 2 - got.length));
  const length = got[1]! & 0x7f;
  assert.equal(got[0], 0x81);
  assert.ok(length < 126 && (got[1]! & 0x80) !== 0);
  const size = 6 + length;
  if (got.length < size) {
    got = concat(got, await readBytes(conn, size - got.length));
  }
  const text = got.slice(6, size).map((byte, i) => byte ^ got[2 + (i & 3)]!);
  return new TextDecoder().decode(text);
}

// An unmasked text frame (payload under 126 bytes).
function textFrame(text: string): Uint8Array {
  const payload = utf8(text);
  assert.ok(payload.length < 126);
  return concat(new Uint8Array([0x81, payload.length]), payload);
}

Deno.test("connect() over WebSocket in cluster mode strips pos records and resumes with pos, epoch and sent", async () => {
  await using server = new RawServer();
  const got: string[] = [];
  const opened = (async () => {
    const conn = await server.accept();
    assert.equal(await readWebSocketHello(conn), "new");
    await conn.write(
      webSocketLine(`ok 0 9 ${TOKEN} 0 5000 pos=10 epoch=e1`, false),
    );
    return conn;
  })();
  const client = await connect({
    url: `ws://127.0.0.1:${server.port}/`,
    recovery: true,
    onMessage: (_session, line) => void got.push(line),
  });
  try {
    const conn = await opened;
    assert.ok(client.send("a"));
    const { pieces, messages, last } = firstStream(
      textFrame,
      webSocketPositionRecord,
    );
    await writePieces(conn, pieces);
    await until(() => got.length >= messages.length, 5000, "every message");
    await delay(20);
    assert.deepEqual(got, messages);
    server.cut(conn);
    const second = await server.accept();
    assert.equal(
      await readWebSocketHello(second),
      `resume 9 ${TOKEN} ${messages.length} pos=${last} epoch=e1 sent=1`,
    );
    await second.write(
      webSocketLine(`ok 1 9 ${TOKEN2} 1 5000 pos=${last} epoch=e1`, false),
    );
    await until(() => client.resumes === 1, 5000, "the resume");
    await writePieces(second, [
      concat(webSocketPositionRecord(5000), textFrame("m8")),
    ]);
    await until(() => got.length === messages.length + 1, 5000, "m8");
    server.cut(second);
    const third = await server.accept();
    assert.equal(
      await readWebSocketHello(third),
      `resume 9 ${TOKEN2} ${messages.length + 1} pos=5000 epoch=e1 sent=1`,
    );
    await third.write(webSocketLine("fail gone", false));
    server.cut(third);
    await within(client.closed, 5000, "the end");
  } finally {
    await client.close();
  }
});

Deno.test("browser module in cluster mode strips pos records and resumes with pos, epoch and sent", async () => {
  await using server = new RawServer();
  const got: string[] = [];
  const opens: boolean[] = [];
  const socket = connectBrowser(`ws://127.0.0.1:${server.port}/`, {
    initialDelay: 10,
    maxDelay: 50,
    onOpen: ({ recovered }) => void opens.push(recovered),
    onMessage: (data) => void got.push(String(data)),
  });
  try {
    const conn = await server.accept();
    assert.equal(await readWebSocketHello(conn), "new");
    await conn.write(
      webSocketLine(`ok 0 4 ${TOKEN} 0 5000 pos=10 epoch=e1`, false),
    );
    await until(() => opens.length === 1, 5000, "the session");
    assert.ok(socket.send("a"));
    assert.ok(socket.send("b"));
    const { pieces, messages, last } = firstStream(
      textFrame,
      webSocketPositionRecord,
    );
    await writePieces(conn, pieces);
    await until(() => got.length >= messages.length, 5000, "every message");
    await delay(20);
    assert.deepEqual(got, messages);
    server.cut(conn);
    const second = await server.accept();
    // Away: not in `sent=`, sent again once resumed.
    assert.ok(socket.send("d"));
    const hello = await readWebSocketHelloAndRest(second);
    assert.equal(
      hello.line,
      `resume 4 ${TOKEN} ${messages.length} pos=${last} epoch=e1 sent=2`,
    );
    await second.write(
      webSocketLine(`ok 1 4 ${TOKEN2} 2 5000 pos=${last} epoch=e1`, false),
    );
    await until(() => opens.length === 2, 5000, "the resume");
    assert.deepEqual(opens, [false, true]);
    assert.equal(await readClientText(second, hello.rest), "d");
    await writePieces(second, [
      concat(webSocketPositionRecord(5000), textFrame("m8")),
      webSocketPositionRecord(5001),
    ]);
    await until(() => got.length === messages.length + 1, 5000, "m8");
    server.cut(second);
    const third = await server.accept();
    assert.equal(
      await readWebSocketHello(third),
      `resume 4 ${TOKEN2} ${messages.length + 1} pos=5000 epoch=e1 sent=3`,
    );
    await third.write(
      webSocketLine(`ok 1 4 ${TOKEN3} 3 5000 pos=5000 epoch=e1`, false),
    );
    await until(() => opens.length === 3, 5000, "the second resume");
    assert.deepEqual(got.slice(messages.length), ["m8"]);
  } finally {
    socket.close();
    for (const conn of [...server.conns]) server.cut(conn);
    // Let the page's socket see the end.
    await delay(50);
  }
});

Deno.test("browser module without cluster words: the resume hello is unchanged", async () => {
  await using server = new RawServer();
  const got: string[] = [];
  const opens: boolean[] = [];
  const socket = connectBrowser(`ws://127.0.0.1:${server.port}/`, {
    initialDelay: 10,
    maxDelay: 50,
    onOpen: ({ recovered }) => void opens.push(recovered),
    onMessage: (data) => void got.push(String(data)),
  });
  try {
    const conn = await server.accept();
    assert.equal(await readWebSocketHello(conn), "new");
    await conn.write(webSocketLine(`ok 0 4 ${TOKEN} 0 5000`, false));
    await until(() => opens.length === 1, 5000, "the session");
    assert.ok(socket.send("a"));
    await writePieces(conn, [concat(textFrame("m0"), textFrame("m1"))]);
    await until(() => got.length === 2, 5000, "the messages");
    server.cut(conn);
    const second = await server.accept();
    assert.equal(await readWebSocketHello(second), `resume 4 ${TOKEN} 2`);
    await second.write(webSocketLine(`ok 1 4 ${TOKEN2} 1 5000`, false));
    await until(() => opens.length === 2, 5000, "the resume");
  } finally {
    socket.close();
    for (const conn of [...server.conns]) server.cut(conn);
    await delay(50);
  }
});

// The byte-stream wrap on its own, fed every split of a whole stream: the
// socket tests above split where writes land; this one splits everywhere.
Deno.test("PositionDecoder: every split of a stream gives the same messages and position", () => {
  const stream = concat(
    "m0\n",
    positionRecord(11),
    "m1\n",
    positionRecord(12),
    positionRecord(13),
    "m2\nm3\n",
    MAGIC,
    "other kind, reserved x=1\n",
    "m4\n",
    positionRecord(14),
  );
  const expected = ["m0", "m1", "m2", "m3", "m4"];
  for (let a = 0; a <= stream.length; a++) {
    for (let b = a; b <= stream.length; b++) {
      const at: Committed = { position: 10, epoch: "e1" };
      const decoder = new PositionDecoder(lines().decoder(), at);
      const got: string[] = [];
      const positions: number[] = [];
      const emit = (line: string) => {
        got.push(line);
        positions.push(at.position);
      };
      for (const [from, to] of [[0, a], [a, b], [b, stream.length]]) {
        if (to! > from!) decoder.decode(stream.slice(from, to), emit);
      }
      assert.deepEqual(got, expected, `split at ${a}, ${b}`);
      // Each position is taken with the message after its record, not
      // before; the last record has no message yet.
      assert.deepEqual(positions, [10, 11, 13, 13, 13], `split at ${a}, ${b}`);
      assert.equal(decoder.buffered, 0);
    }
  }
});

Deno.test("PositionDecoder: a malformed pos record is a decode error; a long line too", () => {
  for (const line of ["pos x", "pos 01", "pos ", "pos -1", "pos 1x"]) {
    const decoder = new PositionDecoder(lines().decoder(), {
      position: 0,
      epoch: "e",
    });
    assert.throws(
      () => decoder.decode(concat(MAGIC, line + "\n"), () => {}),
      DecodeError,
      line,
    );
  }
  const decoder = new PositionDecoder(lines().decoder(), {
    position: 0,
    epoch: "e",
  });
  assert.throws(
    () => decoder.decode(concat(MAGIC, "x".repeat(MAX_LINE + 1)), () => {}),
    DecodeError,
  );
});

Deno.test("PositionDecoder: 0xFF that doesn't open MAGIC at a frame start goes to the codec", () => {
  // A codec of single bytes, whose frames may start with 0xFF.
  const bytes = {
    buffered: 0,
    decode(chunk: Uint8Array, emit: (byte: number) => void) {
      for (const byte of chunk) emit(byte);
    },
  };
  const at: Committed = { position: 0, epoch: "e" };
  const decoder = new PositionDecoder(bytes, at);
  const got: number[] = [];
  const input = concat(
    new Uint8Array([0xff, 0x00, 0x6d, 7]),
    positionRecord(5),
  );
  for (let i = 0; i < input.length; i++) {
    decoder.decode(input.slice(i, i + 1), (byte) => got.push(byte));
  }
  decoder.decode(new Uint8Array([9]), (byte) => got.push(byte));
  assert.deepEqual(got, [0xff, 0x00, 0x6d, 7, 9]);
  assert.equal(at.position, 5);
});
