// The message log of a resumable session (issue 17) keeps the order the
// peer got: a direct message sent after broadcasts, in the same turn, is
// replayed after them, whatever the codec (with or without encodeInto).
import assert from "node:assert/strict";
import { type Codec, lines, type Session } from "../../mod.ts";
import { testServer } from "../_server.ts";
import { until, within } from "../_util.ts";
import { hello, ok } from "./_hello.ts";

const text = new TextDecoder();

// lines(), but encode() only: send() takes its other path.
function encodeOnly(): Codec<string, string> {
  const base = lines();
  return {
    name: "lines-encode-only",
    encode: (message) => base.encode(message),
    decoder: (link) => base.decoder(link),
  };
}

for (
  const [name, codec] of [["lines", lines()], [
    "encode only",
    encodeOnly(),
  ]] as const
) {
  Deno.test(`recovery log (${name}): a direct message after broadcasts is replayed after them`, async () => {
    const sessions: Session<unknown, string, string>[] = [];
    await using server = testServer({
      codec,
      recovery: { window: 10_000 },
      onOpen: (session) => {
        session.join("feed");
        sessions.push(session);
      },
    });
    const port = server.addr.port;
    const first = await hello(port, "new");
    const { id, token } = ok(first.answer);
    await until(() => sessions.length === 1, 2000, "the session");
    // One turn: the peer gets b1, d1, b2 in this order.
    server.sessions.broadcast("b1", { room: "feed" });
    sessions[0]!.send("d1");
    server.sessions.broadcast("b2", { room: "feed" });
    const expected = "b1\nd1\nb2\n";
    let got = text.decode(first.rest);
    const buffer = new Uint8Array(1024);
    while (got.length < expected.length) {
      const n = await within(first.conn.read(buffer), 2000, "the lines");
      if (n === null) break;
      got += text.decode(buffer.subarray(0, n));
    }
    assert.equal(got, expected);
    first.conn.close();
    // Resumed having taken none of them: the replay is the same lines.
    const second = await hello(port, `resume ${id} ${token} 0`);
    assert.equal(ok(second.answer).recovered, true);
    let replayed = text.decode(second.rest);
    while (replayed.length < expected.length) {
      const n = await within(second.conn.read(buffer), 2000, "the replay");
      if (n === null) break;
      replayed += text.decode(buffer.subarray(0, n));
    }
    assert.equal(replayed, expected);
    second.conn.close();
  });
}
