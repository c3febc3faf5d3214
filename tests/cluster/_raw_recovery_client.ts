// A recovery client by hand, for the cluster wiring tests: speaks the
// preamble and reads lines() frames and the cluster's MAGIC "pos" records
// (src/recovery/_cluster_wire.ts), keeping counts and the last position as
// the real client must: a position is taken only with the message after it.
import assert from "node:assert/strict";
import { MAGIC } from "../../src/recovery/_preamble.ts";
import { within } from "../_util.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** What a raw client read, in order. */
export type Item = { kind: "line"; text: string; position: number | undefined };

export class RawRecoveryClient {
  conn: Deno.TcpConn;
  id = 0;
  token = "";
  epoch = "";
  /** The last position taken (with its message). */
  position = 0;
  /** Messages decoded (what `received` says). */
  received = 0;
  /** Messages sent. */
  sent = 0;
  answer = "";
  readonly lines: Item[] = [];
  #buffer = new Uint8Array(0);
  #pending: number | undefined;
  #reading: Promise<void> | undefined;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /** Opens a new resumable session on `port`. */
  static async open(port: number): Promise<RawRecoveryClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const client = new RawRecoveryClient(conn);
    await client.#hello("new");
    return client;
  }

  /** Resumes this client's session on `port` (any node). */
  async resume(port: number, words = true): Promise<string> {
    this.#closed = false;
    this.conn = await Deno.connect({ hostname: "127.0.0.1", port });
    this.#buffer = new Uint8Array(0);
    this.#pending = undefined;
    const extra = words
      ? ` pos=${this.position} epoch=${this.epoch} sent=${this.sent}`
      : "";
    await this.#hello(
      `resume ${this.id} ${this.token} ${this.received}${extra}`,
    );
    return this.answer;
  }

  /** Another client with this one's session state (to replay a token). */
  copy(): RawRecoveryClient {
    const copy = new RawRecoveryClient(this.conn);
    copy.id = this.id;
    copy.token = this.token;
    copy.epoch = this.epoch;
    copy.position = this.position;
    copy.received = this.received;
    copy.sent = this.sent;
    return copy;
  }

  /** Sends one line (a message). */
  async send(line: string): Promise<void> {
    await this.conn.write(utf8.encode(line + "\n"));
    this.sent++;
  }

  /** Reads in the background until the connection ends. */
  start(): void {
    this.#reading = this.#read();
  }

  /** Drops the connection as a network failure would. */
  async drop(): Promise<void> {
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // closed already
    }
    await this.#reading;
  }

  /** The texts of the lines read. */
  texts(): string[] {
    return this.lines.map((item) => item.text);
  }

  async #hello(line: string): Promise<void> {
    const body = utf8.encode(line + "\n");
    const out = new Uint8Array(MAGIC.length + body.length);
    out.set(MAGIC);
    out.set(body, MAGIC.length);
    await this.conn.write(out);
    const chunk = new Uint8Array(4096);
    while (this.#buffer.indexOf(0x0a, MAGIC.length) === -1) {
      const n = await within(this.conn.read(chunk), 5000, "the answer");
      if (n === null) throw new Error("closed before the answer");
      this.#append(chunk.subarray(0, n));
    }
    assert.deepEqual(this.#buffer.subarray(0, MAGIC.length), MAGIC);
    const end = this.#buffer.indexOf(0x0a, MAGIC.length);
    this.answer = text.decode(this.#buffer.subarray(MAGIC.length, end));
    this.#buffer = this.#buffer.slice(end + 1);
    const words = this.answer.split(" ");
    if (words[0] !== "ok") return;
    this.id = Number(words[2]);
    this.token = words[3]!;
    for (const word of words) {
      if (word.startsWith("epoch=")) this.epoch = word.slice(6);
      if (word.startsWith("pos=") && words[1] === "0") {
        this.position = Number(word.slice(4));
      }
    }
  }

  #append(bytes: Uint8Array): void {
    const next = new Uint8Array(this.#buffer.length + bytes.length);
    next.set(this.#buffer);
    next.set(bytes, this.#buffer.length);
    this.#buffer = next;
  }

  async #read(): Promise<void> {
    const chunk = new Uint8Array(65536);
    this.#parse();
    for (;;) {
      let n: number | null;
      try {
        n = await this.conn.read(chunk);
      } catch {
        return;
      }
      if (n === null || this.#closed) return;
      this.#append(chunk.subarray(0, n));
      this.#parse();
    }
  }

  #parse(): void {
    for (;;) {
      const buffer = this.#buffer;
      if (buffer.length === 0) return;
      if (buffer[0] === MAGIC[0]) {
        const end = buffer.indexOf(0x0a, MAGIC.length);
        if (end === -1) return;
        const line = text.decode(buffer.subarray(MAGIC.length, end));
        const [kind, value] = line.split(" ");
        assert.equal(kind, "pos", line);
        this.#pending = Number(value);
        this.#buffer = buffer.slice(end + 1);
        continue;
      }
      const end = buffer.indexOf(0x0a);
      if (end === -1) return;
      const line = text.decode(buffer.subarray(0, end));
      this.#buffer = buffer.slice(end + 1);
      this.received++;
      const position = this.#pending;
      this.#pending = undefined;
      if (position !== undefined) this.position = position;
      this.lines.push({ kind: "line", text: line, position });
    }
  }
}
