// Sessions for apps that already own an HTTP server (Deno.serve, Hono, Oak,
// Fresh): an upgrade Request becomes a Session in a SessionManager, over
// Deno's native WebSocket. The Session needs a byte stream, so a small
// Conn-shaped shim turns each received message into one (zero-key masked)
// frame for the adapter codec's parser, and parses the frames the session
// writes back into native `send()` calls. Everything else (codec message
// types, rooms, broadcast, budgets, handlers) is the ordinary Session.
//
// Slower than listen({ transport: "websocket" }), by design of the native
// API: every send() is one syscall (no coalescing of the frames queued for a
// connection), frames are parsed again on the way out, and the only
// backpressure signal is `bufferedAmount`, polled.
import type { Codec } from "../codec/codec.ts";
import { lines } from "../codec/lines.ts";
import type { Session, SessionOptions } from "../session/session.ts";
import type { SessionManager } from "../session_manager.ts";
import { FrameParser } from "../websocket/_frame_parser.ts";
import { encodeFrame, Opcode } from "../websocket/_frame_writer.ts";
import { webSocketCodec } from "../websocket/websocket_codec.ts";
import { DEFAULT_MAX_BUFFERED_AMOUNT } from "../defaults.ts";
import { adaptCodec } from "../websocket/_adapt.ts";
import { openSession } from "./open_session.ts";

/**
 * Options of {@linkcode upgradeWebSocket}.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 *
 * @example
 * ```ts
 * import { lines, type UpgradeWebSocketOptions } from "@x/microsocket";
 *
 * const options: UpgradeWebSocketOptions<unknown, string, string> = {
 *   codec: lines(),
 *   onMessage: (session, line) => void session.send(line),
 * };
 * ```
 */
