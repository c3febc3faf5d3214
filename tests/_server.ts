// The server fixture: a server on loopback at a port the system picks, and
// raw clients of it. Tests that test listen()'s own address handling call
// listen() themselves.
import {
  listen,
  type ListenOptions,
  type Server,
  type ServerOptions,
  type TcpListenOptions,
  type WebSocketListenOptions,
} from "../mod.ts";

/**
 * Listen options without the address: the fixture always binds 127.0.0.1
 * on port 0, so passing either is a type error.
 */
type Loopback<T> = Omit<T, "hostname" | "port"> & {
  hostname?: never;
  port?: never;
};

/** The options of a TCP (or TLS) {@linkcode testServer}. */
export type TestServerOptions<Data = unknown, In = string, Out = In> =
  & Loopback<TcpListenOptions>
  & ServerOptions<Data, In, Out>;

/**
 * Starts a server on 127.0.0.1 at a port the system picks: `listen()` with
 * `{ hostname: "127.0.0.1", port: 0, ...options }`. Dispose it (`await
 * using`) or close it; read the port from `server.addr.port`.
 *
 * @example A lines echo server and a raw client
 * ```ts
 * import assert from "node:assert/strict";
 * import { dial, testServer } from "./_server.ts";
 *
 * await using server = testServer({
 *   onMessage: (session, line) => void session.send(`echo ${line}`),
 * });
 * assert.equal(server.addr.hostname, "127.0.0.1");
 * using conn = await dial(server);
 * await conn.write(new TextEncoder().encode("hi\n"));
 * const buffer = new Uint8Array(16);
 * const n = await conn.read(buffer);
 * assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), "echo hi\n");
 * ```
 */
export function testServer<Data = unknown, In = string, Out = In>(
  options?: TestServerOptions<Data, In, Out>,
): Server<Data, In, Out, Deno.NetAddr>;
/** Starts a WebSocket server on 127.0.0.1 at a port the system picks. */
export function testServer<Data = unknown, In = string, Out = In>(
  options:
    & Loopback<WebSocketListenOptions>
    & ServerOptions<Data, In, Out>,
): Server<Data, In, Out, Deno.NetAddr>;
export function testServer<Data = unknown, In = string, Out = In>(
  options: object = {},
): Server<Data, In, Out, Deno.NetAddr> {
  // The overloads above checked the options; a TCP or WebSocket server's
  // address is always a Deno.NetAddr.
  return listen({
    hostname: "127.0.0.1",
    port: 0,
    ...options,
  } as ListenOptions<Data, In, Out>) as Server<Data, In, Out, Deno.NetAddr>;
}

/** The port of a server bound on TCP (or of its `addr`). */
export function portOf(
  target: Deno.Addr | { readonly addr: Deno.Addr },
): number {
  const addr = "transport" in target ? target : target.addr;
  if (addr.transport !== "tcp") {
    throw new TypeError(`Expected a TCP address, got "${addr.transport}"`);
  }
  return addr.port;
}

/** Connects a raw TCP client to 127.0.0.1 at `target`'s port. */
export function dial(
  target: number | { readonly addr: Deno.Addr },
): Promise<Deno.TcpConn> {
  const port = typeof target === "number" ? target : portOf(target);
  return Deno.connect({ hostname: "127.0.0.1", port });
}
