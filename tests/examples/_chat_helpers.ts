// Helpers for the chat example's end-to-end tests: the real server (or
// client) as a child process, and raw TCP clients that read lines.
import { utf8, within } from "../_util.ts";

const SERVER = new URL("../../examples/chat_server.ts", import.meta.url);
const CLIENT = new URL("../../examples/chat_client.ts", import.meta.url);

/** How a child process ended, with everything it printed. */
export interface Exit {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/**
 * A child `deno run` process whose stdout and stderr are read to the end in
 * the background (so the streams are always consumed and closed).
 */
export class Child {
  readonly process: Deno.ChildProcess;
  /** The child's stdin, when piped. */
  readonly stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #stdout: Promise<string>;
  readonly #stderr: Promise<string>;
  #text = "";
  #wake: (() => void) | undefined;
  #ended = false;

  constructor(script: URL, args: string[], stdin: "piped" | "null") {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", script.pathname, ...args],
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.stdin = stdin === "piped" ? this.process.stdin.getWriter() : undefined;
    this.#stdout = this.#collect();
    this.#stderr = new Response(this.process.stderr).text();
  }

  async #collect(): Promise<string> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.process.stdout) {
        this.#text += decoder.decode(chunk, { stream: true });
        this.#wake?.();
      }
    } finally {
      this.#ended = true;
      this.#wake?.();
    }
    return this.#text;
  }

  /** Everything printed on stdout so far. */
  get stdout(): string {
    return this.#text;
  }

  /** Waits until stdout matches `pattern`; returns the match. */
  async waitFor(pattern: RegExp, ms = 10000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const match = this.#text.match(pattern);
      if (match !== null) return match;
      if (this.#ended) {
        throw new Error(
          `Child ended before printing ${pattern}: ${await this.#stderr}`,
        );
      }
      const changed = new Promise<void>((resolve) => this.#wake = resolve);
      await within(
        changed,
        Math.max(1, deadline - Date.now()),
        `waiting for ${pattern} on stdout; got ${JSON.stringify(this.#text)}`,
      ).finally(() => this.#wake = undefined);
    }
  }

  /** Waits for the process to exit by itself. */
  async exit(ms = 5000): Promise<Exit> {
    const status = await within(this.process.status, ms, "child exit");
    await this.stdin?.close().catch(() => {});
    return {
      code: status.code,
      signal: status.signal,
      stdout: await this.#stdout,
      stderr: await this.#stderr,
    };
  }

  /** Sends `signal` (unless already exited) and waits for the exit. */
  async stop(signal: Deno.Signal = "SIGKILL", ms = 5000): Promise<Exit> {
    try {
      this.process.kill(signal);
    } catch {
      // Already exited.
    }
    return await this.exit(ms);
  }
}

/** A chat server child process, listening on a free port. */
export class ChatServer extends Child {
  /** The port it listens on, once `start()` resolved. */
  port = 0;

  /**
   * Starts `examples/chat_server.ts --hostname 127.0.0.1 --port 0` and waits
   * for its listening line.
   */
  static async start(args: string[] = []): Promise<ChatServer> {
    const server = new ChatServer(
      SERVER,
      ["--hostname", "127.0.0.1", "--port", "0", ...args],
      "null",
    );
    try {
      const match = await server.waitFor(
        /^chat server listening on 127\.0\.0\.1:(\d+)\n/,
      );
      server.port = Number(match[1]);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }
}

/** Starts the chat client example against `port`, with piped stdin. */
export function chatClient(port: number, args: string[] = []): Child {
  return new Child(
    CLIENT,
    ["--hostname", "127.0.0.1", "--port", String(port), ...args],
    "piped",
  );
}

/**
 * Runs `fn` with a fresh chat server, then kills it. Fails when the server
 * wrote anything to stderr (it only does for bugs).
 */
export async function withChat(
  fn: (server: ChatServer) => Promise<void>,
  args: string[] = [],
): Promise<void> {
  const server = await ChatServer.start(args);
  try {
    await fn(server);
  } catch (error) {
    const exit = await server.stop();
    if (exit.stderr !== "" && error instanceof Error) {
      error.message += `\nThe chat server's stderr:\n${exit.stderr}`;
    }
    throw error;
  }
  const exit = await server.stop();
  if (exit.stderr !== "") {
    throw new Error(`The chat server wrote to stderr:\n${exit.stderr}`);
  }
}

/**
 * A raw TCP client reading lines in the background, as `nc` would. Lines
 * are queued; `line()` takes the next one with a timeout.
 */
export class LineClient {
  readonly conn: Deno.TcpConn;
  /** The nick the server gave on connect, when opened with `join()`. */
  nick = "";
  readonly #lines: string[] = [];
  #head = 0;
  #eof = false;
  #wake: (() => void) | undefined;
  readonly #loop: Promise<void>;

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.#loop = this.#read();
  }

