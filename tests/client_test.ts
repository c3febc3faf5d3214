import assert from "node:assert/strict";
import { connect, lengthPrefixed, listen } from "../mod.ts";
import { portOf, until, within } from "./_util.ts";

Deno.test("connect() speaks the server's codec in both directions", async () => {
  await using server = listen({
    hostname: "127.0.0.1",
    port: 0,
    codec: lengthPrefixed(),
    onMessage: (session, payload) => void session.send(payload.reverse()),
  });
  const replies: number[][] = [];
  await using client = await connect({
    port: portOf(server.addr),
    codec: lengthPrefixed(),
    onMessage: (_session, payload) => void replies.push([...payload]),
  });
  assert.equal(client.send(new Uint8Array([1, 2, 3])), true);
  assert.equal(client.send(new Uint8Array([])), true);
  await until(() => replies.length === 2);
  assert.deepEqual(replies, [[3, 2, 1], []]);
});

Deno.test("connect() without reconnect is closed for good when the server closes it", async () => {
  await using server = listen({ hostname: "127.0.0.1", port: 0 });
  const client = await connect({ port: portOf(server.addr) });
  await until(() => server.sessions.size === 1);
  for (const session of server.sessions) await session.close("bye");
  assert.equal(await within(client.closed, 5000, "client closed"), "eof");
  assert.equal(client.session, undefined);
  assert.equal(client.send("nobody listens"), false);
});

Deno.test("connect() rejects when the first connection fails and reconnect is off", async () => {
  const server = listen({ hostname: "127.0.0.1", port: 0 });
  const port = portOf(server.addr);
  await server.close();
  await assert.rejects(() => connect({ port }), Deno.errors.ConnectionRefused);
});

Deno.test("connect() with reconnect comes back after the server restarts, and gives up after maxAttempts", async () => {
  let server = listen({ hostname: "127.0.0.1", port: 0 });
  const port = portOf(server.addr);
  let opens = 0;
  const client = await connect({
    port,
    reconnect: { initialDelay: 10, maxDelay: 40, maxAttempts: 1000 },
    onOpen: () => void opens++,
  });
  await until(() => opens === 1);
  await server.close();
  // Back on the same port: the client finds it again.
  server = listen({ hostname: "127.0.0.1", port });
  await until(() => opens === 2 && server.sessions.size === 1, 5000);
  assert.ok(client.session !== undefined);
  await client.close("done");
  assert.equal(await client.closed, "done");
  await server.close();

  // Nobody listening and 3 attempts allowed: the client gives up.
  const gone = listen({ hostname: "127.0.0.1", port: 0 });
  const gonePort = portOf(gone.addr);
  const doomed = await connect({
    port: gonePort,
    reconnect: { initialDelay: 5, maxAttempts: 3 },
  });
  await gone.close();
  // The last reason is the lost connection's; what matters is that it ends.
  assert.equal(typeof await within(doomed.closed, 5000, "give up"), "string");
  assert.equal(doomed.session, undefined);
});
