// A chat server you can join with `nc 127.0.0.1 9000`: nicknames, rooms,
// private messages. It is the seed's proving case and a tour of the public
// API: listen() with the lines codec and limits, a Router for the commands,
// rooms and broadcast from the SessionManager, the nick in session.data, and
// a graceful shutdown.
//
//   deno task chat [--hostname 127.0.0.1] [--port 9000] [--idle 600]
//                  [--rate 10] [--max-clients 10000] [--max-per-ip 32]
//                  [--frame-timeout 10] [--drain-timeout 2] [--web-port 9001]
//                  [--cluster nats://127.0.0.1:4222 | redis://127.0.0.1:6379]
//                  [--node-timeout 5] [--reuse-port] [--metrics-port 9090]
//                  [--recovery-window 120]
//
// `--metrics-port PORT` (0 for any free one) serves Prometheus metrics at
// http://127.0.0.1:PORT/metrics and a live stats page drawing them at
// http://127.0.0.1:PORT/ (loopback only: they are for the operator, not for
// the chat's users).
//
// Browsers join at http://127.0.0.1:9001/ (chat_web.ts: the page, and its
// WebSocket at /ws, in the same rooms with the same commands).
//
// The protocol, one UTF-8 line each way (`\n` or `\r\n`):
//
//   text              everyone else in your room gets `<nick>: text`
//   /nick NAME        everyone in your room, you included, gets
//                     `* <old> is now NAME`
//   /msg NAME text    only NAME (in any room) gets `[<nick>] text`
//   /who              you get `* online: ` + the nicks of your room
//   /join ROOM        your old room gets `* <nick> left`, the new one
//                     `* <nick> joined`, you get `* you are in ROOM`
//   /quit             you get `* bye`, then the server hangs up
//   /help             you get the list of commands
//
// Decisions worth knowing:
// - Everyone starts as `guest<id>` in room `lobby`. Announcements (joined,
//   left, renames) go to the room they happen in, like `/who` and plain
//   lines; `/msg` is server-wide because it names its recipient.
// - Nicks and rooms are 1 to 24 of `A-Z a-z 0-9 _ -`. Nicks are unique
//   regardless of case (`Ada` and `ada` can't both be online, so nobody can
//   pose as somebody else), keep the case they were typed in, and
//   `/msg ada` reaches `Ada`. `guest<digits>` is reserved for the automatic
//   names. Room names are case-sensitive.
// - `/who` sorts nicks in code-unit order (`Array.prototype.sort`).
// - Errors go to the sender only, as `! <reason>`. Blank lines are ignored.
//   Lines with control characters (other than tab) are refused with
//   `! control characters are not allowed`: they could drive the other
//   users' terminals.
// - A line over 4096 bytes gets `! line too long`, invalid UTF-8 gets
//   `! invalid UTF-8`; both then disconnect the sender (the codec can't find
//   its way back into the stream). Nobody else notices but `* <nick> left`.
// - Flow control: a fast talker is slowed down to what its room can take
//   (the server stops reading it; TCP pushes back), so readers that keep up
//   never lose a line. A peer that stops reading holds the room back for at
//   most `--drain-timeout` seconds (default 2), or until 256 KiB wait for
//   it, and is then cut off. A peer silent for `--idle` seconds (default
//   600, 0 = never) is disconnected.
// - Rate limit: `--rate N` is how many lines per second a client may send on
//   average (default 10), with bursts of 2N (a pasted paragraph goes through
//   at once); faster typing is throttled, not refused. `--rate 0` turns it
//   off.
// - Limits that keep one address from locking everyone out: at most
//   `--max-per-ip` connections per address (default 32) and `--max-clients`
//   in all (default 10000); extra connections are closed at once. A line
//   must arrive whole within `--frame-timeout` seconds (default 10) of its
//   first byte (slowloris). Join and leave notices are one shared encoding
//   per room, so a big room's announcements stay cheap.
// - Ctrl-C or SIGTERM: everyone gets `* server shutting down`, queued lines
//   are delivered (up to 2 s), then the server exits with status 0. A second
//   signal exits at once with status 1.
// - `--cluster URL`: this server is one node of a chat spread over several
//   servers sharing a NATS or Redis broker; every command works across them.
//   See chat_cluster.ts. `--reuse-port` lets several nodes share one port
//   (Linux; the `chat` task runs with --unstable-net for it). A node serves
//   the web page only when `--web-port` is given; its browser users are in
//   the cluster's chat like everyone else.
import {
  type ClusterBridge,
  DecodeError,
  defaultRouteKey,
  FrameTooLargeError,
  lines,
  listen,
  metricsHandler,
  PROMETHEUS_CONTENT_TYPE,
  prometheusMetrics,
  type RateLimitOptions,
  Router,
  type Server,
  type ServerOptions,
  type Session,
  SessionManager,
  type TcpListenOptions,
} from "../mod.ts";
import { chatWebServer, startChatWeb } from "./chat_web.ts";
import statsPage from "./stats_page.html" with { type: "text" };

