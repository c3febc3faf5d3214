// TLS on real loopback sockets: `listen({ tls })` and `connect({ tls })`
// with a throwaway CA and certificate made by `openssl` for this run, the same
// Session API as over TCP, and peers that fail or stall the handshake.
import assert from "node:assert/strict";
import {
  CloseReason,
  connect,
  lengthPrefixed,
  lines,
  listen,
} from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import { delay, LineReader, until, utf8, within } from "../_util.ts";
import { testCertificates } from "../_tls_certs.ts";

const { ca, ...pair } = await testCertificates();

Deno.test("listen({ tls }) and connect({ tls }) speak a codec both ways with the same Session API", async () => {
  const reasons: string[] = [];
  await using server = testServer({
    tls: pair,
    codec: lines(),
    onOpen: (session) => void server.sessions.join(session, "lobby"),
    onMessage: (session, line) => {
      server.sessions.broadcast(`${session.id}: ${line}`, { room: "lobby" });
    },
    onClose: (_session, reason) => void reasons.push(reason),
  });
  const got: string[] = [];
  const client = await connect({
    port: portOf(server.addr),
    tls: { caCerts: [ca] },
    codec: lines(),
    onMessage: (_session, line) => void got.push(line),
  });
  assert.ok(client.send("hello over tls"));
  await until(() => got.length === 1);
  assert.equal(got[0], "1: hello over tls");
  const session = server.sessions.get(1)!;
  assert.equal(session.remoteAddr.transport, "tcp");
  assert.ok(server.sessions.members("lobby").has(session));
  assert.ok(session.bytesIn > 0 && session.framesIn === 1);
  await client.close();
  await until(() => reasons.length === 1);
  assert.equal(reasons[0], CloseReason.Eof);
  assert.equal(server.sessions.size, 0);
});

Deno.test("A 4 MiB frame crosses TLS intact in both directions", async () => {
  const MAX = 4 << 20;
  await using server = testServer({
    tls: pair,
    codec: lengthPrefixed({ maxFrameBytes: MAX }),
    outboundBudget: 2 * MAX,
    onMessage: (session, payload) => void session.send(payload),
  });
  const payload = new Uint8Array(MAX);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
  const echoed = Promise.withResolvers<Uint8Array>();
  await using client = await connect({
    port: portOf(server.addr),
    tls: { caCerts: [ca] },
    codec: lengthPrefixed({ maxFrameBytes: MAX }),
    outboundBudget: 2 * MAX,
    onMessage: (_session, message) => echoed.resolve(message),
  });
  client.send(payload);
  const back = await within(echoed.promise, 15000, "the echo");
  assert.equal(back.length, MAX);
  assert.ok(back.every((byte, i) => byte === payload[i]), "bytes intact");
});

Deno.test("A client that does not trust the certificate is refused; the server goes on serving others", async () => {
  const reasons: string[] = [];
  await using server = testServer({
    tls: pair,
    codec: lines(),
    onMessage: (session, line) => void session.send(`echo ${line}`),
    onClose: (_session, reason) => void reasons.push(reason),
    onError: () => {},
  });
  const port = portOf(server.addr);
  // Without caCerts the system roots don't know our certificate: connect()
  // rejects with the TLS error and never runs onOpen.
  let opened = false;
  await assert.rejects(
    () =>
      connect({
        port,
        tls: true,
        codec: lines(),
        onOpen: () => void (opened = true),
      }),
    (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /certificate|UnknownIssuer/i);
      return true;
    },
  );
  assert.equal(opened, false);
  await until(() => reasons.length === 1, 5000, "the server-side close");
  assert.notEqual(reasons[0], CloseReason.Closed);
  const got = Promise.withResolvers<string>();
  await using good = await connect({
    port,
    tls: { caCerts: [ca] },
    codec: lines(),
    onMessage: (_session, line) => got.resolve(line),
  });
  good.send("still serving");
  assert.equal(await within(got.promise, 5000), "echo still serving");
});

