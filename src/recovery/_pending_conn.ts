// Package-internal: what the server's recovery hands a plain client's
// connection when sniffing its first byte started a read that is still
// pending (see server_recovery.ts).
import { MAGIC } from "./_preamble.ts";

function startsLikeMagic(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, MAGIC.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== MAGIC[i]) return false;
  return n > 0;
}

// A connection whose first read was started by the sniffing and is still
// pending: its result is the first thing read().
/** Package-internal: see the comment above. */
export class PendingConn {
  readonly #conn: Deno.Conn;
  #pending: Promise<number | null> | undefined;
  readonly #buffer: Uint8Array;
  #left: Uint8Array | undefined;

  constructor(
    conn: Deno.Conn,
    pending: Promise<number | null>,
    buffer: Uint8Array,
  ) {
    this.#conn = conn;
    this.#pending = pending;
    this.#buffer = buffer;
  }

  get remoteAddr(): Deno.Addr {
    return this.#conn.remoteAddr;
  }

  get localAddr(): Deno.Addr {
    return this.#conn.localAddr;
  }

  setNoDelay(noDelay = true): void {
    if ("setNoDelay" in this.#conn) {
      (this.#conn as Deno.TcpConn).setNoDelay(noDelay);
    }
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      const n = await pending;
      if (n === null) return null;
      this.#left = this.#buffer.subarray(0, n);
      // A recovery client's hello that came after helloTimeout (a loaded
      // client or network): never let the codec take it for a message. The
      // client is refused and dials again.
      if (startsLikeMagic(this.#left)) {
        throw new Deno.errors.InvalidData("A late recovery hello");
      }
    }
    const left = this.#left;
    if (left !== undefined) {
      const n = Math.min(buffer.length, left.length);
      buffer.set(left.subarray(0, n));
      this.#left = n === left.length ? undefined : left.subarray(n);
      return n;
    }
    return await this.#conn.read(buffer);
  }

  write(chunk: Uint8Array): Promise<number> {
    return this.#conn.write(chunk);
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    this.#conn.close();
  }
}