/**
 * The options the chat's TCP and WebSocket servers share: the
 * transport-independent ones, and the per-IP limit both network transports
 * take.
 */
export type ChatSettings =
  & ServerOptions<Member, string, string>
  & Pick<TcpListenOptions, "maxConnectionsPerIp">;

/** What the chat keeps per connection, in `session.data`. */
export interface Member {
  /** The nick, as typed. */
  nick: string;
  /** The one room the member is in. */
  room: string;
}

/** A chat connection. */
export type ChatSession = Session<Member, string>;

// Two minutes (as Ably's): a lift, a tunnel, a laptop lid, a switch from
// Wi-Fi to LTE. Meanwhile the member stays in /who and keeps its nick.
const DEFAULT_RECOVERY_WINDOW = 120_000;

/** Options of {@linkcode chatServer}. */
export interface ChatOptions {
  /** The address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** The port; 0 picks a free one. @default {9000} */
  port?: number;
  /** Disconnect peers silent for this many milliseconds; 0 never. @default {600000} */
  idleTimeout?: number;
  /** Bytes that may wait for a slow reader before it is cut off. @default {262144} */
  outboundBudget?: number;
  /** How long a reader may hold the room back, in milliseconds. @default {2000} */
  drainTimeout?: number;
  /** Lines per second a client may send on average; 0: no limit. @default {10} */
  rate?: number;
  /** Connections in all. @default {10000} */
  maxClients?: number;
  /** Connections per address. @default {32} */
  maxPerIp?: number;
  /** A started line must complete within this many milliseconds; 0: never. @default {10000} */
  frameTimeout?: number;
  /** Share the port with other processes (needs --unstable-net). @default {false} */
  reusePort?: boolean;
  /** Be one node of a clustered chat (see chat_cluster.ts). */
  cluster?: ChatCluster;
  /** Also serve the web page and its WebSocket on this port; unset: no web. */
  webPort?: number;
  /**
   * Keep a client's session this many milliseconds after its connection
   * drops (`chat_client.ts --recovery`, and the web page); 0: off.
   * @default {120000}
   */
  recoveryWindow?: number;
}

/**
 * What a clustered chat adds (chat_cluster.ts implements it): nicks, `/who`
 * and `/msg` across nodes. Announcements made here stay here (`local`);
 * the other nodes make their own from presence.
 */
export interface ChatCluster {
  /** Given to listen(). */
  bridge: ClusterBridge;
  /** The session id holding `nick` on any node (case-insensitive). */
  find(nick: string): number | undefined;
  /** The nicks in `room` on every node, sorted. */
  who(room: string): string[];
  /** A local session changed its nick. */
  renamed(session: ChatSession): void;
  /** The server is up; `rename` renames a local session as /nick does. */
  start(
    server: Server<Member, string>,
    rename: (session: ChatSession, nick: string) => void,
  ): void;
}

/** The longest line a client may send, in bytes. */
export const MAX_LINE_BYTES = 4096;
/** The room everyone starts in. */
export const LOBBY = "lobby";

const NAME = /^[A-Za-z0-9_-]{1,24}$/;
const GUEST = /^guest[0-9]+$/i;
// C0 controls but tab, DEL, and C1 controls (U+0080–U+009F).
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/;
const NOT_BLANK = /\S/;
// The route key of a plain line. Commands start with "/", so it can't clash.
const SAY = "say";

/**
 * Starts a chat server (the CLI below is a thin wrapper around it).
 *
 * @param options Address and limits.
 * @returns The running server.
 */