Deno.test("A file path where PEM text is expected is a TypeError that says so", async () => {
  const path = "./certs/server.pem";
  assert.throws(
    () => listen({ port: 0, tls: { cert: path, key: pair.key } }),
    (error: unknown) =>
      error instanceof TypeError &&
      /^tls\.cert .*file path/.test(error.message),
  );
  assert.throws(
    () => listen({ port: 0, tls: { cert: pair.cert, key: "key.pem" } }),
    /^TypeError: tls\.key .*file path/,
  );
  await assert.rejects(
    () => connect({ port: 1, tls: { caCerts: ["/etc/ssl/ca.pem"] } }),
    (error: unknown) =>
      error instanceof TypeError &&
      /^tls\.caCerts\[0\] .*file path/.test(error.message),
  );
});

Deno.test("Plain TCP garbage sent to a TLS port closes only that session", async () => {
  const closes: { reason: string; error: unknown }[] = [];
  await using server = testServer({
    tls: pair,
    codec: lines(),
    onMessage: (session, line) => void session.send(`echo ${line}`),
    onClose: (session, reason) =>
      void closes.push({ reason, error: session.closeError }),
    onError: () => {},
  });
  const port = portOf(server.addr);
  const got = Promise.withResolvers<string>();
  await using good = await connect({
    port,
    tls: { caCerts: [ca] },
    codec: lines(),
    onMessage: (_session, line) => got.resolve(line),
  });
  using raw = await dial(port);
  await raw.write(utf8("GET / HTTP/1.0\r\n\r\n")); // not a TLS ClientHello
  await until(() => closes.length === 1, 5000, "the garbage session's close");
  assert.equal(closes[0]!.reason, CloseReason.Error);
  assert.ok(closes[0]!.error instanceof Error);
  good.send("unaffected");
  assert.equal(await within(got.promise, 5000), "echo unaffected");
});

Deno.test("idleTimeout reaps a TCP peer that never starts its TLS handshake", async () => {
  const reasons: string[] = [];
  await using server = testServer({
    tls: pair,
    codec: lines(),
    idleTimeout: 300,
    onClose: (_session, reason) => void reasons.push(reason),
  });
  using raw = await dial(server);
  await until(() => reasons.length === 1, 5000, "the idle close");
  assert.equal(reasons[0], CloseReason.IdleTimeout);
  raw.close();
});

Deno.test("Server.shutdown() over TLS delivers a queued backlog to a reading client that keeps talking", async () => {
  const server = testServer({
    tls: pair,
    codec: lines(),
    outboundBudget: 32 << 20,
  });
  const expected = 20000;
  let received = 0;
  let inOrder = true;
  const client = await connect({
    port: portOf(server.addr),
    tls: { caCerts: [ca] },
    codec: lines(),
    onMessage: async (session, line) => {
      if (line !== `line ${received} ${"x".repeat(200)}`) inOrder = false;
      received++;
      session.send("ack"); // keeps talking while the server shuts down
      if (received % 1000 === 0) await delay(1);
    },
  });
  await until(() => server.sessions.size === 1);
  const session = [...server.sessions][0]!;
  for (let i = 0; i < expected; i++) {
    session.send(`line ${i} ${"x".repeat(200)}`);
  }
  await server.shutdown({ timeout: 15000 });
  await within(client.closed, 15000, "the client's close");
  assert.equal(received, expected);
  assert.ok(inOrder);
  await client.close();
});

Deno.test("LineReader helper works over a raw TLS connection too", async () => {
  // A raw Deno.connectTls peer, to show the wire is plain TLS.
  await using server = testServer({
    tls: pair,
    codec: lines(),
    onOpen: (session) => void session.send("welcome"),
  });
  using conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: portOf(server.addr),
    caCerts: [ca],
  });
  assert.equal(await new LineReader(conn).next(5000), "welcome");
});
