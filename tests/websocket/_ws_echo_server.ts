// Test helper: a throwaway WebSocket echo server on a loopback port, built
// from nothing but the socket-free WebSocket modules (head parser,
// handshake, frame parser, frame writer) over `conn.read`/`conn.write`.
// Interop tests point independent clients (Deno's WebSocket, npm:ws,
// Chromium) at it before the modules are wired into Session.
import { RequestHeadParser } from "../../src/websocket/_http_head.ts";
import {
  checkUpgrade,
  httpResponse,
  upgradeResponse,
} from "../../src/websocket/_handshake.ts";
import {
  FrameParser,
  type WebSocketMessage,
} from "../../src/websocket/_frame_parser.ts";
import {
  encodeCloseFrame,
  encodeFrame,
  encodeFrameInto,
  encodeTextFrameInto,
  Opcode,
} from "../../src/websocket/_frame_writer.ts";
import { portOf } from "../_server.ts";
import { within } from "../_util.ts";

/** The echo server's message limit. */
export const MAX_MESSAGE = 8 << 20;
/** Binary echoes over this size go back in fragments of this size. */
export const FRAGMENT = 1 << 20;

/** What the echo server saw, for the tests to check. */
export interface Seen {
  closes: [number, string][];
  pongs: string[];
  errors: unknown[];
}

/**
 * A minimal echo server: upgrades requests for `/ws` (subprotocol
 * `chat.v1`), answers `GET /` with a page and anything else with 404, and
 * echoes every message. Binary messages over 1 MiB go back in 1 MiB
 * fragments. Text commands: `ping:<x>` sends a ping and reports the pong as
 * `pong:<x>`; `close:<code>` closes from the server side.
 */
export function startEchoServer(): EchoServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const seen: Seen = { closes: [], pongs: [], errors: [] };

  async function serve(conn: Deno.Conn): Promise<void> {
    // One write at a time, in order: the single-writer rule.
    let tail = Promise.resolve();
    const send = (bytes: Uint8Array) => {
      tail = tail.then(async () => {
        for (let at = 0; at < bytes.length;) {
          at += await conn.write(bytes.subarray(at));
        }
      }).catch(() => {});
      return tail;
    };
    let closeSent = false;
    const head = new RequestHeadParser();
    const parser = new FrameParser({
      role: "server",
      maxMessageBytes: MAX_MESSAGE,
      onPing: (payload) => void send(encodeFrame(Opcode.pong, payload)),
      onPong: (payload) => {
        const text = new TextDecoder().decode(payload);
        seen.pongs.push(text);
        void send(encodeFrame(Opcode.text, `pong:${text}`));
      },
      onClose: (code, reason) => {
        seen.closes.push([code, reason]);
        if (!closeSent) {
          closeSent = true;
          void send(encodeCloseFrame(code === 1005 ? undefined : code, reason));
        }
      },
    });
    const echo = (message: WebSocketMessage) => {
      if (typeof message === "string") {
        if (message.startsWith("ping:")) {
          void send(encodeFrame(Opcode.ping, message.slice(5)));
        } else if (message.startsWith("close:")) {
          closeSent = true;
          void send(encodeCloseFrame(Number(message.slice(6)), "server bye"));
        } else {
          const out = new Uint8Array(message.length * 3 + 14);
          void send(
            out.subarray(0, encodeTextFrameInto(out, 0, message, true, false)),
          );
        }
        return;
      }
      if (message.length <= FRAGMENT) {
        const out = new Uint8Array(message.length + 14);
        void send(
          out.subarray(
            0,
            encodeFrameInto(out, 0, Opcode.binary, message, true, false),
          ),
        );
        return;
      }
      for (let at = 0; at < message.length; at += FRAGMENT) {
        const end = Math.min(message.length, at + FRAGMENT);
        void send(encodeFrame(
          at === 0 ? Opcode.binary : Opcode.continuation,
          message.subarray(at, end),
          end === message.length,
        ));
      }
    };

    const buffer = new Uint8Array(65536);
    let upgraded = false;
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let chunk = buffer.subarray(0, n);
        if (!upgraded) {
          const used = head.push(chunk);
          if (used < 0) continue;
          const decision = checkUpgrade(head.head!, {
            path: "/ws",
            protocols: ["chat.v1"],
          });
          if (decision.kind === "http") {
            await send(
              head.head!.path === "/"
                ? httpResponse(200, "<!doctype html><title>echo</title>", {
                  "Content-Type": "text/html; charset=utf-8",
                })
                : httpResponse(404, "Not found\n"),
            );
            break;
          }
          if (decision.kind === "reject") {
            await send(decision.response);
            break;
          }
          await send(await upgradeResponse(decision.key, decision.protocol));
          upgraded = true;
          chunk = chunk.subarray(used);
        }
        parser.decode(chunk, echo);
        if (parser.closed) break;
      }
    } catch (error) {
      seen.errors.push(error);
    } finally {
      await tail;
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // the listener was closed
      }
      conns.add(conn);
      const task = serve(conn);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();

  return {
    port: portOf(listener.addr),
    seen,
    async close(): Promise<void> {
      listener.close();
      await accepting;
      // Let connections finish their closing handshake, then cut the rest.
      await within(Promise.all(tasks), 2000, "connections ending").catch(
        () => {},
      );
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all(tasks);
    },
  };
}

/** A running echo server. */
export interface EchoServer {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** What it saw. */
  readonly seen: Seen;
  /** Stops it: lets connections finish closing (2 s), then cuts them. */
  close(): Promise<void>;
}
