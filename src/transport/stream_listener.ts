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
