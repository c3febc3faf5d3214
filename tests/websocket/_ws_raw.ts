// Test helper: a raw WebSocket client written from the socket-free modules,
// so tests can send anything (unmasked frames, bad lengths, floods) to
// `listen({ transport: "websocket" })` and see exactly what comes back.
import {
  FrameParser,
  type WebSocketMessage,
} from "../../src/websocket/_frame_parser.ts";
import { encodeFrame, type Opcode } from "../../src/websocket/_frame_writer.ts";
import { ResponseHeadParser } from "../../src/websocket/_http_head.ts";
import { dial } from "../_server.ts";
import { delay, within, writeAll } from "../_util.ts";

/** The key of RFC 6455's example handshake. */
export const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** An upgrade request for `path` with extra header lines. */
export function upgradeRequest(path = "/ws", extra = ""): Uint8Array {
  return new TextEncoder().encode(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\n` +
      `Sec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
}

/** What a raw client read until the server closed. */
export interface Outcome {
  /** The messages received. */
  messages: WebSocketMessage[];
  /** Pong payloads received, as text. */
  pongs: string[];
  /** The close frame's code, if one came. */
  closeCode: number | undefined;
  /** The close frame's reason, if one came. */
  closeReason?: string;
  /** Whether the connection ended (EOF or reset) within the wait. */
  ended: boolean;
}

/** A raw, upgraded connection. */
export class RawWebSocket {
  readonly conn: Deno.TcpConn;
  readonly outcome: Outcome = {
    messages: [],
    pongs: [],
    closeCode: undefined,
    ended: false,
  };
  readonly #parser: FrameParser;
  readonly #reading: Promise<void>;

  private constructor(conn: Deno.TcpConn, rest: Uint8Array) {
    this.conn = conn;
    this.#parser = new FrameParser({
      role: "client",
      maxMessageBytes: 64 << 20,
      onPong: (p) => this.outcome.pongs.push(new TextDecoder().decode(p)),
      onClose: (code, reason) => {
        this.outcome.closeCode = code;
        this.outcome.closeReason = reason;
      },
    });
    this.#feed(rest);
    this.#reading = this.#read();
  }

  /** Connects and upgrades; throws unless the answer is 101. */
  static async open(port: number, path = "/ws"): Promise<RawWebSocket> {
    const conn = await dial(port);
    await writeAll(conn, upgradeRequest(path));
    const head = new ResponseHeadParser();
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) {
        conn.close();
        throw new Error("EOF during the handshake");
      }
      const used = head.push(buffer.subarray(0, n));
      if (used < 0) continue;
      if (head.head!.status !== 101) {
        conn.close();
        throw new Error(`status ${head.head!.status}`);
      }
      return new RawWebSocket(conn, buffer.slice(used, n));
    }
  }

  #feed(bytes: Uint8Array): void {
    try {
      this.#parser.decode(bytes, (m) => this.outcome.messages.push(m));
    } catch {
      // A broken server frame: the test sees it as a missing message.
    }
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        this.#feed(buffer.subarray(0, n));
      }
    } catch {
      // Reset: ended all the same.
    }
    this.outcome.ended = true;
  }

  /** Sends one frame, masked unless `masked` is false. */
  async frame(
    opcode: Opcode,
    payload: Uint8Array | string,
    fin = true,
    masked = true,
  ): Promise<void> {
    await this.write(encodeFrame(opcode, payload, fin, masked));
  }

  /** Writes raw bytes; ignores a connection the server already closed. */
  async write(bytes: Uint8Array): Promise<void> {
    try {
      await writeAll(this.conn, bytes);
    } catch {
      // The server may have closed already: what it sent is in `outcome`.
    }
  }

  /** Waits until `n` messages arrived. */
  async messages(n: number, ms = 5000): Promise<WebSocketMessage[]> {
    const deadline = Date.now() + ms;
    while (this.outcome.messages.length < n) {
      if (Date.now() > deadline || this.outcome.ended) {
        throw new Error(
          `got ${this.outcome.messages.length} of ${n} messages`,
        );
      }
      await delay(5);
    }
    return this.outcome.messages;
  }

  /** Waits for the server to end the connection, then closes ours. */
  async ended(ms = 5000): Promise<Outcome> {
    const deadline = Date.now() + ms;
    while (!this.outcome.ended && Date.now() < deadline) await delay(5);
    this.close();
    await this.#reading;
    return this.outcome;
  }

  /** Closes our side at once. */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Closes and waits for the reader. */
  async dispose(): Promise<void> {
    this.close();
    await this.#reading;
  }
}

/**
 * Sends raw bytes on a fresh connection and reads until the server ends it
 * (failing after `ms`); returns what was read, as text.
 */
export async function exchange(
  port: number,
  bytes: Uint8Array,
  ms = 5000,
): Promise<string> {
  const conn = await dial(port);
  const reading = (async () => {
    let text = "";
    const buffer = new Uint8Array(4096);
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += decoder.decode(buffer.subarray(0, n), { stream: true });
      }
    } catch {
      // A reset ends it too.
    }
    return text;
  })();
  try {
    await writeAll(conn, bytes).catch(() => {});
    return await within(reading, ms, "the server to end the connection");
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    await reading;
  }
}
