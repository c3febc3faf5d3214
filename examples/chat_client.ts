// A terminal client for the chat server: prints every line the server sends,
// sends every line typed. It is the client side of the library in a few
// lines: connect() with the same lines codec, handlers like the server's.
//
//   deno task chat:client [--hostname 127.0.0.1] [--port 9000] [--reconnect]
//                         [--recovery]
//
// End of input (Ctrl-D, or the end of a piped file) sends `/quit` and exits
// once the server has answered everything and hung up, so
// `echo /who | deno task chat:client` prints the answer. When the server
// closes the connection the client exits with status 0; if it can't connect
// at all, with status 1.
//
// With `--reconnect` a lost connection is retried with jittered exponential
// backoff (the library's `reconnect` option), and the last `/nick` and
// `/join` typed are replayed on the new connection; only end of input or
// Ctrl-C ends the client then.
//
// With `--recovery` (implies `--reconnect`) a lost connection is first
// resumed: within the server's `--recovery-window` the session goes on, and
// every line sent meanwhile is printed, once, in order; past it, a fresh
// session as with `--reconnect`.
import { type Client, connect, lines, type Session } from "../mod.ts";

const USAGE =
  `usage: chat_client.ts [--hostname HOST] [--port PORT] [--reconnect]
  --hostname HOST   the server's address (default 127.0.0.1)
  --port PORT       the server's port (default 9000)
  --reconnect       reconnect with backoff when the connection is lost
  --recovery        resume the session after a drop, missing nothing
                    (needs the server's --recovery-window; implies --reconnect)`;

interface Flags {
  hostname: string;
  port: number;
  reconnect: boolean;
  recovery: boolean;
}

// Parses `--name value` and `--name=value`; exits with status 2 on misuse.
function parseFlags(args: string[]): Flags {
  const flags: Flags = {
    hostname: "127.0.0.1",
    port: 9000,
    reconnect: false,
    recovery: false,
  };
  const fail = (message: string): never => {
    console.error(`chat_client: ${message}\n${USAGE}`);
    Deno.exit(2);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    }
    if (arg === "--reconnect") {
      flags.reconnect = true;
      continue;
    }
    if (arg === "--recovery") {
      flags.recovery = flags.reconnect = true;
      continue;
    }
    const match = /^--(hostname|port)(?:=(.*))?$/.exec(arg);
    if (match === null) fail(`unknown argument ${arg}`);
    const value = match![2] ?? args[++i];
    if (value === undefined) fail(`${match![0]} needs a value`);
    if (match![1] === "hostname") {
      flags.hostname = value!;
      continue;
    }
    const port = Number(value);
    if (!/^\d+$/.test(value!) || port < 1 || port > 65535) {
      fail(`--port must be an integer from 1 to 65535, got ${value}`);
    }
    flags.port = port;
  }
  return flags;
}

const encoder = new TextEncoder();

// Writes all of `text` to stdout. Awaited per line, so a slow terminal slows
// our reading, and the server's budget decides how long it waits for us.
async function print(text: string): Promise<void> {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    offset += await Deno.stdout.write(bytes.subarray(offset));
  }
}

// The lines typed on stdin, without their `\n` or `\r\n`.
async function* typedLines(): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(4096);
  let pending = "";
  for (;;) {
    const n = await Deno.stdin.read(buffer);
    if (n === null) break;
    pending += decoder.decode(buffer.subarray(0, n), { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline).replace(/\r$/, "");
      pending = pending.slice(newline + 1);
    }
  }
  pending += decoder.decode();
  if (pending !== "") yield pending.replace(/\r$/, "");
}

async function main(): Promise<void> {
  const { hostname, port, reconnect, recovery } = parseFlags(Deno.args);
  // Commands to replay on a new connection, so a reconnect keeps who and
  // where we were.
  const replay = new Map<string, string>();
  let connections = 0;
  let quitting = false;

  let client: Client<unknown, string>;
  try {
    client = await connect({
      hostname,
      port,
      // Generous: the server limits what it accepts, not what it sends.
      codec: lines({ maxLineBytes: 1024 * 1024 }),
      reconnect: reconnect ? { initialDelay: 250, maxDelay: 10000 } : false,
      recovery,
      onOpen: (session: Session<unknown, string>) => {
        if (connections++ > 0) {
          console.error("chat_client: reconnected");
          for (const command of replay.values()) session.send(command);
        }
      },
      onMessage: (_session, line) => print(line + "\n"),
      onClose: (_session, reason) => {
        if (reconnect && !quitting) {
          console.error(`chat_client: disconnected (${reason}), retrying`);
        }
      },
      onError: (error) => console.error("chat_client:", error),
    });
  } catch (error) {
    console.error(
      `chat_client: cannot connect to ${hostname}:${port}: ${
        error instanceof Error ? error.message : error
      }`,
    );
    Deno.exit(1);
  }

  // The server hanging up for good ends the client, even while we wait for
  // input (a pending stdin read can't be cancelled, hence the exit).
  client.closed.then(() => Deno.exit(0));

  for await (const line of typedLines()) {
    if (!client.send(line)) {
      console.error("chat_client: not connected, line not sent");
      continue;
    }
    const command = /^\/(nick|join) /.exec(line)?.[1];
    if (command !== undefined) replay.set(command, line);
  }

  // End of input: ask the server to hang up, so that everything it still
  // has for us arrives first; don't wait forever for it.
  quitting = true;
  const session = client.session;
  if (session !== undefined && session.send("/quit")) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      session.closed,
      new Promise((resolve) => timer = setTimeout(resolve, 2000)),
    ]);
    clearTimeout(timer);
  }
  await client.close();
  Deno.exit(0);
}

if (import.meta.main) await main();