export function chatServer(options: ChatOptions = {}): Server<Member, string> {
  // Lower-cased nick → its session, for uniqueness and /msg.
  const byNick = new Map<string, ChatSession>();
  // Sessions whose arrival was announced, so their departure will be too.
  const greeted = new WeakSet<ChatSession>();
  const online = (nick: string): ChatSession | undefined => {
    const session = byNick.get(nick.toLowerCase());
    return session?.state === "open" ? session : undefined;
  };
  const cluster = options.cluster;
  // Announcements: with a cluster, the other nodes make their own.
  const local = cluster === undefined ? {} : { local: true };
  const rename = (session: ChatSession, name: string): void => {
    const member = session.data;
    const old = member.nick;
    if (byNick.get(old.toLowerCase()) === session) {
      byNick.delete(old.toLowerCase());
    }
    byNick.set(name.toLowerCase(), session);
    member.nick = name;
    server.sessions.broadcast(`* ${old} is now ${name}`, {
      room: member.room,
      ...local,
    });
    cluster?.renamed(session);
  };
  const taken = (name: string, session: ChatSession): boolean => {
    if ((online(name) ?? session) !== session) return true;
    const id = cluster?.find(name);
    return id !== undefined && id !== session.id;
  };

  const router = new Router<string, string, ChatSession>({
    key: (line) => line.startsWith("/") ? defaultRouteKey(line) : SAY,
    fallback: (session, _line, key) => {
      session.send(`! unknown command ${key}`);
    },
  })
    // Middleware that vetoes a line before any handler sees it.
    .before((_session, line) => NOT_BLANK.test(line))
    .before((session, line) => {
      if (!CONTROL.test(line)) return true;
      session.send("! control characters are not allowed");
      return false;
    })
    .on(SAY, (session, line) => {
      const { nick, room } = session.data;
      server.sessions.broadcast(`${nick}: ${line}`, { room, except: session });
    })
    .on("/nick", (session, line, key) => {
      const name = argument(line, key);
      const member = session.data;
      if (!NAME.test(name)) {
        session.send("! usage: /nick NAME (1 to 24 letters, digits, _ or -)");
      } else if (name === member.nick) {
        session.send(`! you are already ${name}`);
      } else if (GUEST.test(name)) {
        session.send("! guest names are reserved");
      } else if (taken(name, session)) {
        session.send(`! nick ${name} is taken`);
      } else {
        rename(session, name);
      }
    })
    .on("/msg", (session, line, key) => {
      const rest = argument(line, key);
      const space = rest.indexOf(" ");
      const text = space < 0 ? "" : rest.slice(space + 1);
      if (!NOT_BLANK.test(text)) {
        session.send("! usage: /msg NAME text");
        return;
      }
      const name = rest.slice(0, space);
      const target = online(name);
      const said = `[${session.data.nick}] ${text}`;
      // On another node: send-by-id crosses the cluster.
      const id = target === undefined ? cluster?.find(name) : undefined;
      if (target !== undefined) target.send(said);
      else if (id === undefined || !server.sessions.send(id, said)) {
        session.send(`! no such user ${name}`);
      }
    })
    .on("/who", (session) => {
      if (cluster !== undefined) {
        session.send(`* online: ${cluster.who(session.data.room).join(", ")}`);
        return;
      }
      const nicks: string[] = [];
      for (const member of server.sessions.members(session.data.room)) {
        nicks.push(member.data.nick);
      }
      session.send(`* online: ${nicks.sort().join(", ")}`);
    })
    .on("/join", (session, line, key) => {
      const room = argument(line, key);
      const member = session.data;
      if (!NAME.test(room)) {
        session.send("! usage: /join ROOM (1 to 24 letters, digits, _ or -)");
        return;
      }
      if (room === member.room) {
        session.send(`! you are already in ${room}`);
        return;
      }
      const { sessions } = server;
      sessions.leave(session, member.room);
      sessions.broadcast(`* ${member.nick} left`, {
        room: member.room,
        ...local,
      });
      member.room = room;
      sessions.join(session, room);
      sessions.broadcast(`* ${member.nick} joined`, {
        room,
        except: session,
        ...local,
      });
      session.send(`* you are in ${room}`);
    })
    .on("/quit", (session) => {
      session.send("* bye");
      // close() delivers "* bye" first; onClose tells the room.
      session.close("quit");
    })
    .on("/help", (session) => {
      session.send(
        "* commands: /nick NAME, /msg NAME text, /who, /join ROOM, /quit, /help",
      );
    });

  // One manager for TCP and WebSocket members: rooms and broadcasts span both.
  const settings: ChatSettings = {
    sessions: new SessionManager(),
    codec: lines({ maxLineBytes: MAX_LINE_BYTES }),
    outboundBudget: options.outboundBudget ?? 256 * 1024,
    drainTimeout: options.drainTimeout ?? 2000,
    idleTimeout: options.idleTimeout ?? 10 * 60 * 1000,
    frameTimeout: options.frameTimeout ?? 10_000,
    maxConnections: options.maxClients ?? 10_000,
    maxConnectionsPerIp: options.maxPerIp ?? 32,
    ...rateLimit(options.rate ?? 10),
    // Recovery (issue 17): a client that drops comes back to its session.
    ...((options.recoveryWindow ?? DEFAULT_RECOVERY_WINDOW) > 0 &&
      {
        recovery: {
          window: options.recoveryWindow ?? DEFAULT_RECOVERY_WINDOW,
          // A session whose node died, resumed here (a cluster with room
          // history): it is known here from now on; no second welcome.
          onResume: (session: ChatSession) => {
            if (greeted.has(session)) return;
            greeted.add(session);
            byNick.set(session.data.nick.toLowerCase(), session);
          },
        },
      }),
    // A departing member's last lines ("* bye", "! line too long") are
    // short: a second is plenty, and its nick is free again sooner.
    closeTimeout: 1000,
    data: (session) => ({ nick: `guest${session.id}`, room: LOBBY }),
    onOpen: (session) => {
      const { nick, room } = session.data;
      byNick.set(nick.toLowerCase(), session);
      greeted.add(session);
      server.sessions.join(session, room);
      session.send(`* welcome ${nick}`);
      server.sessions.broadcast(`* ${nick} joined`, {
        room,
        except: session,
        ...local,
      });
    },
    onMessage: router.handler,
    onClose: (session) => {
      // The manager has already taken the session out of its room.
      const { nick, room } = session.data;
      if (!greeted.delete(session)) return; // closed before onOpen ran
      const key = nick.toLowerCase();
      // Someone may have taken the nick while this session was closing.
      if (byNick.get(key) === session) byNick.delete(key);
      server.sessions.broadcast(`* ${nick} left`, { room, ...local });
    },
    onError: (error, session) => {
      if (session === undefined) {
        console.error("chat:", error);
      } else if (error instanceof FrameTooLargeError) {
        // Decode errors arrive while the session is still open: this last
        // reply is delivered, then the session closes itself.
        session.send("! line too long");
      } else if (error instanceof DecodeError) {
        session.send("! invalid UTF-8");
      } else {
        console.error(`chat: session ${session.id}:`, error);
        session.send("! internal error");
      }
    },
  };
  const hostname = options.hostname ?? "127.0.0.1";
  const server = listen({
    hostname,
    port: options.port ?? 9000,
    ...settings,
    ...(options.reusePort && { reusePort: true }),
    ...(cluster && { cluster: cluster.bridge }),
  });
  cluster?.start(server, rename);
  if (options.webPort !== undefined) {
    try {
      startChatWeb(server, settings, { hostname, port: options.webPort });
    } catch (error) {
      void server.shutdown();
      throw error;
    }
  }
  return server;
}