export interface UpgradeWebSocketOptions<Data, In, Out>
  extends Omit<SessionOptions<Data, In, Out>, "codec"> {
  /**
   * The codec whose messages travel (mapped as by
   * {@linkcode webSocketCodec}). Pass the same object for every request
   * (or an adapter from `webSocketCodec()`) so that broadcasts encode once.
   *
   * @default {lines()}
   */
  codec?: Codec<In, Out>;
  /** Creates the session's initial `data`, before `onOpen`. */
  data?: (session: Session<unknown, In, Out>) => Data;
  /** The subprotocol to accept, passed to `Deno.upgradeWebSocket`. */
  protocol?: string;
  /**
   * The peer's address, e.g. `info.remoteAddr` from `Deno.serve`'s handler.
   *
   * @default {{ transport: "tcp", hostname: "0.0.0.0", port: 0 }}
   */
  remoteAddr?: Deno.Addr;
  /**
   * The native socket's `bufferedAmount` above which the session's writes
   * wait (polled every 5 ms): what waits meanwhile counts against the
   * session's `outboundBudget`.
   *
   * @default {65536}
   */
  maxBufferedAmount?: number;
  /**
   * The largest message accepted, in bytes (1009 past it).
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
}

/** What {@linkcode upgradeWebSocket} returns. */
export interface UpgradedWebSocket<Data, In, Out> {
  /** The 101 response to return from the HTTP handler. */
  readonly response: Response;
  /**
   * Resolves with the session once the socket is open (it is then in the
   * manager and its `onOpen` runs), or `undefined` when the socket failed
   * before opening.
   */
  readonly opened: Promise<Session<Data, In, Out> | undefined>;
}

// One adapter per codec and maxMessageBytes, so that broadcasts encode once
// for every native session made with them.
const adapters = new WeakMap<
  // deno-lint-ignore no-explicit-any
  Codec<any, any>,
  // deno-lint-ignore no-explicit-any
  Map<number | undefined, Codec<any, any>>
>();

/**
 * Turns a WebSocket upgrade `Request` received by your own HTTP server
 * into a {@linkcode Session} in `sessions`, over Deno's native WebSocket
 * (`Deno.upgradeWebSocket`). Return `response` from the handler.
 *
 * It is several times slower than `listen({ transport: "websocket" })`
 * under load: Deno's native `send()` makes one syscall per frame (frames
 * queued for a connection can't be coalesced into one write), each
 * outgoing frame is parsed again to be handed to `send()`, and the only
 * backpressure signal is `bufferedAmount`, polled every 5 ms.
 *
 * Heartbeats are Deno's own: the native socket pings a peer that has been
 * silent for its `idleTimeout` and closes it when no pong follows in as
 * long (30 s by default). `heartbeatInterval` sets that time (rounded up
 * to whole seconds; 0 turns it off); the session's own ping frames could
 * not leave through the native API.
 * Prefer `listen({ transport: "websocket" })` when you can give it a port.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 * @param request The upgrade request.
 * @param sessions The manager the session joins (e.g. a server's).
 * @param options Codec, handlers and limits.
 * @returns The response and the session.
 * @throws {TypeError} When the request is not a WebSocket upgrade, or
 * `codec` is a WebSocket codec made with `role: "client"`.
 * @throws {RangeError} When `heartbeatInterval` is negative or not finite.
 *
 * @example A Deno.serve app sharing rooms with a TCP server
 * ```ts
 * import { listen, upgradeWebSocket } from "@x/microsocket";
 *
 * await using tcp = listen({ hostname: "127.0.0.1", port: 0 });
 * await using http = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen: () => {} },
 *   (request, info) =>
 *     upgradeWebSocket(request, tcp.sessions, {
 *       remoteAddr: info.remoteAddr,
 *       onMessage: (_session, line) => void tcp.sessions.broadcast(line),
 *     }).response,
 * );
 * ```
 */
export function upgradeWebSocket<Data = unknown, In = string, Out = In>(
  request: Request,
  sessions: SessionManager<Data, In, Out>,
  options: UpgradeWebSocketOptions<Data, In, Out> = {},
): UpgradedWebSocket<Data, In, Out> {
  // The heartbeat is the native socket's (see above), not the session's.
  const { heartbeatInterval, ...sessionOptions } = options;
  if (
    heartbeatInterval !== undefined &&
    (typeof heartbeatInterval !== "number" ||
      !Number.isFinite(heartbeatInterval) || heartbeatInterval < 0)
  ) {
    throw new RangeError(
      `heartbeatInterval must be a finite number at least 0, got ${heartbeatInterval}`,
    );
  }
  const { socket, response } = Deno.upgradeWebSocket(request, {
    ...(options.protocol !== undefined && { protocol: options.protocol }),
    ...(heartbeatInterval !== undefined && {
      idleTimeout: heartbeatInterval > 0
        ? Math.max(1, Math.ceil(heartbeatInterval / 1000))
        : 0,
    }),
  });
  socket.binaryType = "arraybuffer";
  const inner = options.codec ?? (lines() as unknown as Codec<In, Out>);
  const max = options.maxMessageBytes;
  let byLimit = adapters.get(inner);
  if (byLimit === undefined) adapters.set(inner, byLimit = new Map());
  let codec: Codec<In, Out> | undefined = byLimit.get(max);
  if (codec === undefined) {
    // A WebSocket codec is used as it is, or rebuilt with this limit.
    codec = adaptCodec(
      inner,
      "server",
      max,
      "upgradeWebSocket()",
      (plain) =>
        webSocketCodec(
          plain,
          max === undefined ? {} : { maxMessageBytes: max },
        ),
    );
    byLimit.set(max, codec);
  }
  const conn = new NativeConn(
    socket,
    options.remoteAddr ?? { transport: "tcp", hostname: "0.0.0.0", port: 0 },
    options.maxBufferedAmount ?? DEFAULT_MAX_BUFFERED_AMOUNT,
  );
  const { promise: opened, resolve } = Promise.withResolvers<
    Session<Data, In, Out> | undefined
  >();
  // The session starts once the socket is open, so that onOpen can send.
  const start = () => {
    socket.removeEventListener("close", failed);
    let session: Session<Data, In, Out>;
    try {
      // A data() that throws closes the session (its onError hears of it);
      // it still joins the manager until the close completes, as before.
      ({ session } = openSession<Data, In, Out>(
        { conn: conn as unknown as Deno.Conn, prelude: undefined },
        { ...sessionOptions, codec },
        { id: sessions.nextId(), data: options.data },
      ));
    } catch (error) {
      console.error("microsocket: upgradeWebSocket:", error);
      resolve(undefined);
      return;
    }
    sessions.set(session);
    resolve(session);
  };
  const failed = () => {
    socket.removeEventListener("open", start);
    resolve(undefined);
  };
  socket.addEventListener("open", start, { once: true });
  socket.addEventListener("close", failed, { once: true });
  return { response, opened };
}

const ZERO_KEY = new Uint8Array(4);

// A Deno.Conn look-alike over a native WebSocket: the part of Deno.Conn a
// Session uses (read, write, close, closeWrite, addresses).
class NativeConn {
  readonly remoteAddr: Deno.Addr;
  readonly localAddr: Deno.Addr = {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: 0,
  };
  readonly #socket: WebSocket;
  readonly #maxBuffered: number;
  readonly #inbox: Uint8Array[] = [];
  #offset = 0;
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #out: FrameParser;

  constructor(socket: WebSocket, remoteAddr: Deno.Addr, maxBuffered: number) {
    this.#socket = socket;
    this.remoteAddr = remoteAddr;
    this.#maxBuffered = maxBuffered;
    socket.addEventListener("message", (event) => {
      const data = event.data;
      // Masked with a zero key: the server-side parser wants masked frames,
      // and XOR with zero leaves the payload as it is.
      this.#push(
        typeof data === "string"
          ? encodeFrame(Opcode.text, data, true, ZERO_KEY)
          : encodeFrame(
            Opcode.binary,
            new Uint8Array(data as ArrayBuffer),
            true,
            ZERO_KEY,
          ),
      );
    });
    socket.addEventListener("close", () => this.#end());
    socket.addEventListener("error", () => this.#end());
    // The session's outgoing frames, back into messages.
    this.#out = new FrameParser({
      role: "client",
      maxMessageBytes: Number.MAX_SAFE_INTEGER,
      onClose: (code, reason) => {
        try {
          if (code === 1005) socket.close();
          else socket.close(code, reason);
        } catch {
          // Already closing.
        }
      },
    });
  }

  #push(frame: Uint8Array): void {
    if (this.#ended) return;
    this.#inbox.push(frame);
    this.#wake?.();
  }

  #end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#inbox.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
    const head = this.#inbox[0]!;
    const n = Math.min(buffer.length, head.length - this.#offset);
    buffer.set(head.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    if (this.#offset === head.length) {
      this.#inbox.shift();
      this.#offset = 0;
    }
    return n;
  }

  async write(chunk: Uint8Array): Promise<number> {
    const socket = this.#socket;
    if (socket.readyState !== WebSocket.OPEN) {
      throw new Deno.errors.BrokenPipe("The WebSocket is closed");
    }
    this.#out.decode(chunk, (message) => socket.send(message));
    // The only backpressure signal the native API has.
    while (
      socket.bufferedAmount > this.#maxBuffered &&
      socket.readyState === WebSocket.OPEN
    ) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return chunk.length;
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#end();
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
  }
}
