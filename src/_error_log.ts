// What a server logs when the application gave no onError. Errors caused by
// peers (bad frames, unknown routes) are logged once per session, in one
// line without a stack, and every log line counts against a global budget,
// so a peer cannot flood the logs by sending garbage.
import { DecodeError, RouteNotFoundError } from "./errors.ts";

/** Log lines allowed per window, all sessions together. */
const LINES_PER_WINDOW = 10;
/** The window, in milliseconds. */
const WINDOW = 10_000;

/** A rate-limited console log of errors nobody handles. */
export class ErrorLog {
  readonly #peerLogged = new WeakSet<object>();
  #windowStart = -Infinity;
  #lines = 0;
  #suppressed = 0;

  /**
   * Logs `error`, unless this session's peer errors were already logged or
   * the budget of the current window is spent.
   */
  log(error: unknown, session: { readonly id: number } | undefined): void {
    const fromPeer = error instanceof DecodeError ||
      error instanceof RouteNotFoundError;
    if (fromPeer && session !== undefined) {
      if (this.#peerLogged.has(session)) return;
      this.#peerLogged.add(session);
    }
    const now = performance.now();
    if (now - this.#windowStart >= WINDOW) {
      if (this.#suppressed > 0) {
        console.error(
          `microsocket: ${this.#suppressed} more errors were not logged (pass onError to listen() to see each)`,
        );
      }
      this.#windowStart = now;
      this.#lines = 0;
      this.#suppressed = 0;
    }
    if (this.#lines >= LINES_PER_WINDOW) {
      this.#suppressed++;
      return;
    }
    this.#lines++;
    const where = session === undefined ? "" : ` session ${session.id}:`;
    if (fromPeer) {
      const { name, message } = error as Error;
      console.error(
        `microsocket:${where} ${name}: ${message}${
          session === undefined
            ? ""
            : " (further errors from this peer are not logged; pass onError to listen() to handle them)"
        }`,
      );
    } else {
      console.error(`microsocket:${where}`, error);
    }
  }
}