// `rate` lines per second on average, bursts of twice that; throttled.
function rateLimit(rate: number): { rateLimit?: RateLimitOptions } {
  if (rate <= 0) return {};
  return {
    rateLimit: {
      messagesPerSecond: rate,
      messageBurst: Math.max(1, Math.round(2 * rate)),
      policy: "throttle",
    },
  };
}

// The text after a command word, without surrounding blanks.
function argument(line: string, key: string): string {
  return line.slice(key.length + 1).trim();
}

const USAGE = `usage: chat_server.ts [--hostname HOST] [--port PORT] [options]
  --hostname HOST          address to bind (default 127.0.0.1)
  --port PORT              port to listen on, 0 for any free one (default 9000)
  --idle SECONDS           disconnect clients silent this long, 0 never (default 600)
  --rate N                 lines per second a client may send on average,
                           bursts of 2N; 0 for no limit (default 10)
  --max-clients N          connections in all (default 10000)
  --max-per-ip N           connections per address (default 32)
  --frame-timeout SECONDS  a line must arrive whole within this, 0 never (default 10)
  --drain-timeout SECONDS  how long a client that stops reading may hold
                           its room back before it is cut off (default 2)
  --cluster URL            be one node of a chat shared over a broker:
                           nats://HOST:PORT or redis://HOST:PORT
  --node-timeout SECONDS   with --cluster: a silent node's users leave after
                           this long (default 5)
  --reuse-port             share the port with other processes (Linux;
                           needs deno run --unstable-net)
  --web-port PORT          serve the web chat (page at /, WebSocket at /ws)
                           on this port (default 9001, or 0 with --port 0;
                           with --cluster: only when given)
  --metrics-port PORT      serve Prometheus metrics at /metrics, and a live
                           stats page at /, on 127.0.0.1:PORT, 0 for any
                           free one (default: off)
  --recovery-window SECONDS  a client that loses its connection (the web
                           page, or chat_client.ts --recovery) gets its
                           session back, nick and room, and every line it
                           missed, within this; 0 off (default 120)`;

