// The cluster's words on the recovery wire (src/recovery/_cluster_wire.ts):
// they round-trip, and a version-1 peer reads the lines carrying them as
// it did before (the extension hook of _preamble.ts).
import assert from "node:assert/strict";
import {
  parsePositionRecord,
  positionRecord,
  positionWords,
  readPosition,
} from "../../src/recovery/_cluster_wire.ts";
import {
  MAGIC,
  parseAnswer,
  parseHello,
  readPreamble,
} from "../../src/recovery/_preamble.ts";

const TOKEN = "abcdefghijklmnopqrstuvwx";
const EPOCH = "2026-12-03T06:58:44.123456789Z";

Deno.test("cluster wire: positions ride on hello and answer, ignored by v1", () => {
  const words = positionWords({ position: 1_234_567, epoch: EPOCH });
  const hello = `resume 7 ${TOKEN} 12${words}`;
  assert.deepEqual(parseHello(hello), {
    kind: "resume",
    id: 7,
    token: TOKEN,
    received: 12,
  });
  assert.deepEqual(readPosition(hello), { position: 1_234_567, epoch: EPOCH });
  const answer = `ok 0 7 ${TOKEN} 0 30000${words}`;
  assert.equal(parseAnswer(answer)?.kind, "ok");
  assert.deepEqual(readPosition(answer), {
    position: 1_234_567,
    epoch: EPOCH,
  });
  // A local session's lines carry none; malformed ones are none.
  assert.equal(readPosition(`resume 7 ${TOKEN} 12`), undefined);
  assert.equal(readPosition(`resume 7 ${TOKEN} 12 pos=-1 epoch=e`), undefined);
  assert.equal(readPosition(`resume 7 ${TOKEN} 12 pos=01 epoch=e`), undefined);
  assert.equal(readPosition(`resume 7 ${TOKEN} 12 pos=1`), undefined);
  assert.throws(() => positionWords({ position: 1, epoch: "a b" }), TypeError);
  assert.throws(() => positionWords({ position: 1.5, epoch: "e" }), RangeError);
});

Deno.test("cluster wire: a position record is a preamble line", async () => {
  const record = positionRecord(42);
  assert.deepEqual(record.subarray(0, MAGIC.length), MAGIC);
  // The same reader that reads a hello reads it, and what follows is left.
  const frame = new TextEncoder().encode("hello\n");
  const bytes = new Uint8Array(record.length + frame.length);
  bytes.set(record);
  bytes.set(frame, record.length);
  const conn = { read: () => Promise.resolve(null) } as unknown as Deno.Conn;
  const read = await readPreamble(conn, performance.now() + 100, false, bytes);
  assert.equal(read.line, "pos 42");
  assert.equal(parsePositionRecord(read.line!), 42);
  assert.deepEqual(read.rest, frame);
  assert.equal(parsePositionRecord("ok 0 1"), undefined);
  assert.equal(parsePositionRecord("pos x"), undefined);
  assert.throws(() => positionRecord(-1), RangeError);
});
