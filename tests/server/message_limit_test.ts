// One message-size limit per server: `maxMessageBytes` of listen() and
// connect() bounds each message on every transport (TCP, TLS, Unix as over
// WebSocket). The limit in force is the smaller of it and the codec's own,
// and the error names the option that set it.
import assert from "node:assert/strict";
import {
  type Codec,
  connect,
  type Decoder,
  json,
  lengthPrefixed,
  lines,
  listen,
  MessageTooBigError,
  microSocket,
  type Session,
} from "../../mod.ts";
import { readToEnd, utf8, within } from "../_util.ts";
import { dial, portOf } from "../_server.ts";
import { testCertificates } from "../_tls_certs.ts";

interface Closed {
  reason: string;
  error: unknown;
}

// A TCP server of `codec` that records how its one session closed.
function recordingServer<In, Out>(
  codec: Codec<In, Out>,
  maxMessageBytes: number | undefined,
) {
  const closed = Promise.withResolvers<Closed>();
  const errors: unknown[] = [];
  const server = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec,
    ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }),
    onError: (error) => void errors.push(error),
    onClose: (session: Session<unknown, In, Out>, reason) =>
      closed.resolve({ reason, error: session.closeError }),
  });
  return { server, closed: closed.promise, errors };
}

async function sendAndClose(port: number, bytes: Uint8Array): Promise<void> {
  const conn = await dial(port);
  try {
    await conn.write(bytes);
    await readToEnd(conn, 5000);
  } finally {
    conn.close();
  }
}

function assertTooBig(
  closed: Closed,
  option: string,
  limit: number,
): void {
  assert.equal(closed.reason, "frame too large");
  assert.ok(
    closed.error instanceof MessageTooBigError,
    `closeError is ${closed.error}`,
  );
  assert.equal(closed.error.option, option);
  assert.equal(closed.error.limit, limit);
}

Deno.test("maxMessageBytes bounds a TCP lines() server: a 1,000-byte line closes the peer with a MessageTooBigError naming it", async () => {
  const { server, closed, errors } = recordingServer(lines(), 100);
  await using _ = server;
  await sendAndClose(portOf(server.addr), utf8("x".repeat(1000) + "\n"));
  const result = await within(closed, 5000, "close");
  assertTooBig(result, "maxMessageBytes", 100);
  assert.match(
    String((result.error as Error).message),
    /maxMessageBytes \(100\)/,
  );
  assert.ok(errors.some((e) => e instanceof MessageTooBigError));
});

Deno.test("maxMessageBytes lets a TCP message at the limit through", async () => {
  const got = Promise.withResolvers<string>();
  await using server = listen({
    hostname: "127.0.0.1",
    port: 0,
    maxMessageBytes: 100,
    onMessage: (_session, line) => got.resolve(line as string),
  });
  using conn = await dial(portOf(server.addr));
  await conn.write(utf8("y".repeat(100) + "\n"));
  assert.equal(await within(got.promise, 5000, "line"), "y".repeat(100));
});

Deno.test("the codec's own limit applies on TCP when it is the smaller one, named by the codec's option", async () => {
  const { server, closed } = recordingServer(lines({ maxLineBytes: 50 }), 100);
  await using _ = server;
  await sendAndClose(portOf(server.addr), utf8("x".repeat(80) + "\n"));
  assertTooBig(await within(closed, 5000, "close"), "maxLineBytes", 50);
});

Deno.test("maxMessageBytes bounds every built-in framing on TCP, before the payload is stored", async () => {
  const header = (length: number) =>
    new Uint8Array([
      length >>> 24,
      (length >>> 16) & 255,
      (length >>> 8) & 255,
      length & 255,
    ]);
  const microHeader = (length: number) =>
    new Uint8Array([...utf8("Header"), ...header(length)]);
  // deno-lint-ignore no-explicit-any
  const cases: [string, Codec<any, any>, Uint8Array][] = [
    ["lengthPrefixed", lengthPrefixed(), header(5000)],
    ["json lines", json(), utf8(JSON.stringify("z".repeat(300)) + "\n")],
    ["json length", json({ framing: "length" }), header(5000)],
    ["microSocket", microSocket(), microHeader(5000)],
  ];
  for (const [what, codec, bytes] of cases) {
    const { server, closed } = recordingServer(codec, 200);
    await using _ = server;
    await sendAndClose(portOf(server.addr), bytes);
    const result = await within(closed, 5000, `${what} close`);
    assertTooBig(result, "maxMessageBytes", 200);
  }
});

