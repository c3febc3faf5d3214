// The client side: the same Session and codecs over Deno.connect, with
// optional reconnection and exponential backoff.
import type { Codec } from "./codec/codec.ts";
import { lines } from "./codec/lines.ts";
import { Session, type SessionOptions } from "./session.ts";
import { validateConnectOptions } from "./_validate_options.ts";

/**
 * When and how a {@linkcode Client} reconnects after losing its connection.
 * Delays grow from `initialDelay` by `factor` up to `maxDelay`, each with up
 * to ±`jitter` of random spread so that many clients don't return at once.
 *
 * @example Giving up once the server is gone
 * ```ts
 * import { connect, listen, type ReconnectOptions } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * const backoff: ReconnectOptions = { initialDelay: 5, maxDelay: 20, jitter: 0, maxAttempts: 3 };
 * await using client = await connect({
 *   port: (server.addr as Deno.NetAddr).port,
 *   reconnect: backoff,
 * });
 * await server.shutdown(); // retried after 5, 10 and 20 ms, then given up
 * assert.equal(await client.closed, "eof");
 * assert.equal(client.session, undefined);
 * ```
 */
export interface ReconnectOptions {
  /**
   * The delay before the first retry, in milliseconds.
   *
   * @default {100}
   */
  initialDelay?: number;
  /**
   * The longest delay between retries, in milliseconds.
   *
   * @default {5000}
   */
  maxDelay?: number;
  /**
   * How much each delay grows.
   *
   * @default {2}
   */
  factor?: number;
  /**
   * Random spread of each delay, as a fraction of it.
   *
   * @default {0.2}
   */
  jitter?: number;
  /**
   * Give up after this many failed attempts in a row.
   *
   * @default {Infinity}
   */
  maxAttempts?: number;
}

/**
 * Options of {@linkcode connect}: where to connect, the codec, the session
 * handlers (they run for every connection the client makes), and
 * reconnection.
 *
 * @typeParam Data The type of `Session.data`.
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages the client sends.
 *
 * @example JSON, per-connection data and a greeting on open
 * ```ts
 * import { type ConnectOptions, connect, json, listen } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Msg = { from: string };
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: json<Msg>(),
 *   onMessage: (session, message) => void session.send({ from: `hi ${message.from}` }),
 * });
 * const reply = Promise.withResolvers<Msg>();
 * const options: ConnectOptions<{ name: string }, Msg, Msg> = {
 *   hostname: "127.0.0.1",
 *   port: (server.addr as Deno.NetAddr).port,
 *   codec: json<Msg>(),
 *   data: () => ({ name: "ada" }),
 *   onOpen: (session) => void session.send({ from: session.data.name }),
 *   onMessage: (_session, message) => reply.resolve(message),
 * };
 * await using client = await connect(options);
 * assert.deepEqual(await reply.promise, { from: "hi ada" });
 * assert.equal(client.session?.data.name, "ada");
 * ```
 */
export interface ConnectOptions<Data, In, Out>
  extends Omit<SessionOptions<Data, In, Out>, "codec"> {
  /**
   * The server's host name or address.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The server's port (for TCP). */
  port?: number;
  /**
   * `"unix"` connects to the Unix domain socket at `path`.
   *
   * @default {"tcp"}
   */
  transport?: "tcp" | "unix";
  /** The socket path, for `transport: "unix"`. */
  path?: string;
  /**
   * Connect with TLS. `caCerts` adds trusted PEM certificates (e.g. a
   * self-signed one); `true` uses the system's roots.
   */
  tls?: true | { caCerts?: string[] };
  /**
   * The framing, as on the server.
   *
   * @default {lines()}
   */
  codec?: Codec<In, Out>;
  /** Creates each connection's initial `data`, before `onOpen`. */
  data?: (session: Session<unknown, In, Out>) => Data;
  /**
   * Reconnect when the connection is lost (`true` for the defaults). When
   * off, the client is closed for good with its first connection.
   *
   * @default {false}
   */
  reconnect?: boolean | ReconnectOptions;
  /** Aborting it closes the client and stops reconnecting. */
  signal?: AbortSignal;
}

/**
 * A connection to a server that can outlive its sessions: with `reconnect`,
 * a lost connection is replaced by a new session after a backoff.
 * Create one with {@linkcode connect}.
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
 *   port: (server.addr as Deno.NetAddr).port,
 *   codec: lines(),
 *   onMessage: (_session, line) => reply.resolve(line),
 * });
 * client.send("hi");
 * assert.equal(await reply.promise, "echo hi");
 * ```
 */
