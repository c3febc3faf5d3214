// Package-internal: a fixed-bucket histogram of durations in seconds, the
// shape Prometheus and OpenTelemetry both read. Observing costs a short loop
// over constant bounds and no allocation.

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
