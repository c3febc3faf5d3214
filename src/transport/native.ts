// Sessions for apps that already own an HTTP server (Deno.serve, Hono, Oak,
// Fresh): an upgrade Request becomes a Session in a SessionManager, over
// Deno's native WebSocket. Everything (codec message types, rooms,
// broadcast, budgets, handlers) is the ordinary Session; only the
// connection differs, and it works at message level:
// - inbound, each message Deno hands us (a string or an ArrayBuffer) waits
//   in a queue; the session's read takes every queued message at once (it
//   returns their size, for the byte rate and stats, and copies nothing),
//   and its decoder hands each one whole to the WebSocket adapter's
//   decodeMessage(): the adapter's limit and per-codec mapping, no frame
//   built or parsed;
// - outbound, the session's writes hold the adapter's own server frames
//   (what a broadcast shares with every WebSocket session): whole,
//   unmasked, unfragmented, so each is a header to skip and a payload to
//   send() as it is, not a frame to parse.
//
// Slower than listen({ transport: "websocket" }), by design of the native
// API: every send() is one syscall (no coalescing of the frames queued for a
// connection), and the only backpressure signal is `bufferedAmount`, polled.
import type { Codec, Decoder, DecoderLink } from "../codec/codec.ts";
import { lines } from "../codec/lines.ts";
import type { Session, SessionOptions } from "../session/session.ts";
import type { SessionManager } from "../session_manager.ts";
import { Opcode } from "../websocket/_frame_writer.ts";
import { webSocketCodec } from "../websocket/websocket_codec.ts";
import type { WebSocketRequest } from "../websocket/websocket_request.ts";
import { DEFAULT_MAX_BUFFERED_AMOUNT } from "../defaults.ts";
import {
  adaptCodec,
  adapterRecipe,
  rememberAdapter,
} from "../websocket/_adapt.ts";
import { connectionOf, type WithParts } from "../session/_internals.ts";
import { validateUpgradeOptions } from "../_validate_options.ts";
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
export interface UpgradeWebSocketOptions<Data, In, Out> extends
  Omit<
    SessionOptions<Data, In, Out>,
    "codec" | "noDelay" | "frameTimeout" | "heartbeatMaxMissed"
  > {
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

// One native codec per codec and maxMessageBytes, so that broadcasts encode
// once for every native session made with them.
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
 * Messages go between the native socket and the session whole: each
 * received message is decoded as one message of the codec (mapped as by
 * `webSocketCodec()`, held to the smaller of `maxMessageBytes` and the
 * codec's own limit), and each message a session sends is one native
 * `send()`. `webSocketRequest(session)` gives the request's path, query,
 * headers and the accepted `protocol`, as for `listen({ transport:
 * "websocket" })`.
 *
 * It is several times slower than `listen({ transport: "websocket" })`
 * under load: Deno's native `send()` makes one syscall per message
 * (messages queued for a connection can't be coalesced into one write),
 * and the only backpressure signal is `bufferedAmount`, polled every 5 ms.
 *
 * Heartbeats are Deno's own: the native socket pings a peer that has been
 * silent for its `idleTimeout` and closes it when no pong follows in as
 * long (30 s by default). `heartbeatInterval` sets that time (rounded up
 * to whole seconds; 0 turns it off); the session's own ping frames could
 * not leave through the native API. `noDelay`, `frameTimeout` and
 * `heartbeatMaxMissed` do not apply (a TypeError names them), nor do the
 * options of `listen()` (`port`, `origins`, `transport`...).
 * Prefer `listen({ transport: "websocket" })` when you can give it a port.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages sessions send.
 * @param request The upgrade request.
 * @param sessions The manager the session joins (e.g. a server's).
 * @param options Codec, handlers and limits.
 * @returns The response and the session.
 * @throws {TypeError} When the request is not a WebSocket upgrade, an
 * option is unknown or does not apply here, or `codec` is a WebSocket
 * codec made with `role: "client"`.
 * @throws {RangeError} When a number is out of range (e.g. a negative
 * `heartbeatInterval`).
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
  validateUpgradeOptions(options);
  // The heartbeat is the native socket's (see above), not the session's.
  const { heartbeatInterval, ...sessionOptions } = options;
  // Read before the upgrade, which takes the request's headers.
  const upgrade = requestOf(request, options.protocol);
  const { socket, response } = Deno.upgradeWebSocket(request, {
    ...(options.protocol !== undefined && { protocol: options.protocol }),
    ...(heartbeatInterval !== undefined && {
      idleTimeout: heartbeatInterval > 0
        ? Math.max(1, Math.ceil(heartbeatInterval / 1000))
        : 0,
    }),
  });
  socket.binaryType = "arraybuffer";
  const codec = nativeCodec(
    options.codec ?? (lines() as unknown as Codec<In, Out>),
    options.maxMessageBytes,
  );
  const conn = new NativeConn(
    socket,
    options.remoteAddr ?? { transport: "tcp", hostname: "0.0.0.0", port: 0 },
    options.maxBufferedAmount ?? DEFAULT_MAX_BUFFERED_AMOUNT,
  );
  const connection: NativeConnection = {
    conn: conn as unknown as Deno.Conn,
    prelude: undefined,
    native: conn,
    request: upgrade,
  };
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
        connection,
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

// What a native session is opened on: the Conn-shaped shim, kept for its
// decoder, and the request, for webSocketRequest().
interface NativeConnection {
  readonly conn: Deno.Conn;
  readonly prelude: undefined;
  readonly native: NativeConn;
  readonly request: WebSocketRequest;
}

// The upgrade request as webSocketRequest() tells it: Headers already has
// lower-case names and joins repeats with ", ".
function requestOf(
  request: Request,
  protocol: string | undefined,
): WebSocketRequest {
  const url = new URL(request.url);
  return {
    target: url.pathname + url.search,
    path: url.pathname,
    headers: new Map(request.headers),
    protocol,
  };
}

// The adapter's decoder, with the entries for whole messages and for the
// peer's close as the native socket tells it.
interface MessageDecoder<In> extends Decoder<In> {
  decodeMessage(
    message: string | Uint8Array,
    size: number,
    emit: (message: In) => void,
  ): void;
  peerClosed(code: number, reason: string): void;
}

// The WebSocket adapter for `inner` (rebuilt with `max` when needed),
// whose decoders take whole messages from the native socket. It encodes as
// the adapter does (server frames), and is known as a WebSocket codec.
function nativeCodec<In, Out>(
  inner: Codec<In, Out>,
  max: number | undefined,
): Codec<In, Out> {
  let byLimit = adapters.get(inner);
  if (byLimit === undefined) adapters.set(inner, byLimit = new Map());
  let codec: Codec<In, Out> | undefined = byLimit.get(max);
  if (codec !== undefined) return codec;
  // A WebSocket codec is used as it is, or rebuilt with this limit.
  const adapter = adaptCodec(
    inner,
    "server",
    max,
    "upgradeWebSocket()",
    (plain) =>
      webSocketCodec(plain, max === undefined ? {} : { maxMessageBytes: max }),
  );
  codec = {
    ...adapter,
    decoder: (link?: DecoderLink): Decoder<In> =>
      new NativeDecoder(adapter.decoder(link) as MessageDecoder<In>, link),
  };
  rememberAdapter(codec, adapterRecipe(adapter)!);
  byLimit.set(max, codec);
  return codec;
}

// A native session's decoder: each read hands it the messages queued on the
// native socket (see NativeConn.read), and it passes each one, whole, to the
// adapter's decoder (its limit, mapping, close frame and closeWebSocket()).
class NativeDecoder<In> implements Decoder<In> {
  readonly buffered = 0;
  readonly #inner: MessageDecoder<In>;
  readonly #link: DecoderLink | undefined;
  #conn: NativeConn | undefined;

  constructor(inner: MessageDecoder<In>, link: DecoderLink | undefined) {
    this.#inner = inner;
    this.#link = link;
  }

  decode(_chunk: Uint8Array, emit: (message: In) => void): void {
    const conn = this.#native();
    const inner = this.#inner;
    for (;;) {
      const message = conn.take();
      if (message === undefined) return;
      inner.decodeMessage(message, conn.takenBytes, emit);
    }
  }

  // The end of the input: the socket closed. Its close event's code (the
  // peer's close frame, 1005 without a code, 1006 without a frame) is what
  // peerCloseCode() gives, as a parsed close frame would be.
  end(): void {
    const closed = this.#native().peerClose;
    if (closed !== undefined) this.#inner.peerClosed(closed[0], closed[1]);
  }

  // The connection is recorded after the decoder is made, before the first
  // read.
  #native(): NativeConn {
    return this.#conn ??= (connectionOf(
      (this.#link?.owner ?? this.#link) as unknown as WithParts,
    ) as NativeConnection)
      .native;
  }

  closeFrame(reason: string, error: unknown): Uint8Array | undefined {
    return this.#inner.closeFrame?.(reason, error);
  }
}

const lenient = new TextDecoder("utf-8", { ignoreBOM: true });

// A Deno.Conn look-alike over a native WebSocket: the part of Deno.Conn a
// Session uses (read, write, close, closeWrite, addresses), at message level.
class NativeConn {
  readonly remoteAddr: Deno.Addr;
  readonly localAddr: Deno.Addr = {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: 0,
  };
  /** The size of the message last taken, in bytes. */
  takenBytes = 0;
  /**
   * The close event's code and reason, when the socket closed before the
   * session sent its own close (else the code is the peer's echo of ours).
   */
  peerClose: [number, string] | undefined;
  readonly #socket: WebSocket;
  readonly #maxBuffered: number;
  // Received messages, from #head; those before #batchEnd were handed to the
  // session by the last read.
  #inbox: (string | Uint8Array | undefined)[] = [];
  #sizes: number[] = [];
  #head = 0;
  #batchEnd = 0;
  #ended = false;
  // Whether the session closed the socket (its close frame, or close()).
  #closing = false;
  #wake: (() => void) | undefined;
  // The end of a frame cut by a write (not seen: the session's writes hold
  // whole frames), kept for the next one.
  #partial: Uint8Array | undefined;

  constructor(socket: WebSocket, remoteAddr: Deno.Addr, maxBuffered: number) {
    this.#socket = socket;
    this.remoteAddr = remoteAddr;
    this.#maxBuffered = maxBuffered;
    socket.addEventListener("message", (event) => {
      if (this.#ended) return;
      const data = event.data;
      if (typeof data === "string") {
        this.#inbox.push(data);
        this.#sizes.push(utf8Length(data));
      } else {
        const bytes = new Uint8Array(data as ArrayBuffer);
        this.#inbox.push(bytes);
        this.#sizes.push(bytes.byteLength);
      }
      this.#wake?.();
    });
    // The connection's close code (RFC 6455 section 7.1.5): the peer's
    // close frame's (1005 without a code); 1006 when it failed without one,
    // which Deno tells with an "error" event, then a close event whose code
    // is 0. After our own close, the code would be the peer's echo of ours.
    socket.addEventListener("close", (event) => {
      if (!this.#closing && !this.#ended) {
        this.peerClose = event.wasClean && event.code !== 0
          ? [event.code, event.reason]
          : [1006, ""];
      }
      this.#end();
    });
    socket.addEventListener("error", () => {
      if (!this.#closing && !this.#ended) this.peerClose = [1006, ""];
      this.#end();
    });
  }

  #end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  /**
   * Hands every queued message to the session's next decode; returns their
   * size in bytes (the buffer is not used), or null once the socket ended.
   */
  async read(_buffer: Uint8Array): Promise<number | null> {
    // What the last read handed over and no decode took: a closing session
    // reads on to discard (see _linger.ts), and so must these be.
    if (this.#head < this.#batchEnd) this.#dropBatch();
    while (this.#head === this.#inbox.length) {
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
    const sizes = this.#sizes;
    let n = 0;
    for (let i = this.#head; i < sizes.length; i++) n += sizes[i]!;
    this.#batchEnd = sizes.length;
    return n;
  }

  #dropBatch(): void {
    const end = this.#batchEnd;
    this.#inbox.splice(0, end);
    this.#sizes.splice(0, end);
    this.#head = 0;
    this.#batchEnd = 0;
  }

  /** The next message of the last read, or undefined when none is left. */
  take(): string | Uint8Array | undefined {
    const head = this.#head;
    if (head >= this.#batchEnd) return undefined;
    const inbox = this.#inbox;
    const message = inbox[head];
    this.takenBytes = this.#sizes[head]!;
    inbox[head] = undefined;
    if (head + 1 === inbox.length) {
      // Drained: start over rather than grow.
      inbox.length = 0;
      this.#sizes.length = 0;
      this.#head = 0;
      this.#batchEnd = 0;
    } else {
      this.#head = head + 1;
    }
    return message;
  }

  async write(chunk: Uint8Array): Promise<number> {
    const socket = this.#socket;
    if (socket.readyState !== WebSocket.OPEN) {
      throw new Deno.errors.BrokenPipe("The WebSocket is closed");
    }
    const length = chunk.byteLength;
    let bytes = chunk;
    if (this.#partial !== undefined) {
      bytes = new Uint8Array(this.#partial.byteLength + length);
      bytes.set(this.#partial);
      bytes.set(chunk, this.#partial.byteLength);
      this.#partial = undefined;
    }
    const end = this.#sendFrames(bytes);
    if (end < bytes.byteLength) this.#partial = bytes.slice(end);
    // The only backpressure signal the native API has.
    while (
      socket.bufferedAmount > this.#maxBuffered &&
      socket.readyState === WebSocket.OPEN
    ) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return length;
  }

  // Sends each whole frame of `bytes` (the adapter's own server frames:
  // FIN set, unmasked); returns where the first incomplete one starts.
  #sendFrames(bytes: Uint8Array): number {
    const socket = this.#socket;
    const size = bytes.byteLength;
    let at = 0;
    while (size - at >= 2) {
      const opcode = bytes[at]! & 0x0f;
      let length = bytes[at + 1]! & 0x7f;
      let start = at + 2;
      if (length === 126) {
        if (size - at < 4) break;
        length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
        start = at + 4;
      } else if (length === 127) {
        if (size - at < 10) break;
        // Below 2^53: no frame of ours is larger.
        length = (bytes[at + 2]! * 2 ** 24 + (bytes[at + 3]! << 16) +
              (bytes[at + 4]! << 8) + bytes[at + 5]!) * 2 ** 32 +
          (bytes[at + 6]! * 2 ** 24 + (bytes[at + 7]! << 16) +
            (bytes[at + 8]! << 8) + bytes[at + 9]!);
        start = at + 10;
      }
      const end = start + length;
      if (end > size) break;
      const payload = bytes.subarray(start, end);
      if (opcode === Opcode.text) socket.send(lenient.decode(payload));
      else if (opcode === Opcode.binary) socket.send(payload);
      else if (opcode === Opcode.close) this.#close(payload);
      // Pings and pongs are the native socket's own business.
      at = end;
    }
    return at;
  }

  // The session's close frame, as a native close.
  #close(payload: Uint8Array): void {
    this.#closing = true;
    try {
      if (payload.byteLength < 2) this.#socket.close();
      else {
        this.#socket.close(
          (payload[0]! << 8) | payload[1]!,
          lenient.decode(payload.subarray(2)),
        );
      }
    } catch {
      // Already closing.
    }
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.#closing = true;
    this.#end();
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
  }
}

// The UTF-8 size of a string, without encoding it.
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (
      unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length &&
      (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00
    ) {
      // A surrogate pair: 4 bytes for 2 units.
      bytes += 2;
      i++;
    } else bytes += 2;
  }
  return bytes;
}