export class Client<Data = unknown, In = string, Out = In>
  implements AsyncDisposable {
  /** Resolves with the last close reason once the client is closed for good. */
  readonly closed: Promise<string>;

  readonly #options: ConnectOptions<Data, In, Out>;
  readonly #sessionOptions: SessionOptions<Data, In, Out>;
  readonly #reconnect: Required<ReconnectOptions> | undefined;
  readonly #resolveClosed: (reason: string) => void;
  readonly #abortListener: () => void;
  #session: Session<Data, In, Out> | undefined;
  #closing: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  /**
   * Prepares a client; {@linkcode connect} creates and starts one.
   *
   * @param options Where to connect, codec, handlers, reconnection.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(options: ConnectOptions<Data, In, Out>) {
    validateConnectOptions(options);
    this.#options = options;
    const codec = options.codec ?? (lines() as unknown as Codec<In, Out>);
    this.#sessionOptions = { ...options, codec };
    const reconnect = options.reconnect;
    this.#reconnect = reconnect === undefined || reconnect === false
      ? undefined
      : {
        initialDelay: 100,
        maxDelay: 5000,
        factor: 2,
        jitter: 0.2,
        maxAttempts: Infinity,
        ...(reconnect === true ? {} : reconnect),
      };
    const { promise, resolve } = Promise.withResolvers<string>();
    this.closed = promise;
    this.#resolveClosed = resolve;
    this.#abortListener = () => void this.close("aborted");
  }

  /** The current session, while connected. */
  get session(): Session<Data, In, Out> | undefined {
    return this.#session?.state === "open" ? this.#session : undefined;
  }

  /**
   * Sends through the current session.
   *
   * @param message The message.
   * @returns `true` when queued; `false` while disconnected or when the
   * session refused it.
   * @throws {TypeError} When the codec cannot encode the message.
   */
  send(message: Out): boolean {
    return this.session?.send(message) ?? false;
  }

  /**
   * Closes the current session and stops reconnecting.
   *
   * @param reason The close reason.
   * @returns A promise that resolves once everything is released.
   */
  async close(reason = "closed"): Promise<void> {
    this.#closing ??= reason;
    this.#wake?.();
    await this.#session?.close(reason);
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
   * Makes the first connection, then keeps reconnecting in the background
   * when so configured. {@linkcode connect} calls it.
   *
   * @returns A promise that resolves once the first connection is open.
   * @throws {Deno.errors.ConnectionRefused} (and other connect errors) when
   * the first connection fails and `reconnect` is off, or its attempts are
   * used up.
   */
  async start(): Promise<void> {
    const signal = this.#options.signal;
    signal?.throwIfAborted();
    signal?.addEventListener("abort", this.#abortListener, { once: true });
    try {
      await this.#attempt(true);
    } catch (error) {
      this.#finish("error");
      throw error;
    }
    this.#loop = this.#keepConnected();
  }

  async #keepConnected(): Promise<void> {
    let reason = "closed";
    while (this.#session !== undefined) {
      reason = await this.#session.closed;
      this.#session = undefined;
      if (this.#reconnect === undefined || this.#closing !== undefined) break;
      try {
        await this.#attempt(false);
      } catch {
        break; // attempts used up, or closed while waiting
      }
    }
    this.#finish(this.#closing ?? reason);
  }

  // Connects, retrying with backoff when reconnection is on. `first` tries
  // at once; a reconnection waits the initial delay first.
  async #attempt(first: boolean): Promise<void> {
    const policy = this.#reconnect;
    let delay = policy?.initialDelay ?? 0;
    for (let attempt = 1;; attempt++) {
      if (!first || attempt > 1) {
        if (policy === undefined) throw new Error("Reconnection is off");
        await this.#sleep(spread(delay, policy.jitter));
        delay = Math.min(delay * policy.factor, policy.maxDelay);
      }
      if (this.#closing !== undefined) throw new Error("Client closed");
      try {
        const conn = await this.#dial();
        if (this.#closing !== undefined) {
          conn.close();
          throw new Error("Client closed");
        }
        this.#open(conn);
        return;
      } catch (error) {
        if (this.#closing !== undefined) throw error;
        if (policy === undefined || attempt >= policy.maxAttempts) {
          throw error;
        }
      }
    }
  }

  #dial(): Promise<Deno.Conn> {
    const options = this.#options;
    if (options.transport === "unix") {
      if (options.path === undefined) {
        throw new TypeError("A unix transport needs a path");
      }
      return Deno.connect({ transport: "unix", path: options.path });
    }
    if (options.port === undefined) {
      throw new TypeError("A tcp transport needs a port");
    }
    const hostname = options.hostname ?? "127.0.0.1";
    const tls = options.tls;
    if (tls === undefined) {
      return Deno.connect({ hostname, port: options.port });
    }
    const caCerts = tls === true ? undefined : tls.caCerts;
    return Deno.connectTls(
      caCerts === undefined
        ? { hostname, port: options.port }
        : { hostname, port: options.port, caCerts },
    );
  }

  #open(conn: Deno.Conn): void {
    const session = new Session(conn, this.#sessionOptions);
    const data = this.#options.data;
    if (data !== undefined) session.data = data(session);
    this.#session = session;
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

  #finish(reason: string): void {
    this.#options.signal?.removeEventListener("abort", this.#abortListener);
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
 *   port: (server.addr as Deno.NetAddr).port,
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

function spread(delay: number, jitter: number): number {
  return Math.max(0, delay * (1 + jitter * (Math.random() * 2 - 1)));
}
