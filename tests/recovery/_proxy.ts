// A TCP relay on 127.0.0.1 between clients and a server, which a test can
// cut: closing both sockets of a pair drops a client's connection as a
// network failure would (the client and the server each see it end).

/** One client connection through the relay, and its server side. */
export interface ProxiedPair {
  readonly client: Deno.TcpConn;
  readonly server: Deno.TcpConn;
  /** Settles when both directions have stopped. */
  readonly done: Promise<void>;
}

/** A relay; dispose it to stop it and close every pair. */
export class Proxy {
  readonly #listener: Deno.TcpListener;
  readonly #targets: () => readonly number[];
  #next = 0;
  readonly pairs: Set<ProxiedPair> = new Set();
  readonly #loop: Promise<void>;
  /** Connections relayed so far. */
  accepted = 0;
  /** While set, new connections are closed at once (the network is down). */
  blocked = false;

  /**
   * @param target The server's port, or the live servers' ports (a front
   * door: each connection goes to the next one that accepts it).
   */
  constructor(target: number | (() => readonly number[])) {
    this.#targets = typeof target === "number" ? () => [target] : target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#loop = this.#accept();
  }

  /** The port clients dial. */
  get port(): number {
    return this.#listener.addr.port;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      this.accepted++;
      if (this.blocked) {
        client.close();
        continue;
      }
      let server: Deno.TcpConn | undefined;
      const ports = this.#targets();
      for (let i = 0; i < ports.length && server === undefined; i++) {
        const port = ports[this.#next++ % ports.length]!;
        try {
          server = await Deno.connect({ hostname: "127.0.0.1", port });
        } catch {
          // Down: the next one.
        }
      }
      if (server === undefined) {
        client.close();
        continue;
      }
      const pair: ProxiedPair = {
        client,
        server,
        done: Promise.all([pipe(client, server), pipe(server, client)]).then(
          () => {
            this.pairs.delete(pair);
          },
        ),
      };
      this.pairs.add(pair);
    }
  }

  /** Cuts `pair` (both sides), as a failing network would. */
  cut(pair: ProxiedPair): void {
    for (const conn of [pair.client, pair.server]) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }

  /** Stops accepting, cuts every pair and waits for them. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#loop;
    const pairs = [...this.pairs];
    for (const pair of pairs) this.cut(pair);
    await Promise.all(pairs.map((pair) => pair.done));
  }
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      let offset = 0;
      while (offset < n) {
        offset += await to.write(buffer.subarray(offset, n));
      }
    }
  } catch {
    // Cut.
  }
  for (const conn of [from, to]) {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
}
