// The message log of a resumable session (issue 17): replay from any
// position gives exactly the messages from there on, broadcast ranges
// shared (never copied), bounds kept, and a position it can't serve is
// refused, never partly served.
import assert from "node:assert/strict";
import { lines } from "../../mod.ts";
import { MessageLog } from "../../src/recovery/_message_log.ts";
import { SegmentWriter } from "../../src/_shared_segment.ts";
import { resumableSessions } from "../../src/session/_outbound_log.ts";

const text = new TextDecoder();

function replayed(log: MessageLog, from: number): [string, number] | false {
  let out = "";
  let frames = 0;
  const ok = log.replay(from, (base, start, end, n) => {
    out += text.decode(base.subarray(start, end));
    frames += n;
  });
  return ok && [out, frames];
}

// Runs `fn` and lets the pass end (the segment writer schedules it), as if
// a resumable session were open (segments keep their frame ends then).
async function inPass(fn: () => void): Promise<void> {
  resumableSessions.count++;
  try {
    fn();
  } finally {
    resumableSessions.count--;
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("MessageLog: a pass's broadcasts are one range; replay from every position", async () => {
  const codec = lines();
  const writer = new SegmentWriter();
  const log = new MessageLog({ maxMessages: 100, maxBytes: 1 << 20 });
  const bases = new Set<Uint8Array>();
  let first = -1;
  await inPass(() => {
    for (let n = 1; n <= 10; n++) {
      writer.write(codec, String(n));
      bases.add(writer.base);
      if (first === -1) first = writer.start;
    }
  });
  assert.equal(bases.size, 1, "one segment");
  // As the outbound queue records it: one range of 10 messages, by
  // reference.
  log.record(writer.base, first, writer.end, 10);
  // A private message, copied, between passes.
  const own = new TextEncoder().encode("own\n");
  log.recordCopy(own, 0, own.length);
  own.fill(0); // the caller reuses its bytes: the log kept a copy
  assert.equal(log.total, 11);
  const all = Array.from({ length: 10 }, (_, i) => `${i + 1}\n`);
  all.push("own\n");
  for (let from = 0; from <= 11; from++) {
    assert.deepEqual(
      replayed(log, from),
      [all.slice(from).join(""), 11 - from],
      `from ${from}`,
    );
  }
  assert.equal(replayed(log, 12), false, "from the future");
  assert.equal(replayed(log, -1), false);
  assert.equal(replayed(log, 1.5), false);
});

Deno.test("MessageLog: bounds drop whole entries; a trimmed position is refused", async () => {
  const codec = lines();
  const writer = new SegmentWriter();
  const log = new MessageLog({ maxMessages: 5, maxBytes: 1 << 20 });
  for (let pass = 0; pass < 4; pass++) {
    await inPass(() => {
      let first = -1;
      for (let n = 1; n <= 3; n++) {
        writer.write(codec, `${pass}.${n}`);
        if (first === -1) first = writer.start;
      }
      log.record(writer.base, first, writer.end, 3);
    });
  }
  assert.equal(log.total, 12);
  assert.ok(log.total - log.first <= 5, `${log.total - log.first} kept`);
  assert.equal(log.first, 9, "whole passes dropped");
  assert.equal(replayed(log, 8), false, "trimmed");
  assert.deepEqual(replayed(log, 10), ["3.2\n3.3\n", 2]);
  const bytes = new MessageLog({ maxMessages: 100, maxBytes: 10 });
  for (let n = 0; n < 5; n++) bytes.recordCopy(new Uint8Array(4), 0, 4);
  assert.ok(bytes.bytes <= 10);
  assert.equal(bytes.first, 3);
});

Deno.test("MessageLog: frames that aren't a segment's can't be split: a position inside is refused", (): Promise<void> => {
  const log = new MessageLog({ maxMessages: 100, maxBytes: 1 << 20 });
  // E.g. a cluster node's frames, copied into a segment as one chunk.
  const frames = new TextEncoder().encode("a\nb\nc\n");
  log.record(frames, 0, frames.length, 3);
  assert.deepEqual(replayed(log, 0), ["a\nb\nc\n", 3]);
  assert.equal(replayed(log, 1), false);
  assert.deepEqual(replayed(log, 3), ["", 0]);
  // Copied into a segment as several frames at once: the segment's frame
  // ends no longer tell its messages apart.
  const writer = new SegmentWriter();
  const copied = new MessageLog({ maxMessages: 100, maxBytes: 1 << 20 });
  writer.copy(frames, 3);
  copied.record(writer.base, writer.start, writer.end, 3);
  assert.equal(replayed(copied, 1), false);
  assert.deepEqual(replayed(copied, 0), ["a\nb\nc\n", 3]);
  return new Promise<void>((resolve) => setTimeout(resolve, 0));
});

Deno.test("MessageLog: the ring grows while it wraps around; replay still gives every message in order", () => {
  const log = new MessageLog({ maxMessages: 20, maxBytes: 1 << 20 });
  const encode = (line: string) => new TextEncoder().encode(line);
  // Entries of six messages each that can't be split, the first of them
  // trimmed early: the ring's head moves before it has to grow.
  for (let n = 0; n < 4; n++) {
    const frame = encode("x\n".repeat(6));
    log.record(frame, 0, frame.length, 6);
  }
  assert.equal(log.first, 6);
  const singles: string[] = [];
  for (let n = 0; n < 15; n++) {
    singles.push(`${n}\n`);
    const own = encode(`${n}\n`);
    log.recordCopy(own, 0, own.length);
  }
  assert.equal(log.total, 39);
  assert.ok(log.total - log.first <= 20);
  for (let from = log.total - 15; from <= log.total; from++) {
    const rest = singles.slice(from - (log.total - 15));
    assert.deepEqual(replayed(log, from), [rest.join(""), rest.length]);
  }
  assert.equal(replayed(log, log.first - 1), false, "trimmed");
});
