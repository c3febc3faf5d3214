// The client side: the same Session and codecs over Deno.connect, with
// optional reconnection and exponential backoff, a bounded buffer for sends
// made while reconnecting, and messages as an async iterable. This file is
// the Client and connect(); its parts live beside it:
//   options.ts          the public options (per transport, reconnect, buffer)
//   _reconnect.ts       the reconnect policy: backoff with jitter, refusals
//   _send_buffer.ts     sends kept while reconnecting
//   _message_queue.ts   each `for await` loop's queue, and its end
import type { Codec } from "../codec/codec.ts";
import { lines } from "../codec/lines.ts";
import type { Session, SessionOptions } from "../session/session.ts";
import type { RequestOptions } from "../session/options.ts";
import { SessionClosedError } from "../errors.ts";
import { CloseReason } from "../close_reason.ts";
import { RefusedError } from "../errors.ts";
import type { Attempt, Transport } from "../transport/transport.ts";
import { closeQuietly, type Connection } from "../transport/connection.ts";
import { transportOf, withTransport } from "../transport/transports.ts";
import { openSession } from "../transport/open_session.ts";
// Recovery (issue 17): opt-in, see src/recovery/.
import { ClientRecovery } from "../recovery/client_recovery.ts";
import { WEBSOCKET_PARAM } from "../recovery/_preamble.ts";
import { validateConnectOptions } from "../_validate_options.ts";
import { DEFAULT_CONNECT_TIMEOUT } from "../defaults.ts";
import type { ClientCloseReason, ConnectOptions } from "./options.ts";
import { FAILURES, MessageQueue } from "./_message_queue.ts";
import { Backoff, refusalIn } from "./_reconnect.ts";
import { SendBuffer } from "./_send_buffer.ts";

/**
 * A connection to a server that can outlive its sessions: with `reconnect`,
 * a lost connection is replaced by a new session after a backoff.
 * Create one with {@linkcode connect}.
 *
 * Messages from every session are also an async iterable: `for await
 * (const message of client)` sees the messages that arrive while it
 * iterates (after the `onMessage` handler), and ends when the client is
 * closed for good: quietly when you closed it (`close()`, the `signal`) or
 * the server ended the connection (`"eof"`, `"server shutdown"`), by
 * throwing a {@linkcode RefusedError} when the server refused the client,
 * and by throwing a {@linkcode SessionClosedError} carrying the reason when
 * a failure or a policy ended it (`"reset"`, `"slow consumer"`,
 * `"idle timeout"`, …), after the messages that arrived before. A slow loop
 * slows the reading of the connection, not the memory: at most 256 messages
 * wait for it.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages the client sends.
 *
 * @example Talking to a server
 * ```ts
 * import { connect, listen, lines } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: lines(),
 *   onMessage: (session, line) => void session.send(`echo ${line}`),
 * });
 * const reply = Promise.withResolvers<string>();
 * await using client = await connect({
 *   port: server.addr.port,
 *   codec: lines(),
 *   onMessage: (_session, line) => reply.resolve(line),
 * });
 * client.send("hi");
 * assert.equal(await reply.promise, "echo hi");
 * ```
 *
 * @example Messages as an async iterable
 * ```ts
 * import { connect, listen } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   onOpen: (session) => {
 *     session.send("one");
 *     session.send("two");
 *     void session.close("done");
 *   },
 * });
 * const client = await connect({ port: server.addr.port });
 * const got: string[] = [];
 * for await (const line of client) got.push(line); // ends with the client
 * assert.deepEqual(got, ["one", "two"]);
 * assert.equal(await client.closed, "eof");
 * ```
 */