interface Flags {
  hostname: string;
  port: number;
  idle: number;
  rate: number;
  "max-clients": number;
  "max-per-ip": number;
  "frame-timeout": number;
  "drain-timeout": number;
  cluster: string;
  "node-timeout": number;
  "reuse-port": boolean;
  "web-port": number;
  "metrics-port": number;
  "recovery-window": number;
}

const COUNTS = new Set([
  "port",
  "max-clients",
  "max-per-ip",
  "web-port",
  "metrics-port",
]);

// Parses `--name value` and `--name=value`; exits with status 2 on misuse.
function parseFlags(args: string[]): Flags {
  const flags: Flags = {
    hostname: "127.0.0.1",
    port: 9000,
    idle: 600,
    rate: 10,
    "max-clients": 10_000,
    "max-per-ip": 32,
    "frame-timeout": 10,
    "drain-timeout": 2,
    cluster: "",
    "node-timeout": 5,
    "reuse-port": false,
    "web-port": -1, // unset: see below
    "metrics-port": -1, // unset: no metrics
    "recovery-window": DEFAULT_RECOVERY_WINDOW / 1000,
  };
  const fail = (message: string): never => {
    console.error(`chat_server: ${message}\n${USAGE}`);
    Deno.exit(2);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    }
    if (arg === "--reuse-port") {
      flags["reuse-port"] = true;
      continue;
    }
    const match =
      /^--(hostname|port|idle|rate|max-clients|max-per-ip|frame-timeout|drain-timeout|cluster|node-timeout|web-port|metrics-port|recovery-window)(?:=(.*))?$/
        .exec(arg);
    if (match === null) fail(`unknown argument ${arg}`);
    const name = match![1] as keyof Flags;
    const value = match![2] ?? args[++i];
    if (value === undefined) fail(`--${name} needs a value`);
    if (name === "hostname" || name === "cluster") {
      flags[name] = value!;
      continue;
    }
    const number = Number(value);
    if (value!.trim() === "" || !Number.isFinite(number) || number < 0) {
      fail(`--${name} must be a non-negative number, got ${value}`);
    }
    if (COUNTS.has(name) && !Number.isInteger(number)) {
      fail(`--${name} must be an integer, got ${value}`);
    }
    if (
      (name === "port" || name === "web-port" || name === "metrics-port") &&
      number > 65535
    ) {
      fail(`--${name} must be an integer from 0 to 65535, got ${value}`);
    }
    if ((name === "max-clients" || name === "max-per-ip") && number < 1) {
      fail(`--${name} must be at least 1, got ${value}`);
    }
    (flags as unknown as Record<string, number>)[name] = number;
  }
  // A free port for the web side too when the TCP one is picked freely.
  // A cluster node serves the web only when asked: nodes on one machine
  // would all want 9001.
  if (flags["web-port"] < 0 && flags.cluster === "") {
    flags["web-port"] = flags.port === 0 ? 0 : 9001;
  }
  return flags;
}

