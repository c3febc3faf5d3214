// Package-internal: a session's liveness watch. On each tick of a shared
// clock (_liveness_clock.ts) it gathers what happened since the last one
// (frames from the peer, bytes to it, whether we kept it waiting) and lets
// the rules (_liveness_tracker.ts) decide: nothing, a ping, or a close.
import type { Decoder, Heartbeat } from "../codec/codec.ts";
import type { Flow } from "./_flow_control.ts";
import type { Life } from "./_lifecycle.ts";
import { type LivenessClock, livenessClock } from "./_liveness_clock.ts";
import {
  type LivenessSettings,
  type LivenessSignals,
  LivenessTracker,
} from "./_liveness_tracker.ts";
import {
  DEFAULT_FRAME_TIMEOUT,
  DEFAULT_HEARTBEAT_INTERVAL,
  DEFAULT_HEARTBEAT_MAX_MISSED,
  DEFAULT_IDLE_TIMEOUT,
} from "../defaults.ts";

/** The settings the watch uses (see SessionOptions for each). */
export interface LivenessOptions {
  idleTimeout?: number;
  frameTimeout?: number;
  heartbeatInterval?: number;
  heartbeatMaxMissed?: number;
}

/** What a tick reads from the outbound side (the writer). */
export interface WatchedWriter {
  readonly bytesOut: number;
  readonly queuedBytes: number;
  readonly flow: Flow;
  sendFrame(frame: Uint8Array): boolean;
  /** Gives back a queue that holds nothing (see Writer.releaseQueue). */
  releaseQueue(): void;
}

/** What a tick reads from the inbound pipeline. */
export interface WatchedInbound {
  readonly busy: boolean;
  pingSent(): void;
}

/**
 * One session's liveness watch; see the file comment. It is its own
 * tracker (one object per session, not two).
 */
export class Liveness extends LivenessTracker {
  readonly #clock: LivenessClock;
  readonly #life: Life;
  readonly #writer: WatchedWriter;
  readonly #inbound: WatchedInbound;
  #decoder: Decoder<unknown>;
  /**
   * Set while a resumable session has no connection (issue 17): the peer's
   * silence is then the recovery window's business, not a timeout's.
   */
  suspended = false;
  readonly #ping: Uint8Array | undefined;
  // Reads that completed at least one frame, including frames the codec
  // swallows (a blank JSON line): the peer's signs of life.
  #framesEnded = 0;
  #seenEnded = 0;
  #seenWritten = 0;
  #pingBytes = 0;

  /**
   * Starts watching, or returns `undefined` when every timeout is off.
   */
  static watch(
    options: LivenessOptions,
    life: Life,
    writer: WatchedWriter,
    inbound: WatchedInbound,
    decoder: Decoder<unknown>,
    heartbeat: Heartbeat<unknown> | undefined,
  ): Liveness | undefined {
    const shared = sharedSettings(options);
    if (shared === undefined) return undefined;
    const clock = livenessClock(shared.tick);
    const liveness = new Liveness(
      shared.settings,
      clock,
      life,
      writer,
      inbound,
      decoder,
      heartbeat?.ping,
    );
    clock.add(liveness);
    return liveness;
  }

  private constructor(
    settings: LivenessSettings,
    clock: LivenessClock,
    life: Life,
    writer: WatchedWriter,
    inbound: WatchedInbound,
    decoder: Decoder<unknown>,
    ping: Uint8Array | undefined,
  ) {
    super(settings);
    this.#clock = clock;
    this.#life = life;
    this.#writer = writer;
    this.#inbound = inbound;
    this.#decoder = decoder;
    this.#ping = ping;
  }

  /** A read completed at least one frame. */
  frameEnded(): void {
    this.frameCompleted();
    this.#framesEnded++;
  }

  /** A resumed session reads with a new decoder, and starts afresh. */
  resumed(decoder: Decoder<unknown>): void {
    this.#decoder = decoder;
    this.suspended = false;
    this.frameEnded();
  }

