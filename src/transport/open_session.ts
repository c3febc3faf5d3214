// The one step from a connection to a session, for every way a connection
// arrives: accepted by listen(), dialed by connect(), or adopted from an
// HTTP server by upgradeWebSocket(). It makes the session, hands it what
// the transport already read and learned, lets the caller enrol it, then
// runs the user's data().
import type { Codec } from "../codec/codec.ts";
import { Session, type SessionOptions } from "../session/session.ts";
import { adopt } from "../session/_internals.ts";
import { CloseReason } from "../close_reason.ts";
import { closeQuietly, type Connection } from "./connection.ts";

/** What {@linkcode openSession} needs besides the connection. */
export interface OpenSessionOptions<Data, In, Out> {
  /** The id; by default the next of a process-wide counter. */
  readonly id?: number | undefined;
  /**
   * Called once the session exists, before `data()`: the caller enrols it
   * (counts, observers, a manager), so that it is known if `data()` fails.
   */
  readonly enrol?: ((session: Session<Data, In, Out>) => void) | undefined;
  /** Creates the session's initial `data`, before `onOpen`. */
  readonly data?: ((session: Session<Data, In, Out>) => Data) | undefined;
}

/** What {@linkcode openSession} made. */
export interface OpenedSession<Data, In, Out> {
  /** The session; closing already when `dataFailed`. */
  readonly session: Session<Data, In, Out>;
  /**
   * Whether `data()` threw: the error went to the session's `onError`, and
   * the session is closing with {@linkcode CloseReason.Error}.
   */
  readonly dataFailed: boolean;
  /** What `data()` threw, when `dataFailed`. */
  readonly dataError?: unknown;
}

/**
 * Turns `connection` into a session with `options`.
 *
 * @returns The session, and what `data()` threw, if it did.
 * @throws What the session's constructor throws (the codec's `decoder()`
 * is user code); the connection is closed then.
 */
export function openSession<Data, In, Out>(
  connection: Connection,
  options: SessionOptions<Data, In, Out>,
  open: OpenSessionOptions<Data, In, Out> = {},
): OpenedSession<Data, In, Out> {
  let session: Session<Data, In, Out>;
  try {
    const adapt = connection.adapt;
    session = new Session(
      connection.conn,
      adapt === undefined ? options : withCodec(options, adapt(options.codec)),
      open.id,
    );
  } catch (error) {
    closeQuietly(connection.conn);
    throw error;
  }
  adopt(session, connection);
  open.enrol?.(session);
  const data = open.data;
  if (data === undefined) return { session, dataFailed: false };
  try {
    session.data = data(session);
    return { session, dataFailed: false };
  } catch (dataError) {
    try {
      options.onError?.(dataError, session);
    } catch (secondary) {
      console.error("microsocket: onError threw:", {
        error: dataError,
        secondary,
      });
    }
    void session.close(CloseReason.Error);
    return { session, dataFailed: true, dataError };
  }
}

// Options objects that differ from a shared one only in the codec, one per
// (options, codec) pair rather than one per session.
// deno-lint-ignore no-explicit-any
const derived = new WeakMap<object, Map<Codec<any, any>, object>>();

function withCodec<Data, In, Out>(
  options: SessionOptions<Data, In, Out>,
  codec: Codec<In, Out>,
): SessionOptions<Data, In, Out> {
  if (codec === options.codec) return options;
  let byCodec = derived.get(options);
  if (byCodec === undefined) {
    byCodec = new Map();
    derived.set(options, byCodec);
  }
  let copy = byCodec.get(codec) as SessionOptions<Data, In, Out> | undefined;
  if (copy === undefined) {
    copy = { ...options, codec };
    byCodec.set(codec, copy);
  }
  return copy;
}
