// Unix domain sockets: a byte stream at a path, with no address, TLS or
// socket options.
import type { Transport } from "./transport.ts";
import { streamCodec, StreamListener } from "./stream_listener.ts";
import { streamConnection } from "./connection.ts";

/** Where a Unix socket listens or is dialed. */
export interface UnixOptions {
  path?: string | undefined;
}

/** The Unix domain socket transport. */
export const unix: Transport<UnixOptions, UnixOptions> = {
  codec: streamCodec,
  listen: (options) =>
    new StreamListener(
      Deno.listen({ transport: "unix", path: options.path! }),
    ),
  dial: async (options) =>
    streamConnection(
      await Deno.connect({ transport: "unix", path: options.path! }),
    ),
};