  /** The session is closing: no more ticks. */
  stop(): void {
    this.#clock.delete(this);
  }

  /**
   * Called by the shared clock. `elapsed` is already capped, so a stalled
   * event loop never counts against the peer.
   */
  onTick(elapsed: number): void {
    if (this.#life.state !== "open") return;
    const writer = this.#writer;
    if (this.suspended) {
      this.#seenWritten = writer.bytesOut;
      this.#pingBytes = 0;
      return;
    }
    const signals = scratchSignals;
    const written = writer.bytesOut;
    signals.framesArrived = this.#framesEnded !== this.#seenEnded;
    // Our own pings don't count as traffic the peer is busy reading.
    signals.wrote = written - this.#seenWritten - this.#pingBytes > 0;
    signals.queued = writer.queuedBytes > 0;
    // Not reading because of us (a handler, another session's backlog, a
    // rate-limit pause) is not the peer's silence. Its own backlog is.
    signals.busy = this.#inbound.busy || writer.flow.blockedByOthers;
    signals.partial = this.#decoder.buffered > 0;
    this.#seenEnded = this.#framesEnded;
    this.#seenWritten = written;
    this.#pingBytes = 0;
    const verdict = this.tick(elapsed, signals);
    if (verdict === undefined) {
      // Quiet since the last tick or not, a session with nothing queued
      // holds no queue until it sends again (issue 19 §4).
      if (!signals.queued) writer.releaseQueue();
      return;
    }
    if (verdict !== "ping") {
      this.#life.close(verdict, undefined);
      return;
    }
    const ping = this.#ping;
    if (ping !== undefined && writer.sendFrame(ping)) {
      this.#pingBytes += ping.byteLength;
      this.#inbound.pingSent();
    }
  }
}

/** Settings and tick length, shared by every session that has them. */
interface SharedSettings {
  readonly settings: LivenessSettings;
  readonly tick: number;
}

// Sessions with the same settings share one frozen settings object (a
// WebSocket session gets options of its own, so they are keyed by value);
// null: every timeout off. Bounded: past the cap, settings are not kept.
const settingsCache = new Map<string, SharedSettings | null>();
const SETTINGS_CACHE_MAX = 64;

function sharedSettings(options: LivenessOptions): SharedSettings | undefined {
  const idleTimeout = options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT;
  const frameTimeout = options.frameTimeout ?? DEFAULT_FRAME_TIMEOUT;
  const heartbeatInterval = options.heartbeatInterval ??
    DEFAULT_HEARTBEAT_INTERVAL;
  const heartbeatMaxMissed = options.heartbeatMaxMissed ??
    DEFAULT_HEARTBEAT_MAX_MISSED;
  const key =
    `${idleTimeout} ${frameTimeout} ${heartbeatInterval} ${heartbeatMaxMissed}`;
  const cached = settingsCache.get(key);
  if (cached !== undefined) return cached ?? undefined;
  const timeouts = [idleTimeout, frameTimeout, heartbeatInterval].filter((
    ms,
  ) => ms > 0);
  const shared = timeouts.length === 0 ? null : {
    settings: Object.freeze({
      idleTimeout,
      frameTimeout,
      heartbeatInterval,
      heartbeatMaxMissed,
    }),
    tick: tickFor(Math.min(...timeouts)),
  };
  if (settingsCache.size < SETTINGS_CACHE_MAX) settingsCache.set(key, shared);
  return shared ?? undefined;
}

// Reused by every tick: ticks run one at a time.
const scratchSignals: LivenessSignals = {
  framesArrived: false,
  wrote: false,
  queued: false,
  busy: false,
  partial: false,
};

// Liveness is checked about four times per shortest timeout, on a few fixed
// tick lengths so that sessions with similar settings share one timer.
function tickFor(shortest: number): number {
  for (const tick of [1000, 500, 250, 100, 50, 25]) {
    if (tick * 4 <= shortest) return tick;
  }
  return 10;
}
