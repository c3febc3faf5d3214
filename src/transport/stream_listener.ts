// A listener of byte streams (TCP, TLS, Unix): an accepted connection is
// ready for a session at once, and a connection over a limit is just
// closed (its peer speaks no protocol we could answer in).
import type { Listener } from "./transport.ts";
import type { TransportStats } from "./stats.ts";
import {
  closeQuietly,
  type Connection,
  streamConnection,
} from "./connection.ts";
import type { Codec } from "../codec/codec.ts";
import { boundCodec } from "../codec/_kind.ts";

const NO_STATS: TransportStats = Object.freeze({});

/** Drives a `Deno.Listener` as a {@linkcode Listener}. Package-internal. */
export class StreamListener implements Listener {
  readonly addr: Deno.Addr;
  readonly #listener: Deno.Listener;

  constructor(listener: Deno.Listener) {
    this.#listener = listener;
    this.addr = listener.addr;
  }

  accept(): Promise<Deno.Conn> {
    return this.#listener.accept();
  }

  open(conn: Deno.Conn): Connection {
    return streamConnection(conn);
  }

  refuse(conn: Deno.Conn): void {
    closeQuietly(conn);
  }

  close(): void {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
  }

  settled(): Promise<void> {
    return Promise.resolve();
  }

  stats(): TransportStats {
    return NO_STATS;
  }
}

/**
 * The codec of a byte-stream transport: the codec itself, or, with
 * `maxMessageBytes`, the codec with its decoders held to that limit (the
 * smaller of it and the codec's own applies). Unset, the codec's own limit
 * stands: a codec configured for larger frames is not cut down by a default
 * it never asked for (a built-in one is at most the WebSocket default).
 */
export function streamCodec<In, Out>(
  codec: Codec<In, Out>,
  _role: "server" | "client",
  maxMessageBytes: number | undefined,
): Codec<In, Out> {
  return maxMessageBytes === undefined
    ? codec
    : boundCodec(codec, maxMessageBytes, "maxMessageBytes");
}
