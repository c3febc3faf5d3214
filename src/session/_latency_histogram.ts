// Package-internal: a fixed-bucket histogram of durations in seconds, the
// shape Prometheus reads at scrape time. Observing costs a short loop over
// constant bounds and no allocation. OpenTelemetry has no observable
// histogram (its API records each value), so a session's host may also hold
// taps that get each duration as it is observed; see LatencyTapped.

/** Upper bounds of the request-latency buckets, in seconds. */
export const LATENCY_BOUNDS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** The key of a host's taps; see {@linkcode LatencyTapped}. */
export const latencyTaps: unique symbol = Symbol(
  "microsocket.metrics.latencyTaps",
);

/** Receives one answered request's duration, in seconds. */
export type LatencyTap = (seconds: number) => void;

/**
 * A session's host (its manager) whose sessions hand each answered
 * request's duration to the taps too. `undefined` while nobody listens, so
 * without OpenTelemetry an answer costs one property read.
 */
export interface LatencyTapped {
  readonly [latencyTaps]?: ReadonlySet<LatencyTap> | undefined;
}

/** Counts per bucket (not cumulative; the last is +Inf), sum and count. */
export class LatencyHistogram {
  readonly counts: number[] = new Array(LATENCY_BOUNDS.length + 1).fill(0);
  count = 0;
  sum = 0;

  /** Records one duration. */
  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BOUNDS.length && seconds > LATENCY_BOUNDS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += seconds;
  }

  /** Adds `other`'s observations to this one. */
  add(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) {
      this.counts[i]! += other.counts[i]!;
    }
    this.count += other.count;
    this.sum += other.sum;
  }
}
