// @ts-check
// @ts-self-types="./microsocket.d.ts"
// microsocket's browser client (issue 17): plain ESM, no build step, no
// dependency. A page imports it as it is (a server serves this file, e.g.
// examples/chat_web.ts at /microsocket.js). It keeps one WebSocket open to
// a microsocket server that has `recovery`, reconnects with backoff and
// jitter, and resumes the session: every message the server sent while
// the page was away arrives once and in order, and what the page sent
// meanwhile reaches the server once. `onOpen({ recovered })` says whether
// the session went on (`true`) or is new (`false`: reload your state).
//
// The protocol (src/recovery/_preamble.ts): the page asks in the URL
// (`?microsocket-recovery=1`); its first message is the hello
// ("msrec1 new", or "msrec1 resume <id> <token> <received>"), the server's
// first message the answer ("msrec1 ok <0|1> <id> <token> <received>
// <window>" or "msrec1 fail <reason>"). Each later WebSocket message counts
// as one, both ways: <received> is how many the sender of the line took.
//
// In a cluster (src/recovery/_cluster_wire.ts) the answer ends with
// "pos=<p> epoch=<e>", and the server sends a text message "msrec1 pos
// <p>" before some messages: such a record is neither delivered nor
// counted; its <p> becomes the page's position once the next message has
// arrived, and a resume adds " pos=<p> epoch=<e> sent=<n>" (<n>: messages
// sent before the drop), so that any node of the cluster can take the
// session over.

const PREFIX = "msrec1 ";
const PARAM = "microsocket-recovery";
const COUNT = /^(0|[1-9][0-9]{0,15})$/;
const EPOCH = /^[\x21-\x7e]{1,64}$/;

/**
 * Connects to `url` and keeps connected; see the file comment and
 * microsocket.d.ts for the options.
 *
 * @param {string | URL} url
 * @param {import("./microsocket.d.ts").RecoveringOptions} [options]
 * @returns {import("./microsocket.d.ts").RecoveringSocket}
 */
export function connect(url, options = {}) {
  return new RecoveringSocket(url, options);
}

/**
 * @typedef {import("./microsocket.d.ts").RecoveringSocket} RecoveringSocketType
 */

/** @implements {RecoveringSocketType} */
class RecoveringSocket {
  /** @type {URL} */
  #url;
  /** @type {import("./microsocket.d.ts").RecoveringOptions} */
  #options;
  /** @type {WebSocket | undefined} */
  #socket;
  // The session: its id and current token, the server's window (ms), and
  // when the connection dropped.
  /** @type {{ id: number, token: string, window: number } | undefined} */
  #session;
  #droppedAt = 0;
  // Whether the current socket has had its answer: messages count after it.
  #answered = false;
  // Messages taken from the server in this session.
  #received = 0;
  // Messages sent in this session, and the newest of them (a bounded log:
  // #sentLog[i] is message #sent - #sentLog.length + i).
  #sent = 0;
  // #sent when the connection dropped: a cluster's `sent=` (no node read
  // more; what the page sends while away goes out on the next connection,
  // whichever node answers).
  #sentAtDrop = 0;
  /** @type {(string | ArrayBufferLike | Blob | ArrayBufferView)[]} */
  #sentLog = [];
  #attempt = 0;
  // In a cluster: the last position taken and its epoch, and the position
  // of a record whose message has not arrived yet (-1: none; per socket).
  /** @type {{ position: number, epoch: string } | undefined} */
  #cluster;
  #pending = -1;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  #closed = false;
  #recovered = false;

