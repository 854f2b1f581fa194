import { numberWhere, positiveInt } from '../core/option-checks.js';

/** Settings of the adaptive concurrency limit. Defaults live in GRADIENT_LIMIT_DEFAULTS. */
export interface GradientLimitOptions {
  /** The limit before the first measurement. @default 20 */
  readonly initialLimit?: number;
  /** The limit never goes below this. @default 10 */
  readonly minLimit?: number;
  /**
   * How much slower than the long-term latency a window may be before the limit shrinks: 1.5
   * accepts 50 % more. @default 1.5
   */
  readonly tolerance?: number;
  /** Share of each new estimate taken into the limit, 0..1: higher moves faster. @default 0.2 */
  readonly smoothing?: number;
  /** A window of latency samples lasts at least this long, in ms. @default 100 */
  readonly windowMs?: number;
  /** A window needs at least this many samples to count. @default 10 */
  readonly minWindowSamples?: number;
  /** Windows the long-term latency is averaged over (exponentially). @default 600 */
  readonly longWindows?: number;
  /**
   * While the limit is held down, how often it drops to `minLimit` for one window to measure the
   * latency without queueing (±25 % jitter), in ms; 0 never probes. @default 10000
   */
  readonly probeIntervalMs?: number;
}

export const GRADIENT_LIMIT_DEFAULTS = Object.freeze({
  initialLimit: 20,
  minLimit: 10,
  tolerance: 1.5,
  smoothing: 0.2,
  windowMs: 100,
  minWindowSamples: 10,
  longWindows: 600,
  probeIntervalMs: 10_000,
});

type Resolved = Required<GradientLimitOptions>;

/** Windows averaged plainly before the long-term latency becomes an exponential average. */
const WARMUP_WINDOWS = 10;

/**
 * A concurrency limit that follows the latency the service shows, after the gradient algorithm of
 * Netflix's concurrency-limits (Gradient2). Samples are grouped in short windows; each window's
 * mean latency (short) is compared with a slow moving average of all windows (long):
 *
 *     gradient = clamp(tolerance × long / short, 0.5, 1)
 *     estimate = limit × gradient + headroom        (headroom = √limit: lets the limit probe upward)
 *     limit    = limit × (1 − smoothing) + estimate × smoothing, within [minLimit, maxLimit]
 *
 * While latency holds, the limit creeps up by the headroom; once requests start to queue inside
 * the service (in the pool, on the event loop), latency rises and the limit shrinks toward the
 * concurrency the service can actually serve, so the excess is refused at once with 503 instead
 * of waiting its way into 504s. A window in which the service used less than half of the limit
 * says nothing about its capacity and leaves the limit alone.
 *
 * Under overload that lasts, the long average would absorb the queueing it is meant to detect and
 * let the limit creep back up (Gradient2's known drift). So while the limit is held down, it
 * drops to `minLimit` for one window every `probeIntervalMs` and takes that window's latency,
 * measured with little or no queue, as the new baseline (as TCP BBR re-measures its minimum RTT).
 * The probe also lets the baseline follow a dependency that became slower for good.
 *
 * Hand-written: no maintained Node library implements an adaptive limit, and the algorithm is
 * a few lines of arithmetic over the samples the observe plugin already has.
 */
export class GradientLimit {
  readonly maxLimit: number;
  readonly #o: Resolved;
  #limit: number;
  #longMs = 0;
  #windows = 0;
  #windowStart = Number.NaN;
  #windowSum = 0;
  #windowCount = 0;
  #windowMaxInFlight = 0;
  /** The last window found latency above tolerance: the limit is being held down. */
  #congested = false;
  #probing = false;
  #nextProbeAt = Number.NaN;

  constructor(maxLimit: number, options: GradientLimitOptions = {}) {
    this.#o = resolveGradientLimitOptions(options, maxLimit);
    this.maxLimit = maxLimit;
    this.#limit = Math.min(maxLimit, Math.max(this.#o.minLimit, this.#o.initialLimit));
  }

