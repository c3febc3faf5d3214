// A connection that outlives its connections (issue 17). A resumable
// session reads and writes a ResumableConn as it would a Deno.Conn;
// underneath, the real connection may drop and be replaced.
//
// It keeps no bytes: what must go out again is kept, in messages, by the
// session's writer (src/recovery/_message_log.ts). While no connection is
// attached, reads wait and writes resolve at once (the bytes are dropped:
// the log holds their messages, and the writer's queue does not grow). A
// write that fails on a connection that drops counts as written too (the
// session's writer asks writeFailed()). On
// a resume the recovery code tells the session where to replay from, then
// attaches the new connection: the session never sees an error or an EOF.
import { closeQuietly } from "../transport/connection.ts";

/** Package-internal: what a ResumableConn's owner hears. */
export interface ResumableEvents {
  /** The connection dropped (read EOF, read or write failed). */
  detached(): void;
  /** The session closed it for good. */
  closed?(): void;
}

/**
 * A Deno.Conn look-alike over a sequence of real connections; see the file
 * comment. Package-internal.
 */
export class ResumableConn {
  readonly #events: ResumableEvents;
  #real: Deno.Conn | undefined;
  #addr: { remote: Deno.Addr; local: Deno.Addr };
  // Bytes read past a preamble, handed to the next read.
  #prefix: Uint8Array | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  #noDelay = false;
  // The connection of the latest write (see writeFailed()).
  #writingOn: Deno.Conn | undefined;

  constructor(
    real: Deno.Conn,
    prefix: Uint8Array | undefined,
    events: ResumableEvents,
  ) {
    this.#real = real;
    this.#addr = { remote: real.remoteAddr, local: real.localAddr };
    this.#prefix = prefix !== undefined && prefix.length > 0
      ? prefix
      : undefined;
    this.#events = events;
  }

  /** The peer's address, of the latest connection. */
  get remoteAddr(): Deno.Addr {
    return this.#addr.remote;
  }

  /** The local address, of the latest connection. */
  get localAddr(): Deno.Addr {
    return this.#addr.local;
  }

  /** Whether a connection is attached. */
  get attached(): boolean {
    return this.#real !== undefined;
  }

  /** Whether the session closed it (for good). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Drops the current connection (if any) without telling the owner: the
   * first step of a resume, so that nothing read from the old connection
   * afterwards counts.
   */
  release(): void {
    const real = this.#real;
    if (real === undefined) return;
    this.#real = undefined;
    this.#prefix = undefined;
    closeQuietly(real);
  }

  /**
   * Attaches `real`; the next read returns `prefix` (bytes read past the
   * preamble), if any, then what `real` reads.
   */
  attach(real: Deno.Conn, prefix?: Uint8Array): void {
    if (this.#closed) {
      closeQuietly(real);
      return;
    }
    this.release();
    this.#real = real;
    this.#addr = { remote: real.remoteAddr, local: real.localAddr };
    this.#prefix = prefix !== undefined && prefix.length > 0
      ? prefix
      : undefined;
    if (this.#noDelay) noDelayOn(real, true);
    this.#wake?.();
  }

  /** Sets TCP_NODELAY on this and every later TCP connection. */
  setNoDelay(noDelay = true): void {
    this.#noDelay = noDelay;
    noDelayOn(this.#real, noDelay);
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) return null;
      const real = this.#real;
      if (real === undefined) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      const prefix = this.#prefix;
      if (prefix !== undefined) {
        const n = Math.min(buffer.length, prefix.length);
        buffer.set(prefix.subarray(0, n));
        this.#prefix = n === prefix.length ? undefined : prefix.subarray(n);
        return n;
      }
      let n: number | null;
      try {
        n = await real.read(buffer);
      } catch {
        n = null;
      }
      // Read from a connection replaced meanwhile: it doesn't count.
      if (this.#real !== real) continue;
      if (n === null) {
        this.#drop(real);
        continue;
      }
      return n;
    }
  }

  write(chunk: Uint8Array): Promise<number> {
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BrokenPipe("Closed"));
    }
    const real = this.#real;
    if (real === undefined) return Promise.resolve(chunk.length);
    // Straight through, no wrapper per write: a failure comes back to the
    // session's writer, which calls writeFailed().
    this.#writingOn = real;
    return real.write(chunk);
  }

  /**
   * The latest write failed: its connection dropped. The session's writer
   * (one write at a time) calls it and counts the bytes as written: the
   * log has their messages.
   *
   * @returns `false` once closed for good (the failure is the session's).
   */
  writeFailed(): boolean {
    if (this.#closed) return false;
    const real = this.#writingOn;
    if (real !== undefined) this.#drop(real);
    return true;
  }

  closeWrite(): Promise<void> {
    return this.#real?.closeWrite().catch(() => {}) ?? Promise.resolve();
  }

  /** Closes for good: the session ended. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const real = this.#real;
    this.#real = undefined;
    if (real !== undefined) closeQuietly(real);
    this.#wake?.();
    this.#events.closed?.();
  }

  /** Drops the connection as if it failed (a test's cut, a stale peer). */
  drop(): void {
    const real = this.#real;
    if (real !== undefined) this.#drop(real);
  }

  #drop(real: Deno.Conn): void {
    if (this.#real !== real) return;
    this.#real = undefined;
    this.#prefix = undefined;
    closeQuietly(real);
    if (!this.#closed) this.#events.detached();
  }
}

function noDelayOn(conn: Deno.Conn | undefined, noDelay: boolean): void {
  if (conn === undefined || !("setNoDelay" in conn)) return;
  try {
    (conn as Deno.TcpConn).setNoDelay(noDelay);
  } catch {
    // Closed already.
  }
}
