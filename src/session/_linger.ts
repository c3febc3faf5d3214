// Package-internal: the last step of a graceful close. Everything queued has
// been written, but maybe not yet received: closing a socket whose peer's
// bytes sit unread (or still arrive) makes the kernel reset it and throw
// away what it still holds for the peer. So end our side (FIN after the
// data), keep reading and discarding (the session's read loop does that
// while closing), and close once the peer has ended its side too, has sent
// nothing for LINGER_QUIET ms, or the deadline is up.

/**
 * After its last byte is written, a closing session waits at most this long
 * for the peer to end its side or fall silent.
 */
export const LINGER_QUIET = 100;

/** A linger in progress. */
export interface Linger {
  /** The half-close; settles (never rejects) once our FIN is out. */
  ending: Promise<boolean> | undefined;
  /** Resolves when it is time to close the connection. */
  done: Promise<void>;
}

/**
 * Ends our side of `conn` and waits as described in the file comment.
 *
 * @param reader The session's read loop; it ends at the peer's EOF.
 * @param heard Bytes read so far (silence means no change).
 * @param deadline `performance.now()` time by which to give up.
 */
export function linger(
  conn: Deno.Conn,
  reader: Promise<void>,
  heard: () => number,
  deadline: number,
): Linger {
  let ending: Promise<boolean>;
  try {
    ending = conn.closeWrite().then(() => true, () => false);
  } catch {
    // The connection is already gone.
    return { ending: undefined, done: Promise.resolve() };
  }
  return { ending, done: wait(ending, reader, heard, deadline) };
}

async function wait(
  ending: Promise<boolean>,
  reader: Promise<void>,
  heard: () => number,
  deadline: number,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const quiet = <T>(value: T): Promise<T> =>
    new Promise<T>((resolve) => {
      const left = Math.min(deadline - performance.now(), LINGER_QUIET);
      timer = setTimeout(resolve, Math.max(0, left), value);
    });
  try {
    // TLS can't end its side before the handshake is done: a peer that
    // stalls the handshake would hold this up until the deadline.
    const ended = await Promise.race([ending, quiet(false)]);
    clearTimeout(timer);
    if (!ended) return;
    for (;;) {
      if (deadline - performance.now() <= 0) return;
      const before = heard();
      const done = await Promise.race([reader.then(() => true), quiet(false)]);
      clearTimeout(timer);
      if (done || heard() === before) return;
    }
  } finally {
    clearTimeout(timer);
  }
}
