// The transports by the name the `transport` option gives: the server and
// the client look theirs up here instead of branching on it.
import type { Transport } from "./transport.ts";
import { tcp } from "./tcp.ts";
import { unix } from "./unix.ts";
import { websocket } from "./websocket.ts";

/** The name of a transport, as the `transport` option gives it. */
export type TransportName = "tcp" | "unix" | "websocket";

/**
 * Every transport, by name. Each takes the server's or the client's whole
 * options (already validated) and reads its own keys. Package-internal.
 */
// deno-lint-ignore no-explicit-any
export const transports: Readonly<Record<TransportName, Transport<any, any>>> =
  { tcp, unix, websocket };

/** The transport `options` name; TCP when none is given. */
export function transportOf(
  options: { readonly transport?: TransportName | undefined },
  // deno-lint-ignore no-explicit-any
): Transport<any, any> {
  return transports[options.transport ?? "tcp"];
}

/**
 * `options` with the transport a `url` implies ("websocket") when none is
 * given. A url beside another transport is left to the validator, which
 * names both.
 */
export function withTransport<
  T extends { transport?: string | undefined; url?: unknown },
>(options: T): T {
  if (options === null || typeof options !== "object") return options;
  if (options.url === undefined || options.transport !== undefined) {
    return options;
  }
  return { ...options, transport: "websocket" };
}
