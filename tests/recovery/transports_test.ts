// Recovery (issue 17) over TLS (a resume redoes the TLS handshake under the
// same session), over WebSocket (a resume redoes the upgrade; hello and
// answer are WebSocket messages) and over a Unix socket: every message
// arrives once and in order, for any codec.
import assert from "node:assert/strict";
import { connect, lengthPrefixed, listen } from "../../mod.ts";
import { testServer } from "../_server.ts";
import { delay, until } from "../_util.ts";
import { testCertificates } from "../_tls_certs.ts";
import { Proxy } from "./_proxy.ts";

const { ca, ...pair } = await testCertificates();

Deno.test("over TLS, a cut connection resumes with a new handshake", async () => {
  const resumed: number[] = [];
  await using server = testServer({
    tls: pair,
    codec: lengthPrefixed(),
    recovery: { onResume: (session) => resumed.push(session.id) },
    onOpen: (session) => void session.join("feed"),
  });
  await using proxy = new Proxy(server.addr.port);
  const got: number[] = [];
  const client = await connect({
    port: proxy.port,
    tls: { caCerts: [ca] },
    codec: lengthPrefixed(),
    recovery: true,
    onMessage: (_session, frame) => {
      got.push(new DataView(frame.buffer, frame.byteOffset).getUint32(0));
    },
  });
  try {
    await until(() => server.sessions.size === 1, 2000, "the session");
    const producer = (async () => {
      for (let n = 1; n <= 300; n++) {
        const frame = new Uint8Array(1000);
        new DataView(frame.buffer).setUint32(0, n);
        server.sessions.broadcast(frame, { room: "feed" });
        await delay(1);
      }
    })();
    await until(() => got.length >= 30, 5000, "the first frames");
    proxy.cut([...proxy.pairs][0]!);
    await producer;
    await until(() => got.length >= 300, 5000, "every frame");
    assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i + 1));
    assert.equal(client.resumes, 1);
    assert.equal(resumed.length, 1);
  } finally {
    await client.close();
  }
});

Deno.test("over a Unix socket, recovery opens and speaks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "microsocket_recovery_" });
  const path = `${dir}/s.sock`;
  try {
    await using _server = listen({
      transport: "unix",
      path,
      recovery: { window: 1000 },
      onMessage: (session, line) => void session.send(`echo ${line}`),
    });
    await using client = await connect({
      transport: "unix",
      path,
      recovery: true,
    });
    client.send("hi");
    for await (const line of client) {
      assert.equal(line, "echo hi");
      break;
    }
    assert.equal(client.recovered, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("over WebSocket, connect() resumes with a new upgrade; a plain WebSocket is unchanged", async () => {
  const resumed: number[] = [];
  await using server = testServer({
    transport: "websocket",
    recovery: { onResume: (session) => resumed.push(session.id) },
    onOpen: (session) => void session.join("feed"),
    onMessage: (session, line) => void session.send(`echo ${line}`),
  });
  await using proxy = new Proxy(server.addr.port);
  const got: number[] = [];
  const client = await connect({
    url: `ws://127.0.0.1:${proxy.port}/`,
    recovery: true,
    onMessage: (_session, line) => void got.push(Number(line)),
  });
  // A browser-like client that does not ask: no preamble, no delay.
  const plain = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  const echoed = new Promise<string>((resolve) => {
    plain.onmessage = (event) => resolve(String(event.data));
  });
  const plainClosed = new Promise((resolve) => (plain.onclose = resolve));
  try {
    await new Promise((resolve) => (plain.onopen = resolve));
    plain.send("hi");
    assert.equal(await echoed, "echo hi");
    await until(() => server.sessions.size === 2, 2000, "both sessions");
    const producer = (async () => {
      for (let n = 1; n <= 300; n++) {
        server.sessions.broadcast(String(n), { room: "feed" });
        await delay(1);
      }
    })();
    await until(() => got.length >= 30, 5000, "the first messages");
    proxy.cut([...proxy.pairs][0]!);
    await producer;
    await until(() => got.length >= 300, 5000, "every message");
    assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i + 1));
    assert.equal(client.resumes, 1);
    assert.equal(resumed.length, 1);
  } finally {
    plain.close();
    await plainClosed;
    await client.close();
  }
});
