/**
 * Message routing: a key taken from each message (by the session's codec, or
 * your own `key` function) picks a handler, wrapped in before/after
 * middleware that may veto a message, with a fallback for unknown keys.
 * Handlers are typed per route: for a union discriminated by `type`,
 * `on("chat", …)` receives only the chat member.
 *
 * Everything here is also exported by the package root.
 *
 * @example Typed routes, incoming and outgoing messages apart
 * ```ts
 * import { Router } from "@x/microsocket/router";
 * import { json } from "@x/microsocket/codec";
 * import { listen } from "@x/microsocket";
 *
 * type ClientMsg = { type: "ping"; n: number } | { type: "say"; text: string };
 * type ServerMsg = { type: "pong"; n: number };
 *
 * const router = new Router<ClientMsg, ServerMsg>()
 *   .on("ping", (session, message) => session.send({ type: "pong", n: message.n }))
 *   .on("say", (_session, message) => console.log(message.text));
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: json<ClientMsg, ServerMsg>(),
 *   onMessage: router.handler, // unknown types reach onError
 * });
 * ```
 *
 * @module
 */
export * from "./src/router.ts";
export { RouteNotFoundError } from "./src/errors.ts";
