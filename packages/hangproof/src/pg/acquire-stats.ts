/**
 * Acquire waits of the most recent `size` acquires, for percentiles in `stats()`. A ring buffer
 * (bounded memory, recent window) is enough here: the pool's own numbers answer "is the pool the
 * bottleneck right now"; long-term histograms belong to observe, which gets every wait on the
 * `poolAcquire` diagnostics channel.
 */
export class WaitReservoir {
  readonly #values: Float64Array;
  #count = 0;
  #next = 0;

  constructor(size = 1024) {
    this.#values = new Float64Array(size);
  }

  record(ms: number): void {
    this.#values[this.#next] = ms;
    this.#next = (this.#next + 1) % this.#values.length;
    if (this.#count < this.#values.length) this.#count++;
  }

  /** p50/p95/p99/max of the window, in ms rounded to 0.1; zeros when nothing was recorded. */
  summary(): { p50: number; p95: number; p99: number; max: number; samples: number } {
    if (this.#count === 0) return { p50: 0, p95: 0, p99: 0, max: 0, samples: 0 };
    const sorted = this.#values.slice(0, this.#count).sort();
    const at = (q: number): number =>
      Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 10) / 10;
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1), samples: this.#count };
  }
}
