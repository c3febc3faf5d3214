// The chat in a browser: a WebSocket server that serves the page
// (chat_page.html) at `/` and the chat itself at `/ws`, with the SAME
// handlers and the SAME SessionManager as the TCP server, so browser users
// and `nc` users share nicks, rooms and commands: one line per WebSocket
// text message. chat_server.ts starts it; see its `--web-port` flag.
import { listen, type Server, type WebSocketListenOptions } from "../mod.ts";
import type { ChatSettings, Member } from "./chat_server.ts";
// A text import: bundled with the module, no read permission needed.
import page from "./chat_page.html" with { type: "text" };
// The browser client module, served as it is (no build step).
import browserModule from "../src/browser/microsocket.js" with {
  type: "text",
};

/** Where the web page and its WebSocket listen. */
export interface ChatWebOptions {
  /** The address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** The port; 0 picks a free one. @default {9001} */
  port?: number;
}

const webServers = new WeakMap<
  Server<Member, string>,
  Server<Member, string>
>();

/**
 * Starts the web side next to a TCP chat server.
 *
 * @param tcp The TCP chat server; its web server is found with
 * {@linkcode chatWebServer}.
 * @param settings The TCP server's options (handlers, codec, limits and its
 * `sessions` manager), shared as they are.
 * @param options Where to listen.
 * @returns The WebSocket server.
 */
export function startChatWeb(
  tcp: Server<Member, string>,
  settings: ChatSettings,
  options: ChatWebOptions = {},
): Server<Member, string> {
  const where: WebSocketListenOptions = {
    transport: "websocket",
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 9001,
    path: "/ws",
    handshakeTimeout: 10_000,
    // Browsers offer permessage-deflate: a chat broadcast is compressed
    // once for all of them (lines under 128 bytes go as they are).
    perMessageDeflate: true,
    serve: (request) => {
      const { pathname } = new URL(request.url);
      if (pathname === "/microsocket.js") {
        return new Response(browserModule, {
          headers: {
            "content-type": "text/javascript; charset=utf-8",
            "x-content-type-options": "nosniff",
          },
        });
      }
      if (pathname !== "/" && pathname !== "/index.html") {
        return new Response("Not found\n", { status: 404 });
      }
      // The page resumes its session when the server keeps them.
      const body = page.replace(
        'data-recovery="off"',
        `data-recovery="${settings.recovery === undefined ? "off" : "on"}"`,
      );
      return new Response(body, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          // The page runs only its own scripts and talks only to its own
          // origin.
          "content-security-policy":
            "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
          "x-content-type-options": "nosniff",
        },
      });
    },
  };
  // A clustered chat: the TCP server carries the cluster for the manager
  // both servers share, so web sessions get cluster-wide ids and their room
  // traffic crosses nodes too (frames from other nodes are re-encoded as
  // WebSocket messages for them).
  // Recovery, when on, is shared too: the page resumes its session with
  // src/browser/microsocket.js.
  const { cluster: _cluster, ...shared } = settings;
  const web = listen<Member, string, string>({
    ...shared,
    ...where,
    // A line of the TCP chat is at most 4 KiB: so is a message here.
    maxMessageBytes: 4096,
  });
  webServers.set(tcp, web);
  return web;
}

/**
 * The web server started next to `tcp`, if any.
 *
 * @param tcp A chat server from `chatServer()`.
 * @returns Its WebSocket server, or `undefined`.
 */
export function chatWebServer(
  tcp: Server<Member, string>,
): Server<Member, string> | undefined {
  return webServers.get(tcp);
}
