import { SummedWindows, WindowedHistogram, type WindowReader } from './windowed-histogram.js';

/** What /metrics, /status and the exported windows read of a series. */
export interface SeriesView {
  /** Prometheus labels of the series, e.g. `{ method: 'GET', route: '/bots/:id' }`. */
  readonly labels: Readonly<Record<string, string>>;
  readonly windows: WindowReader;
  /** Cumulative count per bucket (not summed across buckets); the last one is +Inf. */
  readonly bucketCounts: Float64Array;
  /** Sum of all values, in seconds. */
  readonly sumSec: number;
  readonly count: number;
  /** Failures by error code since startup. */
  readonly errorsTotal: ReadonlyMap<string, number>;
}

/**
 * Everything measured about one thing (a route, a query fingerprint, a pool, a dependency):
 * sliding-window HdrHistograms for percentiles, plus cumulative Prometheus bucket counts and
 * failures by code since startup. Recording is one histogram record, one bucket scan and a few
 * additions: no allocation except the first failure of a code.
 */
export class LatencySeries implements SeriesView {
  /** Prometheus labels of the series, e.g. `{ method: 'GET', route: '/bots/:id' }`. */
  readonly labels: Readonly<Record<string, string>>;
  readonly windows: WindowedHistogram;
  /** Cumulative count per bucket (not summed across buckets); the last one is +Inf. */
  readonly bucketCounts: Float64Array;
  /** Sum of all values, in seconds. */
  sumSec = 0;
  count = 0;
  /** Failures by error code since startup. */
  readonly errorsTotal = new Map<string, number>();
  readonly #boundsMs: Float64Array;

  /** `sinceMs`: when measuring began (epoch ms); windows never claim to cover time before it. */
  constructor(labels: Readonly<Record<string, string>>, boundsMs: Float64Array, sinceMs: number = Date.now()) {
    this.labels = labels;
    this.#boundsMs = boundsMs;
    this.bucketCounts = new Float64Array(boundsMs.length + 1);
    this.windows = new WindowedHistogram(sinceMs);
  }

  record(durationMs: number, nowMs: number, errorCode: string | undefined): void {
    this.windows.record(durationMs * 1000, nowMs, errorCode);
    const bounds = this.#boundsMs;
    let i = 0;
    while (i < bounds.length && durationMs > (bounds[i] as number)) i++;
    (this.bucketCounts[i] as number)++;
    this.sumSec += durationMs / 1000;
    this.count++;
    if (errorCode !== undefined) this.errorsTotal.set(errorCode, (this.errorsTotal.get(errorCode) ?? 0) + 1);
  }
}

/**
 * Series by key with a bound on how many exist: once `max` keys are known, further keys share one
 * `(other)` series, so a flood of distinct routes or queries cannot grow memory without limit.
 */
export class SeriesBook {
  readonly #byKey = new Map<string, LatencySeries>();
  readonly #max: number;
  readonly #boundsMs: Float64Array;
  readonly #labelsOf: (key: string) => Readonly<Record<string, string>>;
  #other: LatencySeries | undefined;

  readonly #sinceMs: number;
  readonly #beforeRead: (() => void) | undefined;

  /**
   * `sinceMs`: when measuring began; rates of series first seen later still count from it.
   * `beforeRead`: run before the series are read (records held back are folded in).
   */
  constructor(
    max: number,
    boundsMs: Float64Array,
    labelsOf: (key: string) => Readonly<Record<string, string>>,
    sinceMs: number,
    beforeRead?: () => void,
  ) {
    this.#max = max;
    this.#sinceMs = sinceMs;
    this.#boundsMs = boundsMs;
    this.#labelsOf = labelsOf;
    this.#beforeRead = beforeRead;
  }

  get(key: string): LatencySeries {
    let s = this.#byKey.get(key);
    if (s !== undefined) return s;
    if (this.#byKey.size >= this.#max) {
      s = this.#other ??= new LatencySeries(this.#labelsOf(OTHER), this.#boundsMs, this.#sinceMs);
      return s;
    }
    s = new LatencySeries(this.#labelsOf(key), this.#boundsMs, this.#sinceMs);
    this.#byKey.set(key, s);
    return s;
  }

  /** Each series with its key; the overflow series last, as `(other)`. */
  *entries(): IterableIterator<[string, LatencySeries]> {
    this.#beforeRead?.();
    yield* this.#byKey;
    if (this.#other !== undefined) yield [OTHER, this.#other];
  }

  *series(): IterableIterator<LatencySeries> {
    for (const [, s] of this.entries()) yield s;
  }
}

/** Key of the series that collects what no longer fits in a book. */
export const OTHER = '(other)';

/**
 * The sum of several series (all Postgres queries: every query is in exactly one series of the
 * per-query book), computed when read: a value is recorded once, in its own series, instead of
 * once more in a total on the request path.
 */
export class SummedSeries implements SeriesView {
  readonly labels: Readonly<Record<string, string>>;
  readonly windows: WindowReader;
  readonly #parts: () => Iterable<LatencySeries>;
  readonly #buckets: number;

  constructor(
    labels: Readonly<Record<string, string>>,
    parts: () => Iterable<LatencySeries>,
    boundsMs: Float64Array,
    sinceMs: number,
  ) {
    this.labels = labels;
    this.#parts = parts;
    this.#buckets = boundsMs.length + 1;
    this.windows = new SummedWindows(() => Array.from(parts(), (s) => s.windows), sinceMs);
  }

  get bucketCounts(): Float64Array {
    const sum = new Float64Array(this.#buckets);
    for (const s of this.#parts())
      for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (s.bucketCounts[i] as number);
    return sum;
  }

  get sumSec(): number {
    let sum = 0;
    for (const s of this.#parts()) sum += s.sumSec;
    return sum;
  }

  get count(): number {
    let n = 0;
    for (const s of this.#parts()) n += s.count;
    return n;
  }

  get errorsTotal(): ReadonlyMap<string, number> {
    const sum = new Map<string, number>();
    for (const s of this.#parts()) for (const [code, n] of s.errorsTotal) sum.set(code, (sum.get(code) ?? 0) + n);
    return sum;
  }
}