Deno.test("connect() takes maxMessageBytes on TCP too: a server's 1,000-byte line closes the client session", async () => {
  await using server = listen({
    hostname: "127.0.0.1",
    port: 0,
    onOpen: (session) => void session.send("x".repeat(1000)),
  });
  const closed = Promise.withResolvers<Closed>();
  await using _client = await connect({
    hostname: "127.0.0.1",
    port: portOf(server.addr),
    maxMessageBytes: 100,
    onError: () => {},
    onClose: (session, reason) =>
      closed.resolve({ reason, error: session.closeError }),
  });
  assertTooBig(
    await within(closed.promise, 5000, "close"),
    "maxMessageBytes",
    100,
  );
});

Deno.test("maxMessageBytes on TCP with a codec that takes no limit is a TypeError naming both", () => {
  const custom: Codec<number> = {
    name: "uint8",
    encode: (n) => new Uint8Array([n]),
    decoder(): Decoder<number> {
      return {
        buffered: 0,
        decode(chunk, emit) {
          for (const byte of chunk) emit(byte);
        },
      };
    },
  };
  assert.throws(
    () =>
      listen({
        hostname: "127.0.0.1",
        port: 0,
        codec: custom,
        maxMessageBytes: 10,
      }),
    (error: unknown) =>
      error instanceof TypeError && /maxMessageBytes/.test(error.message) &&
      /uint8/.test(error.message),
  );
  // Without it, the codec is its own bound: no error.
  const server = listen({ hostname: "127.0.0.1", port: 0, codec: custom });
  server.close();
});

Deno.test("maxMessageBytes is checked like any limit on every transport", () => {
  for (const transport of ["tcp", "unix"] as const) {
    assert.throws(
      () =>
        listen(
          {
            transport,
            ...(transport === "unix" ? { path: "/nonexistent/x.sock" } : {
              hostname: "127.0.0.1",
              port: 0,
            }),
            maxMessageBytes: -1,
          } as Parameters<typeof listen>[0],
        ),
      (error: unknown) =>
        error instanceof RangeError && /maxMessageBytes/.test(error.message),
    );
  }
});

Deno.test("maxMessageBytes bounds a Unix socket server", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/limit.sock`;
  try {
    const closed = Promise.withResolvers<Closed>();
    await using _server = listen({
      transport: "unix",
      path,
      maxMessageBytes: 100,
      onError: () => {},
      onClose: (session, reason) =>
        closed.resolve({ reason, error: session.closeError }),
    });
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      await conn.write(utf8("x".repeat(1000) + "\n"));
      assertTooBig(
        await within(closed.promise, 5000, "close"),
        "maxMessageBytes",
        100,
      );
    } finally {
      conn.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("maxMessageBytes bounds a TLS server", async () => {
  const { cert, key, ca } = await testCertificates();
  const closed = Promise.withResolvers<Closed>();
  await using server = listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert, key },
    maxMessageBytes: 100,
    onError: () => {},
    onClose: (session, reason) =>
      closed.resolve({ reason, error: session.closeError }),
  });
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: portOf(server.addr),
    caCerts: [ca],
  });
  try {
    await conn.write(utf8("x".repeat(1000) + "\n"));
    assertTooBig(
      await within(closed.promise, 5000, "close"),
      "maxMessageBytes",
      100,
    );
  } finally {
    conn.close();
  }
});

Deno.test("unset, maxMessageBytes leaves the codec's own limit in force over WebSocket as on TCP: a 2 MiB lengthPrefixed() takes a 1.5 MiB message", async () => {
  const codec = () => lengthPrefixed({ maxFrameBytes: 2 * 1024 * 1024 });
  await using server = listen({
    transport: "websocket",
    hostname: "127.0.0.1",
    port: 0,
    codec: codec(),
    onMessage: (session, message: Uint8Array) =>
      void session.send(message.subarray(0, 4)),
  });
  const echoed = Promise.withResolvers<Uint8Array>();
  await using client = await connect({
    url: `ws://127.0.0.1:${portOf(server.addr)}/`,
    codec: codec(),
    onMessage: (_session, message: Uint8Array) => echoed.resolve(message),
  });
  const big = new Uint8Array(1.5 * 1024 * 1024).fill(7);
  assert.equal(client.send(big), true);
  assert.deepEqual(
    await within(echoed.promise, 10_000),
    new Uint8Array([7, 7, 7, 7]),
  );
});
