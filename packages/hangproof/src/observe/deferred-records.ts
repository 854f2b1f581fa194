import type { LatencySeries } from './latency-series.js';

/** Records held before they are folded into their series. */
const BATCH = 256;
/** Longest a record waits for its fold, in ms (a read folds at once). */
const FOLD_EVERY_MS = 100;

/**
 * Values bound for latency series, held in flat arrays and folded into the series in batches: on
 * the request path a record then costs three array stores instead of a histogram record and a
 * bucket scan. Why: what a request costs here is mostly the memory it touches once (see
 * docs/benchmarks.md, "Eighteenth pass"); a series recorded once per request is evicted from the
 * core's caches by the request's own work before the next record, while a fold of 256 records
 * touches each series while it is still warm. Every reader folds first (`fold`), so a read never
 * misses a value; a value lands in the window of its fold, at most FOLD_EVERY_MS after it came.
 */
export class DeferredRecords {
  readonly #series: (LatencySeries | undefined)[] = new Array(BATCH);
  readonly #values = new Float64Array(BATCH);
  readonly #errors: (string | undefined)[] = new Array(BATCH);
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  /** Holds `durationMs` (and the failure's code) for `series`. */
  add(series: LatencySeries, durationMs: number, errorCode: string | undefined): void {
    const i = this.#count++;
    this.#series[i] = series;
    this.#values[i] = durationMs;
    this.#errors[i] = errorCode;
    if (this.#count === BATCH) this.fold();
  }

  /** Records every held value into its series now. */
  fold(): void {
    const n = this.#count;
    if (n === 0) return;
    this.#count = 0;
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      (this.#series[i] as LatencySeries).record(this.#values[i] as number, now, this.#errors[i]);
      this.#series[i] = undefined;
      this.#errors[i] = undefined;
    }
  }

  /** Folds every FOLD_EVERY_MS from now on (the timer does not hold the process open). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.fold(), FOLD_EVERY_MS);
    this.#timer.unref();
  }

  /** Folds what is held and stops the timer. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.fold();
  }
}