  /** Connects to the chat server on `port`. */
  static async open(port: number): Promise<LineClient> {
    return new LineClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Connects and reads the welcome line, remembering the nick. */
  static async join(port: number): Promise<LineClient> {
    const client = await LineClient.open(port);
    const welcome = await client.line();
    const match = /^\* welcome (guest\d+)$/.exec(welcome);
    if (match === null) {
      await client.close();
      throw new Error(`Expected a welcome, got ${JSON.stringify(welcome)}`);
    }
    client.nick = match[1]!;
    return client;
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(16384);
    let partial = "";
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        const text = partial +
          decoder.decode(buffer.subarray(0, n), { stream: true });
        let start = 0;
        for (;;) {
          const newline = text.indexOf("\n", start);
          if (newline < 0) break;
          this.#lines.push(text.slice(start, newline));
          start = newline + 1;
        }
        partial = text.slice(start);
        this.#wake?.();
      }
    } catch {
      // Reset, or closed by close(): both end the stream.
    } finally {
      this.#eof = true;
      this.#wake?.();
    }
  }

  /** Lines received and not taken yet. */
  get pending(): number {
    return this.#lines.length - this.#head;
  }

  /** Whether the server has closed the connection (and all lines are in). */
  get ended(): boolean {
    return this.#eof;
  }

  /** The next line; throws at EOF or after `ms`. */
  async line(ms = 5000): Promise<string> {
    const line = await this.next(ms);
    if (line === null) throw new Error("Connection closed, expected a line");
    return line;
  }

  /** The next line, or `null` at EOF; throws after `ms`. */
  async next(ms = 5000): Promise<string | null> {
    const deadline = Date.now() + ms;
    while (this.#head >= this.#lines.length) {
      if (this.#eof) return null;
      const arrived = new Promise<void>((resolve) => this.#wake = resolve);
      await within(
        arrived,
        Math.max(1, deadline - Date.now()),
        `a line for ${this.nick || "client"} (last: ${
          JSON.stringify(this.#lines[this.#head - 1]?.slice(0, 80))
        })`,
      ).finally(() => this.#wake = undefined);
    }
    const line = this.#lines[this.#head++]!;
    if (this.#head > 4096) {
      this.#lines.splice(0, this.#head);
      this.#head = 0;
    }
    return line;
  }

  /** Expects the server to close the connection next, with no more lines. */
  async expectEof(ms = 5000): Promise<void> {
    const line = await this.next(ms);
    if (line !== null) {
      throw new Error(`Expected EOF, got ${JSON.stringify(line)}`);
    }
  }

  /**
   * Sends `/who` and returns the lines that arrived before its answer: a
   * way to show that nothing else was sent to this client (the server
   * answers in order).
   */
  async drain(ms = 5000): Promise<string[]> {
    this.send("/who");
    const before: string[] = [];
    for (;;) {
      const line = await this.line(ms);
      if (line.startsWith("* online: ")) return before;
      before.push(line);
    }
  }

  /** Sends `text` plus a newline. */
  send(text: string): Promise<void> {
    return this.write(utf8(text + "\n"));
  }

  /** Writes all of `bytes`. */
  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      offset += await this.conn.write(bytes.subarray(offset));
    }
  }

  /** Closes the connection and waits for the reader to stop. */
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.#loop;
  }
}

/**
 * Connects `count` clients one after another, reading each welcome and the
 * `joined` notices of those that came after it.
 */
export async function joinAll(
  port: number,
  count: number,
): Promise<LineClient[]> {
  const clients: LineClient[] = [];
  for (let i = 0; i < count; i++) {
    const client = await LineClient.join(port);
    for (const earlier of clients) {
      const line = await earlier.line();
      if (line !== `* ${client.nick} joined`) {
        await closeAll([...clients, client]);
        throw new Error(`Expected ${client.nick} joined, got ${line}`);
      }
    }
    clients.push(client);
  }
  return clients;
}

/** Closes all clients. */
export async function closeAll(clients: LineClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
}
