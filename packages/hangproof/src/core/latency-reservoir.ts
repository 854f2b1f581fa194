/** Latency figures of the recent operations, in ms, rounded to 0.1. */
export interface LatencySummary {
  /** Samples in the reservoir (at most its capacity). */
  readonly count: number;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

/**
 * The durations of the last `capacity` operations (calls, acquires) in a ring buffer: constant
 * memory, and a status page shows how things behave *now*, not since start. Percentiles sort a
 * copy on demand, which is cheap at this size and only happens when someone asks. Long-term,
 * mergeable histograms are observe's job.
 */
export class LatencyReservoir {
  readonly #samples: Float64Array;
  #next = 0;
  #size = 0;

  constructor(capacity = 256) {
    this.#samples = new Float64Array(capacity);
  }

  add(durationMs: number): void {
    this.#samples[this.#next] = durationMs;
    this.#next = (this.#next + 1) % this.#samples.length;
    if (this.#size < this.#samples.length) this.#size++;
  }

  /** The q-quantile (0..1) of the recent samples, or undefined when there are none. */
  quantile(q: number): number | undefined {
    if (this.#size === 0) return undefined;
    const sorted = this.#samples.slice(0, this.#size).sort();
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  summary(): LatencySummary {
    if (this.#size === 0) return { count: 0, p50: null, p95: null, p99: null, max: null };
    const sorted = this.#samples.slice(0, this.#size).sort();
    const at = (q: number): number => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
    return {
      count: this.#size,
      p50: at(0.5),
      p95: at(0.95),
      p99: at(0.99),
      max: round(sorted[sorted.length - 1] ?? 0),
    };
  }
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