export class Client<Data = unknown, In = string, Out = In>
  implements AsyncDisposable, AsyncIterable<In> {
  /** Resolves with the last close reason once the client is closed for good. */
  readonly closed: Promise<ClientCloseReason>;

  readonly #options: ConnectOptions<Data, In, Out>;
  readonly #sessionOptions: SessionOptions<Data, In, Out>;
  readonly #reconnect: Backoff | undefined;
  readonly #resolveClosed: (reason: ClientCloseReason) => void;
  readonly #abortListener: () => void;
  readonly #buffer: SendBuffer<Out> | undefined;
  readonly #readers = new Set<MessageQueue<In>>();
  #session: Session<Data, In, Out> | undefined;
  #closing: ClientCloseReason | undefined;
  #ended = false;
  // Why the client ended, for loops to throw, when a failure ended it.
  #failure: SessionClosedError | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #started: Promise<void> | undefined;
  // deno-lint-ignore no-explicit-any
  readonly #transport: Transport<any, ConnectOptions<Data, In, Out>>;
  // When the current session opened: the delay starts over only after a
  // connection that stayed up.
  #openedAt = 0;
  #refused: RefusedError | undefined;
  readonly #recovery: ClientRecovery | undefined;
  #recovered = false;
  #resumes = 0;

  /**
   * Prepares a client; {@linkcode connect} creates and starts one.
   *
   * @param options Where to connect, codec, handlers, reconnection.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(options: ConnectOptions<Data, In, Out>) {
    options = withTransport(options);
    validateConnectOptions(options);
    // Recovery over WebSocket is asked for in the URL (see _preamble.ts).
    const recovery = options.recovery;
    if (recovery && options.transport === "websocket") {
      const url = new URL(String(options.url));
      url.searchParams.set(WEBSOCKET_PARAM, "1");
      options = { ...options, url };
    }
    this.#options = options;
    this.#transport = transportOf(options);
    const codec = this.#transport.codec(
      options.codec ?? (lines() as unknown as Codec<In, Out>),
      "client",
      options.maxMessageBytes,
      "connect()",
    );
    const onOpen = options.onOpen;
    const onMessage = options.onMessage;
    const refusalOf = options.refusalOf;
    this.#sessionOptions = {
      ...options,
      codec,
      // Buffered sends leave after the new connection's own greeting.
      onOpen: async (session) => {
        if (onOpen !== undefined) await onOpen(session);
        this.#buffer?.sendTo(session);
      },
      onMessage: (session, message) => {
        const result = onMessage?.(session, message);
        if (refusalOf !== undefined) {
          const reason = refusalOf(message);
          if (reason !== undefined) {
            this.#refused ??= new RefusedError(reason);
            void session.close(reason);
          }
        }
        if (this.#readers.size === 0) return result;
        const waits = this.#deliver(message);
        if (waits === undefined) return result;
        return Promise.all([result, waits]).then(ignore);
      },
    };
    const reconnect = options.reconnect;
    this.#reconnect = reconnect === undefined || reconnect === false
      ? undefined
      : new Backoff(reconnect);
    const buffer = options.sendBuffer;
    if (buffer !== undefined && buffer !== false) {
      if (this.#reconnect === undefined) {
        throw new TypeError("sendBuffer needs reconnect");
      }
      this.#buffer = new SendBuffer(buffer);
    }
    const { promise, resolve } = Promise.withResolvers<ClientCloseReason>();
    this.closed = promise;
    this.#resolveClosed = resolve;
    this.#abortListener = () => void this.close(CloseReason.Aborted);
    this.#recovery = recovery === undefined || recovery === false
      ? undefined
      : new ClientRecovery(() => this.#dialOnce(), {
        timeout: options.connectTimeout || DEFAULT_CONNECT_TIMEOUT,
        webSocket: options.transport === "websocket",
        limits: recovery,
        delays: {
          initial: Math.min(this.#reconnect?.policy.initialDelay ?? 100, 100),
          max: this.#reconnect?.policy.maxDelay ?? 2000,
        },
      }, {
        opened: (recovered) => {
          this.#recovered = recovered;
          if (recovered) this.#resumes++;
        },
      });
  }

  /**
   * With `recovery`: whether the latest connection continued the session
   * (`false` for the first one, and for a fresh session after a gap that
   * could not be filled: the app should reload its state then).
   *
   * @example
   * ```ts ignore
   * import { connect } from "@x/microsocket";
   *
   * const client = await connect({ hostname: "127.0.0.1", port: 7000, recovery: true });
   * console.log(client.recovered); // false: the first connection
   * ```
   */
  get recovered(): boolean {
    return this.#recovered;
  }

  /** With `recovery`: how many times the session resumed. */
  get resumes(): number {
    return this.#resumes;
  }

  /** The current session, while connected. */
  get session(): Session<Data, In, Out> | undefined {
    return this.#session?.state === "open" ? this.#session : undefined;
  }

  /**
   * Why the server refused the client, once it has: a WebSocket close with
   * code 4401 or 4403 (or 1008 with reason `"unauthorized"`), or a message
   * the `refusalOf` option recognised. A refused client does not
   * reconnect; `closed` resolves with the refusal's reason.
   */
  get refused(): RefusedError | undefined {
    return this.#refused;
  }

  /** Messages waiting in the send buffer for the next connection. */
  get buffered(): number {
    return this.#buffer?.size ?? 0;
  }

  /**
   * Sends through the current session. While reconnecting, with
   * `sendBuffer`, the message waits for the next connection instead.
   *
   * @param message The message.
   * @returns `true` when queued (or buffered); `false` while disconnected
   * without a buffer (or with a full one, under `"drop-newest"`), after the
   * client closed, or when the session refused it.
   * @throws {TypeError} When the codec cannot encode the message.
   */
  send(message: Out): boolean {
    const session = this.session;
    const buffer = this.#buffer;
    if (session !== undefined && (buffer === undefined || buffer.size === 0)) {
      return session.send(message);
    }
    if (buffer === undefined || this.#closing !== undefined || this.#ended) {
      return false;
    }
    // Refuse what could never be sent, now rather than on reconnection.
    this.#sessionOptions.codec.encode(message);
    return buffer.add(message);
  }

  /**
   * Sends a request through the current session and waits for its reply,
   * matched by the codec's {@linkcode Codec.correlation} (`json()`: a
   * reserved `$id` on the request, `$re` on the reply; the message's own
   * fields are left alone). The reply is typed as the codec's `In`, and goes
   * to this promise, not to `onMessage` or the async iterator. See
   * {@linkcode Session.request}.
   *
   * Requests are not buffered: while disconnected (reconnecting, or closed)
   * it rejects at once; a session lost while waiting rejects it too.
   *
   * @param message The request.
   * @param options Timeout (default 10 s) and abort signal.
   * @returns The reply.
   * @throws {TypeError} When the codec has no correlation, or refuses the
   * message (`json()`: one that already has `$id`).
   * @throws {RequestTimeoutError} (rejects) When no reply came in time.
   * @throws {SessionClosedError} (rejects) When not connected, or the
   * session closed first.
   *
   * @example Asking a Router for a user
   * ```ts
   * import { connect, json, listen, Router, type Session } from "@x/microsocket";
   * import assert from "node:assert/strict";
   *
   * type Ask = { type: "getUser"; id: number };
   * type User = { type: "user"; id: number; name: string };
   * const router = new Router<Ask, User, Session<unknown, Ask, User>>()
   *   .on("getUser", (session, ask) =>
   *     void session.reply(ask, { type: "user", id: ask.id, name: "ada" }));
   * await using server = listen<unknown, Ask, User>({
   *   hostname: "127.0.0.1",
   *   port: 0,
   *   codec: json<Ask, User>(),
   *   onMessage: router.handler,
   * });
   * await using client = await connect<unknown, User, Ask>({
   *   port: server.addr.port,
   *   codec: json<User, Ask>(),
   * });
   * const user = await client.request({ type: "getUser", id: 17 });
   * assert.equal(user.id, 17);
   * assert.equal(user.name, "ada");
   * ```
   */
  request(message: Out, options?: RequestOptions): Promise<In> {
    const codec = this.#sessionOptions.codec;
    if (codec.correlation === undefined) {
      throw new TypeError(
        `The ${codec.name} codec has no correlation for requests`,
      );
    }
    const session = this.session;
    if (session === undefined) {
      return Promise.reject(
        new SessionClosedError(this.#closing ?? "not connected"),
      );
    }
    return session.request(message, options);
  }

  /**
   * Closes the current session and stops reconnecting. Buffered sends are
   * dropped.
   *
   * @param reason The close reason.
   * @returns A promise that resolves once everything is released.
   */
  async close(reason: ClientCloseReason = CloseReason.Closed): Promise<void> {
    this.#closing ??= reason;
    this.#buffer?.clear();
    if (this.#started === undefined && !this.#ended) this.#finish(reason);
    this.#wake?.();
    await this.#session?.close(reason);
    await this.#started?.catch(ignore);
    await this.#loop;
  }

  /**
   * Closes the client, for `await using`.
   *
   * @returns A promise that resolves once everything is released.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Iterates over the messages of every session until the client is closed
   * for good; see the class documentation. Breaking out of the loop stops
   * this iteration only.
   *
   * @returns An async iterator of messages.
   */
  [Symbol.asyncIterator](): AsyncIterator<In> {
    const queue = new MessageQueue<In>(this.#readers);
    if (this.#ended) queue.end(this.#refused ?? this.#failure);
    else this.#readers.add(queue);
    return queue;
  }

  /**
   * Makes the first connection, then keeps reconnecting in the background
   * when so configured. {@linkcode connect} calls it; calling it again
   * returns the same promise (it never opens a second connection).
   *
   * @returns A promise that resolves once the first connection is open.
   * @throws {Deno.errors.ConnectionRefused} (and other connect errors) when
   * the first connection fails and `reconnect` is off, or its attempts are
   * used up.
   */
  start(): Promise<void> {
    return this.#started ??= this.#start();
  }

  async #start(): Promise<void> {
    const signal = this.#options.signal;
    signal?.throwIfAborted();
    signal?.addEventListener("abort", this.#abortListener, { once: true });
    try {
      await this.#attempt(true);
    } catch (error) {
      this.#finish(this.#closing ?? CloseReason.Error);
      throw error;
    }
    this.#loop = this.#keepConnected();
  }

  async #keepConnected(): Promise<void> {
    let reason: ClientCloseReason = CloseReason.Closed;
    while (this.#session !== undefined) {
      const session = this.#session;
      reason = await session.closed;
      this.#session = undefined;
      this.#refused ??= refusalIn(session);
      if (this.#refused !== undefined) {
        reason = this.#refused.reason;
        break;
      }
      const backoff = this.#reconnect;
      if (backoff === undefined || this.#closing !== undefined) break;
      backoff.lost(performance.now() - this.#openedAt);
      try {
        await this.#attempt(false);
      } catch {
        break; // attempts used up, or closed while waiting
      }
    }
    this.#finish(this.#closing ?? reason);
  }

  // Connects, retrying with backoff when reconnection is on. `first` tries
  // at once; a reconnection waits the current delay first.
  async #attempt(first: boolean): Promise<void> {
    const backoff = this.#reconnect;
    for (let attempt = 1;; attempt++) {
      if (!first || attempt > 1) {
        if (backoff === undefined) throw new Error("Reconnection is off");
        await this.#sleep(backoff.next());
      }
      if (this.#closing !== undefined) throw new Error("Client closed");
      try {
        const connection = await this.#dial();
        if (this.#closing !== undefined) {
          connection.conn.close();
          throw new Error("Client closed");
        }
        await this.#open(connection);
        return;
      } catch (error) {
        if (this.#closing !== undefined) throw error;
        if (backoff === undefined || attempt >= backoff.maxAttempts) {
          throw error;
        }
      }
    }
  }

  // One connection attempt within connectTimeout: TCP (or Unix), then the
  // TLS handshake, so that an untrusted certificate fails the attempt
  // instead of a session that seemed open.
  async #dial(): Promise<Connection> {
    const connection = await this.#dialOnce();
    return this.#recovery === undefined
      ? connection
      : await this.#recovery.open(connection);
  }

  async #dialOnce(): Promise<Connection> {
    const timeout = this.#options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    const attempt: Attempt = { conn: undefined, abandoned: false };
    const connecting = this.#transport.dial(this.#options, attempt);
    if (timeout === 0) return connecting;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Closing the TCP connection ends a handshake that hangs; one that
        // completes after all is closed as soon as it does.
        attempt.abandoned = true;
        if (attempt.conn !== undefined) closeQuietly(attempt.conn);
        connecting.then((connection) => closeQuietly(connection.conn), ignore);
        reject(
          new Deno.errors.TimedOut(`Connecting took more than ${timeout} ms`),
        );
      }, timeout);
    });
    try {
      return await Promise.race([connecting, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  // Wraps a connection in a session. When `data()` throws, the session is
  // closed at once (before onOpen), onError hears of it, and the attempt
  // fails with the error.
  async #open(connection: Connection): Promise<void> {
    // A data() that throws is reported to onError (as the server reports
    // it, since a reconnection retries, and fails, quietly otherwise).
    const opened = openSession(connection, this.#sessionOptions, {
      data: this.#options.data,
    });
    const session = opened.session;
    if (opened.dataFailed) {
      await session.closed;
      throw opened.dataError;
    }
    this.#session = session;
    this.#openedAt = performance.now();
  }

  // Hands a message to every iterating loop; a promise when one of them is
  // full, so that reading waits for it.
  #deliver(message: In): Promise<unknown> | undefined {
    let waits: Promise<void>[] | undefined;
    for (const reader of this.#readers) {
      const wait = reader.push(message);
      if (wait !== undefined) (waits ??= []).push(wait);
    }
    return waits && Promise.all(waits);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#wake = undefined;
        resolve();
      };
      this.#wake = wake;
      this.#timer = setTimeout(wake, ms);
    });
  }

  #finish(reason: ClientCloseReason): void {
    this.#ended = true;
    this.#buffer?.clear();
    this.#options.signal?.removeEventListener("abort", this.#abortListener);
    // A loop must not take a failure for the end of the stream.
    const error = this.#refused ??
      (this.#closing === undefined && FAILURES.has(reason)
        ? new SessionClosedError(reason)
        : undefined);
    this.#failure = error instanceof SessionClosedError ? error : undefined;
    for (const reader of this.#readers) reader.end(error);
    this.#readers.clear();
    this.#resolveClosed(reason);
  }
}

/**
 * Connects to a server with the given codec and handlers.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages (from the codec).
 * @typeParam Out The type of messages the client sends (from the codec).
 * @param options Where to connect, codec, handlers and reconnection; see
 * {@linkcode ConnectOptions}.
 * @returns The client, once its first connection is open.
 * @throws {Deno.errors.ConnectionRefused} (and other connect errors) when the
 * first connection fails and `reconnect` is off or gives up.
 *
 * @example Reconnecting with backoff
 * ```ts
 * import { connect, listen } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * const opened: number[] = [];
 * await using client = await connect({
 *   port: server.addr.port,
 *   reconnect: { initialDelay: 10 },
 *   onOpen: (session) => void opened.push(session.id),
 * });
 * // The server drops us; the client comes back on its own.
 * for (const session of server.sessions) await session.close("kicked");
 * while (opened.length < 2) await new Promise((r) => setTimeout(r, 10));
 * assert.ok(client.session !== undefined);
 * ```
 */
export async function connect<Data = unknown, In = string, Out = In>(
  options: ConnectOptions<Data, In, Out>,
): Promise<Client<Data, In, Out>> {
  const client = new Client(options);
  await client.start();
  return client;
}

function ignore(): void {}
