// src/cluster/history/_ordered_appends.ts: appends that must be sent again
// (a broker restart) keep the order they were made in, ahead of the
// appends made meanwhile; one that can't be sent in time is given up.
import assert from "node:assert/strict";
import { OrderedAppends } from "../../src/cluster/history/_ordered_appends.ts";
import { delay } from "../_util.ts";

Deno.test("a failed append goes again before the appends made after it", async () => {
  const applied: number[] = [];
  let failing = new Set([2, 3]);
  let recoveries = 0;
  const appends = new OrderedAppends({
    retryable: () => true,
    recover: async () => {
      recoveries++;
      await delay(20);
      failing = new Set();
    },
    giveUp: 5000,
  });
  // Each append answers after a delay; 2 and 3 fail the first time, while
  // 4 (sent before their failures are known) would succeed.
  const send = (n: number) => async () => {
    await delay(n === 4 ? 1 : 10);
    if (failing.has(n)) throw new Error(`lost ${n}`);
    applied.push(n);
    return n;
  };
  const results = await Promise.all(
    [1, 2, 3, 4].map((n) => appends.run(send(n))),
  );
  const later = await appends.run(send(5));
  assert.deepEqual(results, [1, 2, 3, 4]);
  assert.equal(later, 5);
  // 4 was in flight (and applied) before 2 and 3 failed; nothing made
  // after the failures went ahead of their retries.
  assert.deepEqual(applied, [4, 1, 2, 3, 5]);
  assert.equal(recoveries, 1);
});

Deno.test("appends made during a pause wait for the retries, in order", async () => {
  const applied: number[] = [];
  let down = true;
  const appends = new OrderedAppends({
    retryable: () => true,
    recover: () => delay(5),
    giveUp: 5000,
  });
  const send = (n: number) => async () => {
    await delay(2);
    if (down) throw new Error("disconnected");
    applied.push(n);
  };
  const { promise: reconnected, resolve } = Promise.withResolvers<void>();
  const first = [1, 2, 3].map((n) => appends.run(send(n)));
  appends.pause(reconnected);
  const second = [4, 5, 6].map((n) => appends.run(send(n)));
  await delay(30);
  down = false;
  resolve();
  await Promise.all([...first, ...second]);
  assert.deepEqual(applied, [1, 2, 3, 4, 5, 6]);
});

Deno.test("an append that can't be sent in time is given up", async () => {
  const appends = new OrderedAppends({
    retryable: () => true,
    recover: () => delay(10),
    giveUp: 50,
  });
  await assert.rejects(
    appends.run(() => Promise.reject(new Error("down"))),
    /down/,
  );
  // A non-retryable error is thrown at once.
  const strict = new OrderedAppends({
    retryable: () => false,
    recover: () => Promise.resolve(),
    giveUp: 5000,
  });
  await assert.rejects(
    strict.run(() => Promise.reject(new Error("bad"))),
    /bad/,
  );
});
