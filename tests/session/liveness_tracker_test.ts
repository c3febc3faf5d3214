// Liveness rules with fake time: no socket, no timer.
import assert from "node:assert/strict";
import {
  type LivenessSignals,
  LivenessTracker,
} from "../../src/session/_liveness_tracker.ts";
import { LivenessClock } from "../../src/session/_liveness_clock.ts";

const quiet: LivenessSignals = {
  framesArrived: false,
  wrote: false,
  queued: false,
  busy: false,
  partial: false,
};

function tracker(
  settings: Partial<
    ConstructorParameters<
      typeof LivenessTracker
    >[0]
  >,
): LivenessTracker {
  return new LivenessTracker({
    idleTimeout: 0,
    frameTimeout: 0,
    heartbeatInterval: 0,
    heartbeatMaxMissed: 3,
    ...settings,
  });
}

Deno.test("LivenessTracker: idle after exactly idleTimeout of silence, reset by a frame", () => {
  const t = tracker({ idleTimeout: 1000 });
  assert.equal(t.tick(500, quiet), undefined);
  assert.equal(t.tick(400, quiet), undefined);
  assert.equal(t.tick(100, { ...quiet, framesArrived: true }), undefined);
  assert.equal(t.tick(999, quiet), undefined);
  assert.equal(t.tick(1, quiet), "idle timeout");
});

Deno.test("LivenessTracker: time our handler runs, or another session holds us, is not the peer's silence", () => {
  const t = tracker({ idleTimeout: 1000 });
  for (let i = 0; i < 10; i++) {
    assert.equal(t.tick(500, { ...quiet, busy: true }), undefined);
  }
  assert.equal(t.tick(1000, quiet), "idle timeout");
});

Deno.test("LivenessTracker: a queue that drains excuses silence; one stuck for a whole timeout does not", () => {
  const t = tracker({ idleTimeout: 1000 });
  for (let i = 0; i < 10; i++) {
    assert.equal(
      t.tick(500, { ...quiet, queued: true, wrote: true }),
      undefined,
    );
  }
  // Stuck from here: excused until it has made no progress for a whole
  // timeout (1000 ms), then silence counts again.
  assert.equal(t.tick(500, { ...quiet, queued: true }), undefined);
  assert.equal(t.tick(500, { ...quiet, queued: true }), undefined);
  assert.equal(t.tick(500, { ...quiet, queued: true }), "idle timeout");
});

Deno.test("LivenessTracker: heartbeat pings each interval and gives up after maxMissed", () => {
  const t = tracker({ heartbeatInterval: 100, heartbeatMaxMissed: 2 });
  assert.equal(t.tick(100, quiet), "ping");
  assert.equal(t.tick(100, quiet), "ping");
  assert.equal(t.tick(100, quiet), "heartbeat timeout");
  const u = tracker({ heartbeatInterval: 100, heartbeatMaxMissed: 2 });
  assert.equal(u.tick(100, quiet), "ping");
  assert.equal(u.tick(50, { ...quiet, framesArrived: true }), undefined);
  assert.equal(u.tick(100, quiet), "ping");
  assert.equal(u.tick(100, quiet), "ping");
});

Deno.test("LivenessTracker: a frame left half-sent for frameTimeout closes", () => {
  const t = tracker({ frameTimeout: 300 });
  assert.equal(t.tick(200, { ...quiet, partial: true }), undefined);
  t.frameCompleted();
  assert.equal(t.tick(200, { ...quiet, partial: true }), undefined);
  assert.equal(t.tick(100, { ...quiet, partial: true }), "frame timeout");
});

Deno.test("LivenessClock charges an item added just before a tick only the time since it was added", async () => {
  const clock = new LivenessClock(100);
  const early: number[] = [];
  const late: number[] = [];
  const first = { onTick: (elapsed: number) => void early.push(elapsed) };
  clock.add(first);
  await new Promise((resolve) => setTimeout(resolve, 60));
  const second = { onTick: (elapsed: number) => void late.push(elapsed) };
  clock.add(second);
  await new Promise((resolve) => setTimeout(resolve, 150));
  clock.delete(first);
  clock.delete(second);
  assert.ok(early[0]! >= 90, `first tick ${early[0]}`);
  // Added ~60 ms into a 100 ms tick: charged ~40 ms, not a whole tick.
  assert.ok(late[0]! < 80, `second's first tick charged ${late[0]} ms`);
});
