// The outbound queue on its own, without a socket: ordering, coalescing,
// shared ranges, accounting and dropping.
import assert from "node:assert/strict";
import { OutboundQueue } from "../../src/session/_outbound_queue.ts";

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

/** Writes everything out, one nextWrite() at a time. */
function drain(queue: OutboundQueue): { writes: number; data: number[] } {
  const data: number[] = [];
  let writes = 0;
  for (;;) {
    const chunk = queue.nextWrite();
    if (chunk === undefined) break;
    data.push(...chunk);
    writes++;
    queue.completed();
  }
  return { writes, data };
}

Deno.test("OutboundQueue keeps private and shared frames in order and writes them in one go", () => {
  const queue = new OutboundQueue();
  const segment = bytes(10, 11, 12, 13, 14, 15);
  queue.pushPrivate(bytes(1, 2));
  queue.pushShared(segment, 0, 2);
  queue.pushShared(segment, 2, 4); // continues the open range
  queue.pushPrivate(bytes(3));
  queue.pushShared(segment, 5, 6); // a gap: a new range
  assert.equal(queue.queuedBytes, 8);
  assert.equal(queue.frames, 5);
  const { writes, data } = drain(queue);
  assert.equal(writes, 1);
  assert.deepEqual(data, [1, 2, 10, 11, 12, 13, 3, 15]);
  assert.equal(queue.queuedBytes, 0);
  assert.equal(queue.writtenBytes, 8);
});

Deno.test("OutboundQueue hands a lone shared range out as it is, without a copy", () => {
  const queue = new OutboundQueue();
  const segment = new Uint8Array(100);
  for (let i = 0; i < 10; i++) queue.pushShared(segment, i * 10, i * 10 + 10);
  const chunk = queue.nextWrite()!;
  assert.equal(chunk.buffer, segment.buffer, "copied");
  assert.equal(chunk.byteLength, 100);
  queue.completed();
});

Deno.test("OutboundQueue: one write in flight at a time; later frames wait for the next", () => {
  const queue = new OutboundQueue();
  queue.pushPrivate(bytes(1));
  const first = queue.nextWrite()!;
  assert.deepEqual([...first], [1]);
  queue.pushPrivate(bytes(2));
  queue.pushPrivate(bytes(3));
  assert.equal(queue.nextWrite(), undefined, "two writes in flight");
  assert.equal(queue.hasPending, true);
  queue.completed();
  assert.deepEqual(drain(queue).data, [2, 3]);
});

Deno.test("OutboundQueue writes a large frame alone and by reference", () => {
  const queue = new OutboundQueue();
  const large = new Uint8Array(20000).fill(7);
  queue.pushPrivate(bytes(1));
  queue.pushPrivate(large);
  queue.pushPrivate(bytes(2));
  const writes: Uint8Array[] = [];
  for (let chunk; (chunk = queue.nextWrite()) !== undefined;) {
    writes.push(chunk);
    queue.completed();
  }
  assert.deepEqual(writes.map((chunk) => chunk.byteLength), [1, 20000, 1]);
  assert.equal(writes[1], large);
});

Deno.test("OutboundQueue.flushed() resolves when written, false when dropped, and a write completing after drop() changes nothing", async () => {
  const queue = new OutboundQueue();
  queue.pushPrivate(bytes(1, 2, 3));
  const flushed = queue.flushed();
  queue.nextWrite();
  queue.completed();
  assert.equal(await flushed, true);

  queue.pushPrivate(bytes(4));
  queue.nextWrite(); // in flight
  queue.pushPrivate(bytes(5));
  const waiting = queue.flushed();
  queue.drop();
  assert.equal(await waiting, false);
  queue.completed(); // the in-flight write finishes after the drop
  assert.equal(queue.queuedBytes, 0, "the count went negative");
  assert.equal(await queue.flushed(), false, "waits forever");
  assert.equal(queue.nextWrite(), undefined);
});

Deno.test("OutboundQueue encodes straight into its private chunk", () => {
  const queue = new OutboundQueue();
  const chunk = queue.privateChunk();
  const start = queue.privateFill;
  chunk.set([9, 8, 7], start);
  queue.commitPrivate(start + 3);
  assert.equal(queue.queuedBytes, 3);
  assert.deepEqual(drain(queue).data, [9, 8, 7]);
});

Deno.test("OutboundQueue: every logged range a write takes is in the log before the write is handed out", () => {
  const queue = new OutboundQueue();
  const recorded: string[] = [];
  queue.log = {
    record: (base, start, end, frames = 1) =>
      void recorded.push(`${base[0]}:${start}-${end}x${frames}`),
    recordCopy: () => {},
    canReplayFrom: () => false,
    replay: () => false,
  };
  const a = bytes(1, 1, 1, 1);
  const b = bytes(2, 2, 2, 2);
  queue.pushShared(a, 0, 2, 1, true);
  queue.pushShared(a, 2, 4, 1, true); // one range of two
  queue.pushShared(b, 0, 4, 1, true); // another segment: the first is sealed
  assert.deepEqual(recorded, [], "recorded off the per-delivery path");
  const write = queue.nextWrite();
  assert.ok(write !== undefined);
  assert.deepEqual(recorded, ["1:0-4x2", "2:0-4x1"]);
  queue.completed();
  // The usual broadcast turn: one range, recorded as it is handed out.
  queue.pushShared(b, 0, 2, 1, true);
  queue.nextWrite();
  assert.deepEqual(recorded, ["1:0-4x2", "2:0-4x1", "2:0-2x1"]);
});
