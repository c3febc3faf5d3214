// Package-internal: one flush pass per event-loop turn for every session with
// bytes to write. A session that gets a frame joins the pass once; the pass
// starts at most one write per session. Frames queued anywhere during a turn
// (or while that session's previous write was in flight) therefore leave
// together, whether or not a write happened to be in flight when they
// arrived: coalescing is a property of the design, not of timing.
//
// Why setImmediate: it runs after the turn's I/O callbacks and microtasks, so
// everything a burst of reads and accepts queued is in the pass; a microtask
// would run before the next read completes (one write per notice), and
// setTimeout(0) costs about 2 ms per hop.

/**
 * A session's writer in the pass. An object with a method rather than a
 * callback, so that a session needs no bound closure for it.
 */
export interface FlushItem {
  /** Starts (at most) one write of what the session has queued. */
  flushPass(): void;
}

let current: FlushItem[] = [];
let spare: FlushItem[] = [];
let scheduled = false;
let passes = 0;
let passEnd: (() => void)[] = [];

/**
 * Adds `item` to the next pass. The caller keeps its own "already scheduled"
 * flag, so an item is never in the list twice.
 */
export function scheduleFlush(item: FlushItem): void {
  current.push(item);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runPass);
  }
}

/**
 * Runs `callback` once, at the end of the next pass (after its writes have
 * started): shared broadcast buffers let go of their segment there.
 */
export function atPassEnd(callback: () => void): void {
  passEnd.push(callback);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runPass);
  }
}

/**
 * Runs `callback` once, at the end of the next pass that runs anyway: unlike
 * `atPassEnd`, it schedules none, so a quiet process stays asleep.
 */
export function atNextPassEnd(callback: () => void): void {
  passEnd.push(callback);
}

function runPass(): void {
  scheduled = false;
  passes++;
  // Items scheduled during the pass (a write that failed at once, a close
  // that queued a last frame) go to the next pass.
  const items = current;
  current = spare;
  spare = items;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    items[i] = undefined as unknown as FlushItem;
    item.flushPass();
  }
  items.length = 0;
  if (passEnd.length > 0) {
    const callbacks = passEnd;
    passEnd = [];
    for (const callback of callbacks) callback();
  }
}
