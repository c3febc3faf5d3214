// Package-internal: the liveness rules of one session (idle, frame and
// heartbeat timeouts) as plain arithmetic on what happened since the last
// tick, so they are tested with fake time and no socket.

/** What happened since the previous tick, as the session saw it. */
export interface LivenessSignals {
  /** At least one frame from the peer completed. */
  framesArrived: boolean;
  /** Bytes other than our own pings were written to the peer. */
  wrote: boolean;
  /** Outbound bytes are queued. */
  queued: boolean;
  /** Our onOpen, or the handler of the peer's last message, still runs. */
  busy: boolean;
  /** A frame has started but not completed. */
  partial: boolean;
}

/** What the session must do after a tick. */
export type LivenessVerdict =
  | undefined
  | "ping"
  | "idle timeout"
  | "frame timeout"
  | "heartbeat timeout";

/** The liveness settings of a session, in milliseconds (0: off). */
export interface LivenessSettings {
  idleTimeout: number;
  frameTimeout: number;
  heartbeatInterval: number;
  heartbeatMaxMissed: number;
}

/** Liveness bookkeeping of one session; see the file comment. */
export class LivenessTracker {
  readonly #settings: LivenessSettings;
  #idleFor = 0;
  #partialFor = 0;
  #silentFor = 0;
  #missedBeats = 0;
  #stalledFor = 0;

  constructor(settings: LivenessSettings) {
    this.#settings = settings;
  }

  /**
   * Accounts for `elapsed` milliseconds.
   *
   * Time counts against the peer only when it is the peer's fault: not
   * while our own handler runs, and not while we are still sending to it and
   * it is reading (queued bytes that make no progress for a whole timeout
   * count again).
   */
  tick(elapsed: number, signals: LivenessSignals): LivenessVerdict {
    const { idleTimeout, frameTimeout, heartbeatInterval } = this.#settings;
    // Writes complete in batches, so a slow but steady reader leaves ticks
    // without progress: queued bytes count as sending until they have made
    // no progress for a whole timeout.
    if (signals.wrote || !signals.queued) this.#stalledFor = 0;
    else this.#stalledFor += elapsed;
    const sending = signals.wrote ||
      (signals.queued &&
        this.#stalledFor < Math.max(idleTimeout, heartbeatInterval));
    const excused = signals.busy || sending;

    if (signals.framesArrived) this.#idleFor = 0;
    else if (!excused) this.#idleFor += elapsed;
    if (idleTimeout > 0 && this.#idleFor >= idleTimeout) return "idle timeout";

    if (frameTimeout > 0) {
      if (signals.framesArrived || !signals.partial) this.#partialFor = 0;
      else if (!signals.busy) this.#partialFor += elapsed;
      if (this.#partialFor >= frameTimeout) return "frame timeout";
    }

    if (heartbeatInterval > 0) {
      if (signals.framesArrived) {
        this.#silentFor = 0;
        this.#missedBeats = 0;
      } else if (!excused) {
        this.#silentFor += elapsed;
      }
      if (this.#silentFor >= heartbeatInterval) {
        this.#silentFor -= heartbeatInterval;
        if (++this.#missedBeats > this.#settings.heartbeatMaxMissed) {
          return "heartbeat timeout";
        }
        return "ping";
      }
    }
    return undefined;
  }

  /** A frame completed: the frame timeout starts over. */
  frameCompleted(): void {
    this.#partialFor = 0;
  }
}
