// The client's side of recovery (issue 17): the hello on every new
// connection, and, when one drops, redials with backoff and jitter within
// the server's window and resumes the same session underneath it (the
// Session above sees no error and no EOF). Each side tells the other how
// many whole messages it decoded, and sends again, from its message log,
// the ones that follow (src/recovery/_message_log.ts). When the server
// can't resume it (window passed, log trimmed, token refused), the session
// closes with reason "recovery failed", and the client's `reconnect`
// policy, if any, opens a fresh one: `recovered` is `false` then.
//
// In a cluster (the server's answer carries `pos= epoch=`, see
// _cluster_wire.ts), the session also keeps the last global position it
// took (src/recovery/_positions.ts strips the server's position records),
// and a resume says it, with how many messages it sent, so that any node
// can take the session over.
import type { Session } from "../session/session.ts";
import { CloseReason } from "../close_reason.ts";
import {
  messagesIn,
  resume,
  suspend,
  type WithParts,
  wrapDecoders,
} from "../session/_internals.ts";
import { closeQuietly, type Connection } from "../transport/connection.ts";
import {
  DEFAULT_RECOVERY_MAX_BYTES,
  DEFAULT_RECOVERY_MAX_MESSAGES,
} from "../defaults.ts";
import {
  type Answer,
  parseAnswer,
  preamble,
  readPreamble,
  readWebSocketLine,
  webSocketLine,
  writeAll,
} from "./_preamble.ts";
import { ResumableConn } from "./resumable_conn.ts";
import { MessageLog } from "./_message_log.ts";
import {
  positionWords,
  readPosition,
  sentWord,
  type WirePosition,
} from "./_cluster_wire.ts";
import {
  type Committed,
  streamPositions,
  webSocketPositions,
} from "./_positions.ts";

/**
 * The `recovery` option of `connect()`: `true`, or the bounds of the
 * client's own log of what it sent (to send again after a drop) and a
 * handler.
 *
 * @example
 * ```ts
 * import type { ClientRecoveryOptions } from "@x/microsocket/client";
 *
 * const recovery: ClientRecoveryOptions = { maxMessages: 500 };
 * ```
 */
export interface ClientRecoveryOptions {
  /**
   * The most messages kept of what the client sent.
   *
   * @default {1000}
   */
  maxMessages?: number;
  /**
   * The most bytes those messages may hold.
   *
   * @default {1048576}
   */
  maxBytes?: number;
}

/** What the client's recovery reports to the client. */
export interface ClientRecoveryEvents {
  /** A connection was opened: `recovered` when it continued the session. */
  opened(recovered: boolean): void;
}

interface State {
  id: number;
  token: string;
  session: Session<unknown, unknown, unknown> | undefined;
  /** What the client sent (its total at a drop is the resume's `sent=`). */
  log: MessageLog;
  /** Set in a cluster: the last position taken, and its epoch. */
  cluster: Committed | undefined;
}

