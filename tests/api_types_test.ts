// Type-level and small run-time checks of the public API's shape: server.addr
// typed by the listen options, Server.closed (and its deprecated alias),
// CloseReason as constants and as a literal union. `deno check tests/`
// fails when an `@ts-expect-error` below stops meeting an error.
import assert from "node:assert/strict";
import {
  type ClientCloseReason,
  CloseReason,
  connect,
  listen,
  type ServerOptions,
} from "../mod.ts";

Deno.test("server.addr is a Deno.NetAddr for TCP options and a Deno.UnixAddr for a socket path", async () => {
  await using tcp = listen({ hostname: "127.0.0.1", port: 0 });
  const port: number = tcp.addr.port; // no cast
  const hostname: string = tcp.addr.hostname;
  assert.ok(port > 0);
  assert.equal(hostname, "127.0.0.1");
  const dir = await Deno.makeTempDir();
  try {
    await using unix = listen({ transport: "unix", path: `${dir}/s.sock` });
    const path: string = unix.addr.path;
    assert.equal(path, `${dir}/s.sock`);
    // @ts-expect-error: a Unix socket has no port
    void unix.addr.port;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Options whose transport is decided at run time: the general type.
  const policy: ServerOptions<unknown, string, string> = {};
  const where = Math.random() < 2
    ? { hostname: "127.0.0.1", port: 0 }
    : { transport: "unix" as const, path: "/nowhere" };
  await using either = listen({ ...where, ...policy });
  // @ts-expect-error: may be a Unix address
  void either.addr.port;
  assert.equal(either.addr.transport, "tcp");
});

Deno.test("Server.closed resolves after shutdown; finished is the same promise", async () => {
  const server = listen({ hostname: "127.0.0.1", port: 0 });
  assert.equal(server.finished, server.closed);
  await server.shutdown();
  await server.closed;
});

Deno.test("CloseReason is a constants object and a literal union of its values", async () => {
  const reason: CloseReason = CloseReason.SlowConsumer;
  // @ts-expect-error: not a reason the library gives
  const wrong: CloseReason = "slow";
  void wrong;
  assert.equal(reason, "slow consumer");
  await using server = listen({ hostname: "127.0.0.1", port: 0 });
  const client = await connect({ port: server.addr.port });
  await client.close("bye");
  const closed: ClientCloseReason = await client.closed;
  assert.equal(closed, "bye");
});
