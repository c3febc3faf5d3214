// Package-internal: the outbound side of a session, the single owner of its
// connection's writes. A frame is admitted against the byte budget, queued
// (_outbound_queue.ts), and the session joins the process-wide flush pass
// (_flush_scheduler.ts), which starts at most one write per session per
// turn. A queue above its high-water mark holds back whoever produced the
// frame (_flow_control.ts) and makes `drained()` callers wait.
//
// send(), sendFrame() and sendShared() are the hot path: no allocation, no
// closure, one state check.
import type { Codec } from "../codec/codec.ts";
import { CloseReason } from "../close_reason.ts";
import {
  COPY_BELOW,
  giveQueue,
  OutboundQueue,
  takeQueue,
} from "./_outbound_queue.ts";
import { type FlushItem, scheduleFlush } from "./_flush_scheduler.ts";
import {
  bounded,
  Flow,
  type FlowOwner,
  producerContext,
  type WaitOptions,
} from "./_flow_control.ts";
import type { ClosingWriter, Life } from "./_lifecycle.ts";
import type { OverflowPolicy } from "./options.ts";
import type { OutboundLog } from "./_outbound_log.ts";
import type { RunSleeper, SharedRun } from "./_shared_run.ts";
import {
  DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_HIGH_WATER_MARK_DIVISOR,
  DEFAULT_OUTBOUND_BUDGET,
} from "../defaults.ts";

/** The options the writer uses (see SessionOptions for each). */
export interface WriterOptions<Out> {
  codec: Codec<unknown, Out>;
  outboundBudget?: number;
  overflow?: OverflowPolicy;
  highWaterMark?: number;
  drainTimeout?: number;
}

// Held by every session with nothing to write instead of a queue of its
// own; never changed (whatever would change a queue takes one first).
const IDLE_QUEUE = new OutboundQueue();

/** A writer's codec and limits, worked out once per options object. */
interface WriterSettings<Out> {
  readonly codec: Codec<unknown, Out>;
  readonly budget: number;
  readonly highWaterMark: number;
  /** A frame of any size is taken while no more than this is queued. */
  readonly admitAnyBelow: number;
  readonly overflow: OverflowPolicy | undefined;
  readonly drainTimeout: number;
}

// One settings object for every session made with the same options (a
// server passes one options object to all its sessions): six fields fewer
// in each of a million quiet sessions (issue 19 §4). Checked by value, so
// options changed between two sessions still count.
// deno-lint-ignore no-explicit-any
const settingsByOptions = new WeakMap<object, WriterSettings<any>>();

function writerSettings<Out>(options: WriterOptions<Out>): WriterSettings<Out> {
  const codec = options.codec;
  const budget = options.outboundBudget ?? DEFAULT_OUTBOUND_BUDGET;
  const highWaterMark = options.highWaterMark ??
    Math.max(1, Math.floor(budget / DEFAULT_HIGH_WATER_MARK_DIVISOR));
  const overflow = options.overflow;
  const drainTimeout = options.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT;
  const cached = settingsByOptions.get(options);
  if (
    cached !== undefined && cached.codec === codec &&
    cached.budget === budget && cached.highWaterMark === highWaterMark &&
    cached.overflow === overflow && cached.drainTimeout === drainTimeout
  ) {
    return cached;
  }
  const settings: WriterSettings<Out> = Object.freeze({
    codec,
    budget,
    highWaterMark,
    admitAnyBelow: Math.min(highWaterMark, budget),
    overflow,
    drainTimeout,
  });
  settingsByOptions.set(options, settings);
  return settings;
}

/**
 * One session's outbound side; see the file comment. It is its own Flow's
 * owner and its own flush-pass item, so an idle session carries no closures
 * for either.
 */