function hostPort(addr: Deno.NetAddr): string {
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  return `${host}:${addr.port}`;
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args);
  let server: Server<Member, string>;
  // Loaded only with --cluster: the single-node chat needs no broker client.
  const cluster = flags.cluster === ""
    ? undefined
    : await (await import("./chat_cluster.ts")).chatCluster({
      url: flags.cluster,
      nodeTimeout: Math.round(flags["node-timeout"] * 1000),
      recoveryWindow: Math.round(flags["recovery-window"] * 1000),
    }).catch((error) => {
      console.error(`chat_server: cannot join ${flags.cluster}: ${error}`);
      Deno.exit(1);
    });
  try {
    server = chatServer({
      hostname: flags.hostname,
      port: flags.port,
      idleTimeout: Math.round(flags.idle * 1000),
      rate: flags.rate,
      maxClients: flags["max-clients"],
      maxPerIp: flags["max-per-ip"],
      frameTimeout: Math.round(flags["frame-timeout"] * 1000),
      drainTimeout: Math.round(flags["drain-timeout"] * 1000),
      ...(flags["reuse-port"] && { reusePort: true }),
      ...(cluster && { cluster }),
      ...(flags["web-port"] >= 0 && { webPort: flags["web-port"] }),
      recoveryWindow: Math.round(flags["recovery-window"] * 1000),
    });
  } catch (error) {
    console.error(
      `chat_server: cannot listen on ${flags.hostname}:${flags.port}: ${
        error instanceof Error ? error.message : error
      }`,
    );
    Deno.exit(1);
  }
  console.log(
    `chat server listening on ${hostPort(server.addr as Deno.NetAddr)}`,
  );
  if (cluster) console.log(`cluster node ${cluster.name} via ${flags.cluster}`);
  const web = chatWebServer(server);
  if (web !== undefined) {
    console.log(
      `chat web page on http://${hostPort(web.addr as Deno.NetAddr)}/`,
    );
  }
  // Both servers in one exposition: they share the session manager.
  const metrics = flags["metrics-port"] < 0 ? undefined : serveMetrics(
    flags["metrics-port"],
    web ? [server, web] : [server],
    // A cluster node adds its broker's figures (cluster.ts is loaded
    // already: --cluster imported it).
    cluster &&
      await import("../cluster.ts").then(({ clusterMetrics }) => () =>
        clusterMetrics(cluster.cluster)
      ),
  );
  if (metrics !== undefined) {
    console.log(`metrics on http://${hostPort(metrics.addr)}/metrics`);
  }

  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const stopped = Promise.withResolvers<void>();
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) Deno.exit(1); // a second Ctrl-C: don't wait any longer
    stopping = true;
    stopped.resolve();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);

  await stopped.promise;
  server.sessions.broadcast("* server shutting down");
  await Promise.all([
    server.shutdown({ timeout: 2000 }),
    web?.shutdown({ timeout: 2000 }),
    metrics?.shutdown(),
  ]);
  await cluster?.close();
  for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  // Nothing is left running: the process exits with status 0 by itself.
}

/**
 * Serves the Prometheus text at /metrics and, at /, a page drawing it live
 * (sessions, messages in and out per second, drops, queued bytes), on
 * 127.0.0.1 only: operators' figures, not the chat users'.
 *
 * @param port The port; 0 picks a free one.
 * @param servers The chat's servers (TCP, and the web one when running).
 * @param more More exposition text to append (a cluster node's).
 * @returns The HTTP server.
 */
export function serveMetrics(
  port: number,
  servers: Server<Member, string>[],
  more?: () => string,
): Deno.HttpServer<Deno.NetAddr> {
  const handler = metricsHandler(servers);
  const metrics = more === undefined ? handler : (request: Request) => {
    const response = handler(request);
    if (response.status !== 200 || request.method !== "GET") return response;
    return new Response(prometheusMetrics(servers) + more(), {
      headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
    });
  };
  return Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    (request) => {
      const { pathname } = new URL(request.url);
      if (pathname !== "/" && pathname !== "/index.html") {
        return metrics(request);
      }
      return new Response(statsPage, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "content-security-policy":
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
          "x-content-type-options": "nosniff",
        },
      });
    },
  );
}

if (import.meta.main) await main();
