// Package-internal: a session's life, open → closing → closed, and the one
// place that closes it. Closing asks each part to stop in turn (the writer
// takes its last frame and wakes its waiters, the inbound pipeline drops its
// backlog, liveness stops watching), gives queued bytes their time, lingers
// for the peer (_linger.ts), closes the connection, then tells the observers
// and `onClose`. The parts are seen through the narrow interfaces below, so
// this file imports none of them: they all import it.
import type { Decoder } from "../codec/codec.ts";
import { producerContext } from "./_flow_control.ts";
import { linger } from "./_linger.ts";
import type { SessionState } from "./options.ts";
import { DEFAULT_CLOSE_TIMEOUT } from "../defaults.ts";
import type { LatencyTapped } from "./_latency_histogram.ts";

/**
 * A Session, whatever its type parameters (observers and the host are
 * shared by all of them; session.ts knows the real type).
 */
// deno-lint-ignore no-explicit-any
export type AnySession = any;

/** What a session asks of the manager holding it (a SessionManager). */
export interface SessionHost extends LatencyTapped {
  join(session: AnySession, room: string): boolean;
  leave(session: AnySession, room: string): boolean;
  roomsOf(session: AnySession): ReadonlySet<string>;
  broadcast(message: unknown, options: object): number;
}

/** Told about one session's life; every method is optional. */
export interface SessionObserver {
  /**
   * It is open for business: authenticated when the options ask for it, and
   * about to run `onOpen`.
   */
  opened?(session: AnySession): void;
  /** It started closing: it takes no more frames. */
  closing?(session: AnySession): void;
  /** It has closed, right before its `onClose` runs. */
  closed?(session: AnySession, reason: string): void;
}

/** What the parts ask of the lifecycle: its state, a close, an error sink. */
export interface Life {
  /** Where the session is; only the lifecycle writes it. */
  readonly state: SessionState;
  /** Starts closing (idempotent); see {@linkcode Lifecycle.close}. */
  close(reason: string, error: unknown, timeout?: number): Promise<void>;
  /** Hands a handler's error to `onError` (or the console). */
  report(error: unknown): void;
  /** The session is open for business: tells the observers. */
  opened(): void;
  /** The manager holding the session, if any. */
  readonly host: SessionHost | undefined;
}

/** The handlers and settings the lifecycle uses. */
export interface LifecycleOptions<S> {
  closeTimeout?: number;
  onClose?(session: S, reason: string): unknown;
  onError?(error: unknown, session: S): void;
}

/** What closing asks of the outbound side (_writer.ts). */
export interface ClosingWriter {
  readonly queuedBytes: number;
  /** The write in flight, if any. */
  readonly writing: Promise<number> | undefined;
  /** Queues a framing's last frame after what is queued, past the budget. */
  goodbye(frame: Uint8Array): void;
  /** Holds no producer back any more; `drained()` waiters get `false`. */
  closing(): void;
  /** Waits up to `timeout` ms for the queue to be written. */
  settle(timeout: number): Promise<boolean>;
  /** Throws away what is still queued. */
  drop(): void;
}

/** What closing asks of the inbound pipeline (_inbound.ts). */
export interface ClosingInbound {
  /** No more messages: drops the backlog, fails waiting requests. */
  closing(reason: string): void;
}

/** What closing asks of the read side (_reader.ts). */
export interface ClosingReader {
  readonly decoder: Decoder<unknown>;
  /** The read loop; it ends at the peer's EOF once closing. */
  readonly loop: Promise<void> | undefined;
  /** The read in flight, if any. */
  readonly reading: Promise<number | null> | undefined;
  readonly bytesIn: number;
}

/** The parts a lifecycle stops, given once they exist. */
export interface LifecycleParts {
  writer: ClosingWriter;
  inbound: ClosingInbound;
  reader: ClosingReader;
  liveness: { stop(): void } | undefined;
}

/**
 * What closing records, made when it begins: a quiet session never needs
 * these fields (issue 19 §4).
 */
class Ending {
  readonly reason: string;
  readonly error: unknown;
  /** What close() returns, once the steps that start it have run. */
  finished: Promise<void> | undefined;
  inOnClose = false;
  fullyClosed = false;

  constructor(reason: string, error: unknown) {
    this.reason = reason;
    this.error = error;
  }
}

/** One session's lifecycle; see the file comment. */
export class Lifecycle<S extends { readonly id: number }> implements Life {
  state: SessionState = "open";
  /** The manager holding the session (rooms, broadcast from it). */
  host: SessionHost | undefined;
  readonly #session: S;
  readonly #conn: Deno.Conn;
  readonly #options: LifecycleOptions<S>;
  // Made on first use of `closed` (most sessions never ask): a promise and
  // its resolvers are a few hundred bytes that a quiet session would hold
  // for life.
  #closed: PromiseWithResolvers<string> | undefined;
  #ending: Ending | undefined;
  #parts: LifecycleParts | undefined;
  // The first observer (the server's), the second (its manager's), then an
  // exactly sized array of the rest: two fields rather than an array (and
  // its elements) that every session would hold for life.
  #first: SessionObserver | undefined;
  #second: SessionObserver | undefined;
  #more: SessionObserver[] | undefined;

