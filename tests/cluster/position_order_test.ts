// src/cluster/history/_position_order.ts: live entries leave in position
// order; one after a gap waits (bounded) for the positions before it.
import assert from "node:assert/strict";
import { PositionOrder } from "../../src/cluster/history/_position_order.ts";
import { delay } from "../_util.ts";

Deno.test("entries that arrive out of order leave in position order", () => {
  const out: number[] = [];
  const order = new PositionOrder<number>(1000, (n) => out.push(n));
  try {
    order.push(1, 1);
    order.push(2, 2);
    order.push(4, 4); // 3 is late: 4 waits
    assert.deepEqual(out, [1, 2]);
    order.push(3, 3);
    assert.deepEqual(out, [1, 2, 3, 4]);
  } finally {
    order.close();
  }
});

Deno.test("after a gap that never fills, the entry goes once the window passed", async () => {
  const out: number[] = [];
  const order = new PositionOrder<number>(20, (n) => out.push(n));
  try {
    order.push(5, 5);
    order.push(9, 9); // 6-8 are another room's
    assert.deepEqual(out, [5]);
    await delay(60);
    assert.deepEqual(out, [5, 9]);
    order.push(10, 10);
    assert.deepEqual(out, [5, 9, 10]);
  } finally {
    order.close();
  }
});

Deno.test("a new sequence (new epoch) hands on what waits and starts again", () => {
  const out: number[] = [];
  const order = new PositionOrder<number>(1000, (n) => out.push(n));
  try {
    order.push(100, 100);
    order.push(102, 102);
    order.reset();
    assert.deepEqual(out, [100, 102]);
    order.push(1, 1);
    order.push(2, 2);
    assert.deepEqual(out, [100, 102, 1, 2]);
  } finally {
    order.close();
  }
});
