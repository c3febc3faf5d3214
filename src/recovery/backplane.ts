// The seam between a server's recovery and a cluster's (issue 17), in the
// core so that the core stays free of the history engines: a ClusterBridge
// may offer a RecoveryBackplane (`@x/microsocket/cluster`'s Cluster does
// when it has `history`), and the server's recovery then keeps each
// resumable session in it as well as in its own message log. The log
// resumes a session whose connection dropped, on the node that holds it;
// the backplane resumes a session whose NODE died, on any other node, from
// the room broadcasts and direct messages the engine kept, after the last
// position the client received (see _cluster_wire.ts for the wire).

/**
 * What a backplane needs of one resumable session of this server.
 *
 * @example
 * ```ts
 * import type { BackplaneSession } from "@x/microsocket";
 *
 * const got: number[] = [];
 * const session: BackplaneSession = {
 *   deliver: (position) => void got.push(position),
 *   data: () => ({ nick: "ann" }),
 *   lost: () => {},
 * };
 * session.deliver(7, new Uint8Array(0));
 * console.log(got); // [ 7 ]
 * ```
 */
export interface BackplaneSession {
  /**
   * An entry for the session (a room broadcast or a direct message), in
   * position order, once each: `frame` is in the server's codec, kept by
   * reference and never modified.
   */
  deliver(position: number, frame: Uint8Array): void;
  /** The session's data, as its record should carry it (JSON). */
  data(): unknown;
  /**
   * Another node resumed the session (its token was spent there): the
   * session must close here, without ending its record.
   */
  lost(): void;
}

/**
 * What {@linkcode RecoveryBackplane.open} gives a new session.
 *
 * @example
 * ```ts
 * import type { BackplaneOpened } from "@x/microsocket";
 *
 * const opened: BackplaneOpened = { token: "t".repeat(24), epoch: "e1", position: 0 };
 * console.log(opened.position);
 * ```
 */
export interface BackplaneOpened {
  /** The resume token (any node checks it). */
  readonly token: string;
  /** The epoch positions belong to. */
  readonly epoch: string;
  /** The position the session starts from. */
  readonly position: number;
}

/**
 * What a client presents to {@linkcode RecoveryBackplane.resume}: its
 * session id, the token it was given, and where it is in the cluster's
 * history.
 *
 * @example
 * ```ts
 * import type { BackplaneResumeRequest } from "@x/microsocket";
 *
 * const request: BackplaneResumeRequest = {
 *   id: 7,
 *   token: "t0k3n",
 *   epoch: "e1",
 *   position: 42,
 * };
 * console.log(request.position);
 * ```
 */
export interface BackplaneResumeRequest {
  /** The session's id. */
  readonly id: number;
  /** The token the client holds (spent by the resume). */
  readonly token: string;
  /** The history's epoch the position belongs to. */
  readonly epoch: string;
  /** The last position whose message the client got whole. */
  readonly position: number;
}

/**
 * What {@linkcode RecoveryBackplane.resume} answers.
 *
 * @example
 * ```ts
 * import type { BackplaneResumed } from "@x/microsocket";
 *
 * const refused: BackplaneResumed = { recovered: false, reason: "trimmed" };
 * console.log(refused.recovered);
 * ```
 */
export type BackplaneResumed =
  | {
    readonly recovered: true;
    /** The next token (the one presented is spent). */
    readonly token: string;
    /** The session's data, as its record carried it. */
    readonly data: unknown;
    /** Its rooms. */
    readonly rooms: readonly string[];
  }
  | {
    readonly recovered: false;
    /** Why (for the counters and the client's `fail` answer). */
    readonly reason: string;
  };

/**
 * A cluster's side of recovery, offered by a {@linkcode ClusterBridge} as
 * `recovery`: a server with the `recovery` option keeps its resumable
 * sessions in it, so that they resume on any node of the cluster. The
 * bridge's rooms carry room broadcasts and direct messages to those
 * sessions through it (with positions), not through the broker.
 *
 * @example The shape (the cluster entry point implements it)
 * ```ts
 * import type { RecoveryBackplane } from "@x/microsocket";
 *
 * function describe(backplane: RecoveryBackplane): string {
 *   return `recovery across the cluster, window ${backplane.window} ms`;
 * }
 * console.log(typeof describe);
 * ```
 */
export interface RecoveryBackplane {
  /** How long the engine keeps a session's record after its last write (ms). */
  readonly window: number;
  /**
   * Registers a new resumable session of this node (`id` from the
   * cluster) and writes its record.
   */
  open(id: number, session: BackplaneSession): Promise<BackplaneOpened>;
  /**
   * Rotates the token of a session of this node that resumes here.
   *
   * @returns The next token, or `undefined` when `token` isn't its own.
   */
  renew(id: number, token: string): Promise<string | undefined>;
  /** Resumes, here, a session whose node died (or let it go). */
  resume(
    request: BackplaneResumeRequest,
    session: BackplaneSession,
  ): Promise<BackplaneResumed>;
  /** Stops serving a session here; its record stays (it may resume elsewhere). */
  release(id: number): void;
  /** A session ended for good: its record goes. */
  end(id: number): Promise<void>;
}
