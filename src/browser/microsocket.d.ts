// Types of microsocket.js, microsocket's browser client (issue 17).

/** What {@linkcode connect} takes besides the URL. */
export interface RecoveringOptions {
  /** Called for each message from the server, once, in order. */
  onMessage?: (data: string | ArrayBuffer) => void;
  /**
   * Called once the server answered a connection: `recovered` is `true`
   * when the session went on (nothing was lost), `false` for a new session
   * (the first one, or after a gap that could not be filled: reload your
   * state).
   */
  onOpen?: (info: { recovered: boolean; id: number }) => void;
  /** Called as the connection goes up and down; `retryIn` in ms. */
  onStatus?: (
    status: "connecting" | "connected" | "disconnected",
    retryIn?: number,
  ) => void;
  /** The first reconnection delay, in ms (then doubled, with jitter). @default {250} */
  initialDelay?: number;
  /** The longest reconnection delay, in ms. @default {8000} */
  maxDelay?: number;
  /** The most messages kept of what the page sent, to send again. @default {1000} */
  maxMessages?: number;
  /**
   * Speak recovery (the server needs its `recovery` option); `false`: a
   * plain WebSocket that reconnects, and every `onOpen` says
   * `recovered: false`.
   *
   * @default {true}
   */
  recovery?: boolean;
  /** WebSocket subprotocols to offer. */
  protocols?: string | string[];
}

/** A WebSocket to a microsocket server that survives dropped connections. */
export interface RecoveringSocket {
  /** Whether the latest connection continued the session. */
  readonly recovered: boolean;
  /** The session id, once the server answered. */
  readonly id: number | undefined;
  /** Whether a connection is up and answered. */
  readonly connected: boolean;
  /**
   * Sends one message; while reconnecting it waits and leaves once the
   * session resumes. `false` before the first session or after close().
   */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): boolean;
  /** Closes for good: no reconnection. */
  close(): void;
}

/**
 * Connects to a microsocket WebSocket server that has `recovery`, and keeps
 * connected.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./microsocket.js";
 *
 * const socket = connect("/ws", {
 *   onOpen: ({ recovered }) => { if (!recovered) console.log("reload state"); },
 *   onMessage: (line) => console.log(line),
 * });
 * socket.send("hello");
 * ```
 */
export function connect(
  url: string | URL,
  options?: RecoveringOptions,
): RecoveringSocket;