/** Package-internal: one client's recovery; see the file comment. */
export class ClientRecovery {
  readonly #dial: () => Promise<Connection>;
  readonly #timeout: number;
  readonly #webSocket: boolean;
  readonly #limits: { maxMessages: number; maxBytes: number };
  readonly #delays: { initial: number; max: number };
  readonly #events: ClientRecoveryEvents;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  constructor(
    dial: () => Promise<Connection>,
    options: {
      timeout: number;
      webSocket: boolean;
      limits: ClientRecoveryOptions | true;
      delays: { initial: number; max: number };
    },
    events: ClientRecoveryEvents,
  ) {
    this.#dial = dial;
    this.#timeout = options.timeout;
    this.#webSocket = options.webSocket;
    const limits = options.limits === true ? {} : options.limits;
    this.#limits = {
      maxMessages: limits.maxMessages ?? DEFAULT_RECOVERY_MAX_MESSAGES,
      maxBytes: limits.maxBytes ?? DEFAULT_RECOVERY_MAX_BYTES,
    };
    this.#delays = options.delays;
    this.#events = events;
  }

  /**
   * Opens a new resumable session over `connection` (just dialed).
   *
   * @throws When the server does not speak recovery or refuses.
   */
  async open(connection: Connection): Promise<Connection> {
    const real = connection.conn;
    try {
      const { answer, rest, position } = await this.#hello(
        real,
        "new",
        connection,
      );
      if (answer?.kind !== "ok") {
        throw new Deno.errors.ConnectionRefused(
          answer?.kind === "fail"
            ? `The server refused recovery: ${answer.reason}`
            : "The server does not speak recovery (listen() without recovery?)",
        );
      }
      const state: State = {
        id: answer.id,
        token: answer.token,
        session: undefined,
        log: new MessageLog(this.#limits),
        cluster: position === undefined ? undefined : { ...position },
      };
      const resumable: ResumableConn = new ResumableConn(real, rest, {
        detached: () => void this.#resume(resumable, state, answer.window),
        closed: () => this.#stop(),
      });
      this.#events.opened(false);
      return {
        ...connection,
        conn: resumable as unknown as Deno.Conn,
        prelude: undefined,
        resumable: {
          log: state.log,
          bind: (session: WithParts) => {
            state.session = session as Session<unknown, unknown, unknown>;
            // Before the first read (adopt() binds right after
            // construction): records may follow the answer at once.
            const cluster = state.cluster;
            if (cluster !== undefined) {
              wrapDecoders(
                session,
                this.#webSocket
                  ? webSocketPositions(cluster)
                  : streamPositions(cluster),
              );
            }
          },
        },
      };
    } catch (error) {
      closeQuietly(real);
      throw error;
    }
  }

  // Says `line` and reads the answer, within the connect timeout.
  async #hello(
    real: Deno.Conn,
    line: string,
    dialed: Connection,
  ): Promise<{
    answer: Answer | undefined;
    rest: Uint8Array;
    position: WirePosition | undefined;
  }> {
    const deadline = performance.now() + this.#timeout;
    let read: { line: string | undefined; rest: Uint8Array } | undefined;
    if (this.#webSocket) {
      await writeAll(real, webSocketLine(line, true));
      read = await readWebSocketLine(real, deadline, dialed.prelude)
        .catch(() => undefined);
    } else {
      await writeAll(real, preamble(line));
      // A server without recovery closes on the preamble (a decode error),
      // or says nothing a preamble could be.
      read = await readPreamble(real, deadline, true, dialed.prelude)
        .catch(() => undefined);
    }
    const answer = read?.line === undefined
      ? undefined
      : parseAnswer(read.line);
    return {
      answer,
      rest: read?.rest ?? new Uint8Array(0),
      // A cluster's words ride on an `ok` only.
      position: answer?.kind === "ok" ? readPosition(read!.line!) : undefined,
    };
  }

  async #resume(
    resumable: ResumableConn,
    state: State,
    window: number,
  ): Promise<void> {
    const session = state.session;
    if (session === undefined || session.state !== "open") {
      resumable.close();
      return;
    }
    suspend(session);
    // A cluster's `sent=`: the messages sent up to the drop (this runs as
    // the connection drops). No node read more than these; what the app
    // sends while the client is away goes out again on the next connection,
    // whichever node answers (one that took the session over answers
    // took=sent).
    const sent = state.log.total;
    const deadline = performance.now() + window;
    let delay = this.#delays.initial;
    // The first attempt at once: most drops are a moment's.
    let wait = 0;
    while (!resumable.closed && performance.now() + wait < deadline) {
      if (wait > 0) await this.#sleep(wait);
      if (resumable.closed) return;
      // Backoff with full jitter, so that many clients cut at once don't
      // come back in step.
      wait = delay / 2 + Math.random() * delay / 2;
      delay = Math.min(delay * 2, this.#delays.max);
      let real: Deno.Conn | undefined;
      try {
        const dialed = await this.#dial();
        real = dialed.conn;
        if (resumable.closed) {
          closeQuietly(real);
          return;
        }
        // Nothing is read while detached: this count (and the position
        // taken) is final.
        const received = messagesIn(session);
        const cluster = state.cluster;
        const words = cluster === undefined
          ? ""
          : positionWords(cluster) + sentWord(sent);
        const { answer, rest, position } = await this.#hello(
          real,
          `resume ${state.id} ${state.token} ${received}${words}`,
          dialed,
        );
        if (answer === undefined) {
          closeQuietly(real);
          continue; // not an answer: the server is restarting? try again
        }
        if (answer.kind === "fail") {
          // Refused (window passed, log trimmed): never a partial replay.
          closeQuietly(real);
          break;
        }
        if (
          resumable.closed || session.state !== "open" ||
          !resume(session, answer.received)
        ) {
          closeQuietly(real);
          break;
        }
        state.token = answer.token;
        if (cluster !== undefined && position !== undefined) {
          // Where the node that answered takes the session up.
          cluster.position = position.position;
          cluster.epoch = position.epoch;
        }
        resumable.attach(real, rest);
        this.#events.opened(true);
        return;
      } catch {
        if (real !== undefined) closeQuietly(real);
      }
    }
    if (session.state === "open") {
      void session.close(CloseReason.RecoveryFailed);
    } else resumable.close();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#wake = undefined;
        resolve();
      }, ms);
    });
  }

  #stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