  constructor(session: S, conn: Deno.Conn, options: LifecycleOptions<S>) {
    this.#session = session;
    this.#conn = conn;
    this.#options = options;
  }

  /** Resolves, never rejects, with the close reason once fully closed. */
  get closed(): Promise<string> {
    let closed = this.#closed;
    if (closed === undefined) {
      closed = this.#closed = Promise.withResolvers<string>();
      const ending = this.#ending;
      if (ending?.fullyClosed) closed.resolve(ending.reason);
    }
    return closed.promise;
  }

  /** The close reason, once closing has begun. */
  get closeReason(): string | undefined {
    return this.#ending?.reason;
  }

  /** The error behind the close, if any. */
  get closeError(): unknown {
    return this.#ending?.error;
  }

  /** Gives the lifecycle the parts it stops; called once, at construction. */
  bind(parts: LifecycleParts): void {
    this.#parts = parts;
  }

  /** Adds an observer; it is called at most once per event. */
  observe(observer: SessionObserver): void {
    // The rest copied rather than pushed: an array that grew by push keeps
    // room for 17, and every session holds its observers for life. The
    // loops below re-read the fields, so an observer added meanwhile is
    // still called.
    if (this.#first === undefined) this.#first = observer;
    else if (this.#second === undefined) this.#second = observer;
    else this.#more = this.#more?.concat(observer) ?? [observer];
  }

  #observer(i: number): SessionObserver | undefined {
    return i === 0 ? this.#first : i === 1 ? this.#second : this.#more?.[i - 2];
  }

  /** The session is open for business: the observers hear of it. */
  opened(): void {
    for (let i = 0, o; (o = this.#observer(i)) !== undefined; i++) {
      o.opened?.(this.#session);
    }
  }

  /**
   * Starts closing, once: every later call returns the same promise (from
   * inside `onClose`, one already resolved).
   */
  close(reason: string, error: unknown, timeout?: number): Promise<void> {
    let ending = this.#ending;
    // onClose awaiting close() must not wait for itself.
    if (ending?.inOnClose) return Promise.resolve();
    if (ending === undefined) {
      const { writer, inbound, reader, liveness } = this.#parts!;
      // A framing's goodbye (a WebSocket close frame) goes after what is
      // queued, whatever the budget says.
      const goodbye = reader.decoder.closeFrame?.(reason, error);
      if (goodbye !== undefined) writer.goodbye(goodbye);
      // A close from inside the goodbye began closing already.
      if (this.#ending !== undefined) return this.close(reason, error, timeout);
      this.state = "closing";
      ending = this.#ending = new Ending(reason, error);
      inbound.closing(reason);
      writer.closing();
      liveness?.stop();
      for (let i = 0, o; (o = this.#observer(i)) !== undefined; i++) {
        o.closing?.(this.#session);
      }
      // Whatever context the close came from (a producer cutting a slow
      // consumer, say), onClose runs in none: a closing session produces for
      // nobody.
      ending.finished = producerContext.exit(() =>
        this.#finish(
          ending!,
          timeout ?? this.#options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT,
        )
      );
    }
    // A close() made while the steps above still run (from an observer)
    // waits for the same end.
    return ending.finished ??
      Promise.resolve().then(() => this.#ending!.finished);
  }

  /** Hands `error` to `onError`, or to the console when there is none. */
  report(error: unknown): void {
    const onError = this.#options.onError;
    const id = this.#session.id;
    if (onError === undefined) {
      console.error(`microsocket: session ${id}:`, error);
      return;
    }
    try {
      onError(error, this.#session);
    } catch (secondary) {
      console.error(`microsocket: onError threw for session ${id}:`, {
        error,
        secondary,
      });
    }
  }

  async #finish(end: Ending, timeout: number): Promise<void> {
    const deadline = performance.now() + timeout;
    const { writer, reader } = this.#parts!;
    const written = writer.queuedBytes > 0
      ? await writer.settle(timeout)
      : true;
    let ending: Promise<boolean> | undefined;
    if (written && reader.loop !== undefined && timeout > 0) {
      const lingering = linger(
        this.#conn,
        reader.loop,
        () => reader.bytesIn,
        deadline,
      );
      ending = lingering.ending;
      await lingering.done;
    }
    this.state = "closed";
    try {
      this.#conn.close();
    } catch {
      // Already closed underneath us (e.g. by Deno after a fatal error).
    }
    writer.drop();
    // Closing the conn cancels these; let them settle before reporting.
    await reader.reading?.catch(ignore);
    await writer.writing?.catch(ignore);
    await ending;
    const reason = end.reason;
    for (let i = 0, o; (o = this.#observer(i)) !== undefined; i++) {
      o.closed?.(this.#session, reason);
    }
    const onClose = this.#options.onClose;
    if (onClose !== undefined) {
      end.inOnClose = true;
      try {
        await onClose(this.#session, reason);
      } catch (error) {
        this.report(error);
      } finally {
        end.inOnClose = false;
      }
    }
    end.fullyClosed = true;
    this.#closed?.resolve(reason);
  }
}

function ignore(): void {}