  // `recovery: false`: a plain reconnecting WebSocket (no hello, nothing
  // counted), for a server without recovery.
  get #recovering() {
    return this.#options.recovery !== false;
  }

  /**
   * @param {string | URL} url
   * @param {import("./microsocket.d.ts").RecoveringOptions} options
   */
  constructor(url, options) {
    this.#options = options;
    this.#url = new URL(url, globalThis.location?.href);
    if (this.#recovering) this.#url.searchParams.set(PARAM, "1");
    this.#open();
  }

  /** Whether the latest connection continued the session. */
  get recovered() {
    return this.#recovered;
  }

  /** The session id, once the server answered. */
  get id() {
    return this.#session?.id;
  }

  /** Whether a connection is up and answered. */
  get connected() {
    return this.#answered && this.#socket?.readyState === WebSocket.OPEN;
  }

  /**
   * Sends `data` as one message. While reconnecting it waits in the send
   * log and leaves once the session resumes; without a session yet it is
   * refused.
   *
   * @param {string | ArrayBufferLike | Blob | ArrayBufferView} data
   * @returns {boolean}
   */
  send(data) {
    if (!this.#recovering) {
      if (!this.connected) return false;
      this.#socket?.send(data);
      return true;
    }
    if (this.#closed || this.#session === undefined) return false;
    this.#sent++;
    this.#sentLog.push(data);
    const max = this.#options.maxMessages ?? 1000;
    if (this.#sentLog.length > max) this.#sentLog.shift();
    if (this.connected) this.#socket?.send(data);
    return true;
  }

  /** Closes for good: no reconnection. */
  close() {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#socket?.close(1000);
    this.#socket = undefined;
  }

  #open() {
    if (this.#closed) return;
    this.#status("connecting");
    const socket = new WebSocket(this.#url, this.#options.protocols);
    this.#socket = socket;
    this.#answered = false;
    this.#pending = -1;
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      if (!this.#recovering) {
        this.#answered = true;
        this.#attempt = 0;
        this.#status("connected");
        this.#options.onOpen?.({ recovered: false, id: 0 });
        return;
      }
      const session = this.#session;
      // Past the window the server has let the session go: start afresh.
      if (
        session !== undefined &&
        performance.now() - this.#droppedAt < session.window
      ) {
        const cluster = this.#cluster;
        const words = cluster === undefined
          ? ""
          : ` pos=${cluster.position} epoch=${cluster.epoch} sent=${this.#sentAtDrop}`;
        socket.send(
          `${PREFIX}resume ${session.id} ${session.token} ${this.#received}${words}`,
        );
      } else {
        this.#session = undefined;
        socket.send(`${PREFIX}new`);
      }
    };
    socket.onmessage = (event) => {
      if (socket !== this.#socket) return;
      if (this.#answered) {
        const cluster = this.#cluster;
        if (cluster !== undefined) {
          const data = event.data;
          if (typeof data === "string" && data.startsWith(PREFIX)) {
            // A record, not a message; kinds other than pos are reserved.
            const words = data.slice(PREFIX.length).split(" ");
            if (words[0] === "pos" && COUNT.test(words[1] ?? "")) {
              this.#pending = Number(words[1]);
            }
            return;
          }
          if (this.#pending >= 0) {
            cluster.position = this.#pending;
            this.#pending = -1;
          }
        }
        this.#received++;
        this.#options.onMessage?.(event.data);
        return;
      }
      this.#answer(socket, String(event.data));
    };
    socket.onclose = () => {
      if (socket !== this.#socket) return;
      this.#socket = undefined;
      if (this.#answered) {
        this.#droppedAt = performance.now();
        this.#sentAtDrop = this.#sent;
      }
      this.#answered = false;
      if (this.#closed) return;
      // Backoff with jitter: 0.5–1 × initialDelay · 2^attempt, capped.
      const initial = this.#options.initialDelay ?? 250;
      const max = this.#options.maxDelay ?? 8000;
      const delay = Math.min(max, initial * 2 ** this.#attempt++);
      const wait = delay / 2 + Math.random() * delay / 2;
      this.#status("disconnected", wait);
      this.#timer = setTimeout(() => this.#open(), wait);
    };
  }

  /**
   * @param {WebSocket} socket
   * @param {string} text
   */
  #answer(socket, text) {
    const words = text.startsWith(PREFIX)
      ? text.slice(PREFIX.length).split(" ")
      : [];
    if (words[0] === "ok" && words.length >= 6) {
      const recovered = words[1] === "1";
      const id = Number(words[2]);
      const token = String(words[3]);
      const took = Number(words[4]);
      const window = Number(words[5]);
      const position = positionIn(words);
      if (recovered) {
        // Send again what the server did not take, if the log still has it.
        const first = this.#sent - this.#sentLog.length;
        if (took < first || took > this.#sent) {
          // Never a partial replay: start afresh.
          this.#session = undefined;
          socket.close(1000);
          return;
        }
        this.#session = { id, token, window };
        this.#answered = true;
        // Where the node that answered takes the session up.
        if (this.#cluster !== undefined && position !== undefined) {
          this.#cluster = position;
        }
        for (const data of this.#sentLog.slice(took - first)) socket.send(data);
      } else {
        this.#session = { id, token, window };
        this.#received = 0;
        this.#sent = 0;
        this.#sentLog = [];
        this.#cluster = position;
        this.#answered = true;
      }
      this.#attempt = 0;
      this.#recovered = recovered;
      this.#status("connected");
      this.#options.onOpen?.({ recovered, id });
      return;
    }
    // Refused (window passed, gap too large, token spent) or not a
    // recovery server: forget the session; the next connection is fresh.
    this.#session = undefined;
    socket.close(1000);
  }

  /**
   * @param {"connecting" | "connected" | "disconnected"} status
   * @param {number} [retryIn]
   */
  #status(status, retryIn) {
    this.#options.onStatus?.(status, retryIn);
  }
}

/**
 * The cluster's `pos=` and `epoch=` words of an answer, if it has both.
 *
 * @param {string[]} words
 * @returns {{ position: number, epoch: string } | undefined}
 */
function positionIn(words) {
  /** @type {number | undefined} */
  let position;
  /** @type {string | undefined} */
  let epoch;
  for (const word of words.slice(6)) {
    const at = word.indexOf("=");
    const value = word.slice(at + 1);
    if (word.startsWith("pos=") && COUNT.test(value)) position = Number(value);
    else if (word.startsWith("epoch=") && EPOCH.test(value)) epoch = value;
  }
  return position === undefined || !Number.isSafeInteger(position) ||
      epoch === undefined
    ? undefined
    : { position, epoch };
}
