// The broadcast segment on its own: frames of consecutive flush passes sit
// side by side while the channel is busy (so a receiver whose write was in
// flight still writes them as one range, with no copy of its own), and the
// segment is let go once the channel has been quiet for a while.
import assert from "node:assert/strict";
import { SegmentWriter } from "../../src/_shared_segment.ts";
import { OutboundQueue } from "../../src/session/_outbound_queue.ts";
import { scheduleFlush } from "../../src/session/_flush_scheduler.ts";
import { lines } from "../../mod.ts";

/** Lets one flush pass run (it is a setImmediate). */
function pass(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("SegmentWriter keeps a busy channel's frames of several passes in one segment", async () => {
  const codec = lines();
  const writer = new SegmentWriter();
  const queue = new OutboundQueue();
  writer.write(codec, "one");
  queue.pushShared(writer.base, writer.start, writer.end);
  const first = writer.base;
  // The receiver's write is in flight across the next passes.
  const inFlight = queue.nextWrite();
  assert.deepEqual(new TextDecoder().decode(inFlight), "one\n");
  await pass();
  writer.write(codec, "two");
  queue.pushShared(writer.base, writer.start, writer.end);
  await pass();
  writer.write(codec, "three");
  queue.pushShared(writer.base, writer.start, writer.end);
  assert.equal(writer.base, first, "a busy channel keeps its segment");
  queue.completed();
  // Both later frames leave in one write that is a view of the segment.
  const next = queue.nextWrite()!;
  assert.equal(next.buffer, first.buffer, "no gathered copy");
  assert.equal(new TextDecoder().decode(next), "two\nthree\n");
  queue.completed();
  assert.equal(queue.nextWrite(), undefined);
});

Deno.test("SegmentWriter lets a quiet channel's segment go", async () => {
  const codec = lines();
  const writer = new SegmentWriter();
  writer.write(codec, "one");
  const first = writer.base;
  // Passes that run anyway (other sessions' writes) count the quiet ones.
  for (let i = 0; i < 80; i++) {
    scheduleFlush({ flushPass() {} });
    await pass();
  }
  writer.write(codec, "two");
  assert.notEqual(writer.base, first, "a new segment after a quiet spell");
  assert.equal(writer.start, 0);
  await pass();
});