  /** The current limit, a whole number of requests (`minLimit` during a probe window). */
  get limit(): number {
    return this.#probing ? this.#o.minLimit : Math.floor(this.#limit);
  }

  /** True during a probe window. */
  get probing(): boolean {
    return this.#probing;
  }

  /** Long-term latency the windows are compared with, in ms (0 before the first window). */
  get longLatencyMs(): number {
    return this.#longMs;
  }

  /**
   * One finished request: its latency since admission and the requests in flight when it was
   * admitted. Returns true when the (whole-number) limit changed.
   */
  addSample(latencyMs: number, inFlight: number, nowMs: number): boolean {
    // A probe measures requests admitted within its limit; those let in before it queued behind more.
    if (this.#probing && inFlight > this.#o.minLimit) return false;
    if (Number.isNaN(this.#windowStart)) {
      this.#windowStart = nowMs;
      this.#scheduleProbe(nowMs);
    }
    this.#windowSum += latencyMs;
    this.#windowCount++;
    if (inFlight > this.#windowMaxInFlight) this.#windowMaxInFlight = inFlight;
    if (nowMs - this.#windowStart < this.#o.windowMs || this.#windowCount < this.#o.minWindowSamples) return false;
    const shortMs = Math.max(this.#windowSum / this.#windowCount, 0.001);
    const used = this.#windowMaxInFlight;
    this.#windowStart = nowMs;
    this.#windowSum = 0;
    this.#windowCount = 0;
    this.#windowMaxInFlight = 0;
    const before = this.limit;
    if (this.#probing) {
      this.#probing = false;
      this.#longMs = shortMs;
      this.#scheduleProbe(nowMs);
    } else {
      this.#update(shortMs, used);
      if (this.#congested && this.#o.probeIntervalMs > 0 && nowMs >= this.#nextProbeAt) this.#probing = true;
    }
    return this.limit !== before;
  }

  #scheduleProbe(nowMs: number): void {
    this.#nextProbeAt = nowMs + this.#o.probeIntervalMs * (0.75 + Math.random() / 2);
  }

  #update(shortMs: number, used: number): void {
    const o = this.#o;
    this.#windows++;
    const weight = this.#windows <= WARMUP_WINDOWS ? 1 / this.#windows : 2 / (o.longWindows + 1);
    this.#longMs += (shortMs - this.#longMs) * weight;
    // After a slow period the long average lags far above today's latency: let it recover
    // faster, or the limit would keep growing past what the service can take.
    if (this.#longMs / shortMs > 2) this.#longMs *= 0.95;
    if (used < this.#limit / 2) return;
    const gradient = Math.max(0.5, Math.min(1, (o.tolerance * this.#longMs) / shortMs));
    this.#congested = gradient < 1;
    const estimate = this.#limit * gradient + Math.sqrt(this.#limit);
    const next = this.#limit * (1 - o.smoothing) + estimate * o.smoothing;
    this.#limit = Math.max(o.minLimit, Math.min(this.maxLimit, next));
  }
}

/** Applies the defaults and validates; throws RangeError naming the option and value. */
export function resolveGradientLimitOptions(input: GradientLimitOptions, maxLimit: number): Resolved {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const o: Resolved = { ...GRADIENT_LIMIT_DEFAULTS, ...defined };
  for (const key of ['initialLimit', 'minLimit', 'minWindowSamples', 'longWindows'] as const) {
    positiveInt(`adaptiveLimit.${key}`, o[key]);
  }
  if (o.minLimit > maxLimit) {
    throw new RangeError(`adaptiveLimit.minLimit must not exceed maxInFlight (${maxLimit}), received ${o.minLimit}`);
  }
  numberWhere('adaptiveLimit.tolerance', o.tolerance, (v) => v >= 1, '>= 1');
  numberWhere('adaptiveLimit.smoothing', o.smoothing, (v) => v > 0 && v <= 1, 'in (0, 1]');
  numberWhere('adaptiveLimit.windowMs', o.windowMs, (v) => v > 0, 'a positive number');
  numberWhere('adaptiveLimit.probeIntervalMs', o.probeIntervalMs, (v) => v >= 0, '>= 0');
  return o;
}