export class Writer<Out>
  implements ClosingWriter, FlowOwner, FlushItem, RunSleeper {
  /** This session's side of flow control. */
  readonly flow: Flow;
  readonly #conn: Deno.Conn;
  readonly #life: Life;
  // What waits to be written. A session gone quiet gives it back (see
  // releaseQueue) and holds the shared, empty IDLE_QUEUE instead: every
  // read works on that as on an empty queue, and whatever would change it
  // takes a queue first (#own()).
  #queue: OutboundQueue = IDLE_QUEUE;
  // Frames and bytes counted by queues given back.
  #framesBefore = 0;
  #bytesBefore = 0;
  // Codec and limits, shared by the sessions with the same options.
  readonly #settings: WriterSettings<Out>;
  #flushScheduled = false;
  #framesDropped = 0;
  #writes = 0;
  #writingNow: Promise<number> | undefined;
  // Callers of drained() waiting for room.
  #drainWaiters: Set<(drained: boolean) => void> | undefined;
  /**
   * A resumable session's log of the messages it wrote (issue 17); set
   * before anything is sent. Heartbeats and control frames (sendFrame())
   * are not messages and stay out of it.
   */
  get log(): OutboundLog | undefined {
    return this.#log;
  }

  set log(log: OutboundLog | undefined) {
    this.#log = log;
    this.#own().log = log;
  }

  #log: OutboundLog | undefined;

  constructor(conn: Deno.Conn, options: WriterOptions<Out>, life: Life) {
    this.#conn = conn;
    this.#life = life;
    this.#settings = writerSettings(options);
    this.flow = new Flow(this);
  }

  /** How long it may hold producers back, in milliseconds; 0: forever. */
  get drainTimeout(): number {
    return this.#settings.drainTimeout;
  }

  /** Whether the session is still open (flow control asks). */
  isOpen(): boolean {
    return this.#life.state === "open";
  }

  /** Cuts the session as a slow consumer (flow control's verdict). */
  cut(): void {
    this.#life.close(CloseReason.SlowConsumer, undefined, 0);
  }

  /** Outbound bytes waiting in memory, including the write in flight. */
  get queuedBytes(): number {
    return this.#queue.queuedBytes;
  }

  /** Whether more than `highWaterMark` bytes are queued. */
  get backpressure(): boolean {
    return this.#queue.queuedBytes > this.#settings.highWaterMark;
  }

  /** Frames accepted. */
  get framesOut(): number {
    return this.#framesBefore + this.#queue.frames;
  }

  /** Bytes written to the peer. */
  get bytesOut(): number {
    return this.#bytesBefore + this.#queue.writtenBytes;
  }

  // The session's own queue, taken now if it holds the shared IDLE_QUEUE:
  // one predictable branch on the send paths.
  #own(): OutboundQueue {
    const queue = this.#queue;
    return queue !== IDLE_QUEUE ? queue : (this.#queue = takeQueue());
  }

  /**
   * Gives the queue back when it holds nothing (liveness calls this on its
   * ticks while nothing is queued): a quiet session then holds no queue,
   * and takes one again when it next sends. Its counts carry over.
   */
  releaseQueue(): void {
    const queue = this.#queue;
    if (queue === IDLE_QUEUE || this.#flushScheduled) return;
    // A quiet member of a broadcast run lets it go (it ends the run).
    if (queue.following && !queue.hasPending) queue.leaveRun();
    if (!queue.empty) return;
    this.#framesBefore += queue.frames;
    this.#bytesBefore += queue.writtenBytes;
    this.#queue = IDLE_QUEUE;
    giveQueue(queue);
  }

  /** Whether it holds a queue of its own (a quiet session holds none). */
  get holdsQueue(): boolean {
    return this.#queue !== IDLE_QUEUE;
  }

  /** Frames refused by the `"drop"` overflow policy. */
  get framesDropped(): number {
    return this.#framesDropped;
  }

  /** Writes made to the connection. */
  get writes(): number {
    return this.#writes;
  }

  /** The write in flight, if any. */
  get writing(): Promise<number> | undefined {
    return this.#writingNow;
  }

  /** Encodes and queues `message`; see `Session.send`. */
  send(message: Out): boolean {
    if (this.#life.state !== "open") return false;
    const codec = this.#settings.codec;
    const queue = this.#own();
    if (codec.encodeInto !== undefined) {
      // Fast path: encode straight into the outbound chunk, no allocation.
      const start = queue.privateFill;
      const end = codec.encodeInto(message, queue.privateChunk(), start);
      if (end >= 0) {
        if (!this.admit(end - start)) return false;
        const log = this.#log;
        if (log !== undefined) {
          // The shared ranges queued before it go in the log first.
          queue.sealForLog();
          log.recordCopy(queue.privateChunk(), start, end);
        }
        queue.commitPrivate(end);
        this.#queued();
        return true;
      }
    }
    const frame = codec.encode(message);
    if (!this.admit(frame.byteLength)) return false;
    const log = this.#log;
    if (log !== undefined) {
      // After the shared ranges queued before it; a frame encode() made is
      // ours: the log keeps it as it is.
      queue.sealForLog();
      log.record(frame, 0, frame.byteLength);
    }
    queue.pushPrivate(frame);
    this.#queued();
    return true;
  }

  /**
   * Queues an encoded message frame (`Session.sendFrame`): like
   * {@linkcode sendFrame}, and logged when the session is resumable.
   */
  sendMessageFrame(frame: Uint8Array): boolean {
    const log = this.#log;
    if (log === undefined) return this.sendFrame(frame);
    if (!this.sendFrame(frame)) return false;
    this.#queue.sealForLog();
    const size = frame.byteLength;
    // The caller may reuse a small frame's bytes (see pushPrivate).
    if (size < COPY_BELOW) log.recordCopy(frame, 0, size);
    else log.record(frame, 0, size);
    return true;
  }

  /**
   * Queues an encoded frame that is not a message of its own (a heartbeat,
   * a WebSocket control frame), or one `sendMessageFrame()` logs.
   */
  sendFrame(frame: Uint8Array): boolean {
    if (this.#life.state !== "open") return false;
    const size = frame.byteLength;
    if (!this.admit(size)) return false;
    const queue = this.#own();
    if (size < COPY_BELOW) queue.pushPrivate(frame);
    else queue.pushShared(frame, 0, size);
    this.#queued();
    return true;
  }

  /**
   * Queues `base[start, end)` by reference (a broadcast's shared frame, or
   * `frames` frames back to back from another node). With `run` (that
   * frame's), the queue follows it when it can, and the run learns how much
   * room this session has left; otherwise the run is closed.
   */
  sendShared(
    base: Uint8Array,
    start: number,
    end: number,
    frames: number,
    run?: SharedRun,
  ): boolean {
    if (this.#life.state !== "open") return false;
    if (!this.admit(end - start, frames)) return false;
    const queue = this.#own();
    // Logged by the queue, once per range (see OutboundQueue.log).
    queue.pushShared(base, start, end, frames, true);
    this.#queued();
    if (run !== undefined) {
      if (queue.follow(run)) {
        const settings = this.#settings;
        run.join(
          queue,
          Math.min(settings.budget, settings.highWaterMark) -
            queue.queuedBytes,
        );
      } else run.close();
    }
    return true;
  }

  /**
   * Queues and logs `base[start, end)` like {@linkcode sendShared}, past the
   * budget: what a cluster's history replays to a session resumed on this
   * node (issue 17). Like {@linkcode replay}, it is bounded elsewhere (the
   * history's own bounds) and paced by the flush passes: never a reason to
   * cut the peer.
   */
  queueReplayed(
    base: Uint8Array,
    start: number,
    end: number,
    frames: number,
  ): boolean {
    if (this.#life.state !== "open") return false;
    this.#own().pushShared(base, start, end, frames, true);
    this.#queued();
    return true;
  }

  /**
   * A resumed connection (issue 17): forgets what is queued and not yet
   * handed to a write (the log holds it), and queues the log from message
   * `from` on instead, by reference. The replay bypasses the budget (the
   * log's own bounds hold it) and leaves through the usual flush passes, one
   * write at a time: it is paced, never a reason to cut the peer.
   *
   * @returns `false` when the log can't replay from `from` (nothing changed).
   */
  replay(from: number): boolean {
    const log = this.#log;
    if (log === undefined) return false;
    // A resumable session's queue holds its log: it is never given back.
    const queue = this.#own();
    queue.sealForLog();
    if (!log.canReplayFrom(from)) return false;
    queue.discardPending();
    log.replay(from, (base, start, end, frames) => {
      queue.pushShared(base, start, end, frames);
    });
    if (queue.hasPending && !this.#flushScheduled) {
      this.#flushScheduled = true;
      scheduleFlush(this);
    }
    return true;
  }

  /**
   * Applies the budget to a frame of `size` bytes about to be queued. It
   * goes in when it fits, or when the queue is at most at its high-water
   * mark whatever the frame's size (a large frame is queued by reference,
   * not copied: it costs no more than the caller's own buffer). Otherwise
   * it is refused and counted. A burst is no proof of a slow peer, so
   * "close" doesn't cut at once: the refusal keeps the sender waiting on
   * this peer, which then has drainTimeout to drain, like any wait.
   */
  admit(size: number, frames = 1): boolean {
    const queued = this.#queue.queuedBytes;
    const settings = this.#settings;
    if (queued + size <= settings.budget || queued <= settings.admitAnyBelow) {
      return true;
    }
    this.#framesDropped += frames;
    if (settings.overflow !== "drop") this.flow.keepWaiting();
    return false;
  }

  /** Waits until everything queued before the call has been written. */
  flush(options?: WaitOptions): Promise<boolean> {
    const flushed = this.#queue.flushed();
    if (this.#life.state === "open" && this.backpressure) {
      this.flow.keepWaiting();
    }
    return bounded(flushed, options, "Flushing the queued bytes");
  }

  /** Waits for room; see `Session.drained`. */
  drained(options?: WaitOptions): Promise<boolean> {
    const what = "Waiting for the peer to drain";
    if (this.#life.state !== "open") {
      return bounded(Promise.resolve(false), options, what);
    }
    if (!this.backpressure && !this.flow.holding) {
      return bounded(Promise.resolve(true), options, what);
    }
    const { promise, resolve } = Promise.withResolvers<boolean>();
    const waiters = this.#drainWaiters ??= new Set();
    waiters.add(resolve);
    // A waiter is kept waiting like a paused producer: drainTimeout applies.
    this.flow.keepWaiting();
    return bounded(promise, options, what, () => waiters.delete(resolve));
  }

  goodbye(frame: Uint8Array): void {
    if (this.#queue.dropped) return;
    this.#own().pushPrivate(frame);
    this.#queued();
  }

  closing(): void {
    // A broadcast run must not grow a closing session's queue.
    this.#queue.leaveRun();
    this.flow.end();
    this.#wakeDrainWaiters(false);
  }

  async settle(timeout: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const written = await Promise.race([
      this.#queue.flushed(),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(resolve, timeout, false);
      }),
    ]);
    clearTimeout(timer);
    return written;
  }

  drop(): void {
    // Dropped for good: a closed session keeps a queue that says so.
    this.#own().drop();
  }

  // A frame was queued: join the next flush pass, and hold the producer back
  // if this queue is now above its high-water mark.
  #queued(): void {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      scheduleFlush(this);
    }
    if (this.#queue.queuedBytes > this.#settings.highWaterMark) {
      const producer = producerContext.getStore();
      if (producer !== undefined) this.flow.hold(producer);
    }
  }

  /**
   * Called once per flush pass in which this session had something queued:
   * starts one write (unless one is still in flight; its completion asks for
   * the next pass).
   */
  flushPass(): void {
    this.#flushScheduled = false;
    if (this.#life.state === "closed") return;
    const queue = this.#queue;
    const chunk = queue.nextWrite();
    if (chunk !== undefined) this.#writingNow = this.#write(chunk);
    else if (!queue.writing) queue.sleep(this);
  }

  /** The broadcast run this session follows grew (see RunSleeper). */
  wake(): void {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      scheduleFlush(this);
    }
  }

  async #write(chunk: Uint8Array): Promise<number> {
    const queue = this.#queue;
    let failure: unknown;
    try {
      let offset = await this.#conn.write(chunk);
      while (offset < chunk.byteLength) {
        offset += await this.#conn.write(chunk.subarray(offset));
      }
      this.#writes++;
    } catch (error) {
      // A resumable session's connection dropped (issue 17): what was being
      // written counts as written (its messages are in the log) and the
      // session waits for its peer instead of closing.
      const resumable = this.#log !== undefined &&
        (this.#conn as { writeFailed?(): boolean }).writeFailed?.() === true;
      if (!resumable) failure = error ?? new Error("write failed");
    }
    queue.completed();
    this.#writingNow = undefined;
    if (failure !== undefined) {
      queue.drop();
      if (this.#life.state === "open") {
        this.#life.close(CloseReason.Reset, failure);
      }
      return 0;
    }
    if (queue.queuedBytes <= this.#settings.highWaterMark / 2) {
      if (this.flow.holding) this.flow.release();
      if (this.#drainWaiters !== undefined) this.#wakeDrainWaiters(true);
    }
    if (!queue.hasPending) queue.sleep(this);
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      scheduleFlush(this);
    }
    return chunk.byteLength;
  }

  #wakeDrainWaiters(drained: boolean): void {
    const waiters = this.#drainWaiters;
    if (waiters === undefined) return;
    this.#drainWaiters = undefined;
    for (const resolve of waiters) resolve(drained);
  }
}
