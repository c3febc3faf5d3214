// Raw recovery clients for tests: the preamble by hand.
import assert from "node:assert/strict";
import { utf8, within } from "../_util.ts";
import { MAGIC } from "../../src/recovery/_preamble.ts";

const decoder = new TextDecoder();

// Opens a raw connection that speaks the preamble: sends `line`, returns
// the answer line and the connection.
export async function hello(
  port: number,
  line: string,
): Promise<{ answer: string; rest: Uint8Array; conn: Deno.TcpConn }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const text = utf8(line + "\n");
  const out = new Uint8Array(MAGIC.length + text.length);
  out.set(MAGIC);
  out.set(text, MAGIC.length);
  await conn.write(out);
  let got = new Uint8Array(0);
  const buffer = new Uint8Array(1024);
  while (got.indexOf(0x0a, MAGIC.length) === -1) {
    const n = await within(conn.read(buffer), 2000, "the answer");
    if (n === null) break;
    const next = new Uint8Array(got.length + n);
    next.set(got);
    next.set(buffer.subarray(0, n), got.length);
    got = next;
  }
  assert.deepEqual(got.subarray(0, MAGIC.length), MAGIC);
  const end = got.indexOf(0x0a, MAGIC.length);
  return {
    answer: decoder.decode(got.subarray(MAGIC.length, end)),
    rest: got.subarray(end + 1),
    conn,
  };
}

export interface Ok {
  id: number;
  token: string;
  recovered: boolean;
}

export function ok(answer: string): Ok {
  const [word, recovered, id, token] = answer.split(" ");
  assert.equal(word, "ok", answer);
  return { id: Number(id), token: token!, recovered: recovered === "1" };
}
