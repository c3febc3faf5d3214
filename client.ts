/**
 * The client side: {@linkcode connect} opens a connection with the same
 * codecs and session API as the server, with optional TLS, reconnection
 * with jittered exponential backoff, a bounded buffer for sends made while
 * reconnecting, a connect timeout, TCP keep-alive, and messages as an async
 * iterable.
 *
 * Everything here is also exported by the package root.
 *
 * @example Reconnecting, and reading messages with `for await`
 * ```ts
 * import { connect } from "@x/microsocket/client";
 * import { listen } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onMessage: (session, line) => {
 *     session.send(`echo ${line}`);
 *     void session.close("done");
 *   },
 * });
 * const client = await connect({
 *   port: server.addr.port,
 *   connectTimeout: 2000,
 *   onOpen: (session) => void session.send("hi"),
 * });
 * const got: string[] = [];
 * for await (const line of client) got.push(line);
 * assert.deepEqual(got, ["echo hi"]);
 * ```
 *
 * @module
 */
export * from "./src/client/options.ts";
export * from "./src/client/client.ts";
export type { ClientRecoveryOptions } from "./src/recovery/client_recovery.ts";
export { CloseReason } from "./src/close_reason.ts";
