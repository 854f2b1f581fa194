/**
 * Caps retries at a share of the traffic, so retries cannot multiply load during an outage:
 * over a sliding window a retry is allowed while `retries < minRetries + ratio * firstAttempts`.
 * With the defaults (10 %, 10 per 10 s) a dependency that is down gets at most about 1.1x its
 * normal call rate, however many attempts each call may make (Envoy's retry budget and Finagle's
 * RetryBudget follow the same idea; gRPC throttles with a token bucket).
 *
 * The window is kept in ten buckets, so the count forgets old traffic in steps of a tenth of the
 * window with constant memory.
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #minRetries: number;
  readonly #bucketMs: number;
  readonly #requests = new Array<number>(BUCKETS).fill(0);
  readonly #retries = new Array<number>(BUCKETS).fill(0);
  #bucketStart = 0;
  #index = 0;
  #exhausted = 0;

  constructor(ratio: number, minRetries: number, windowMs: number) {
    this.#ratio = ratio;
    this.#minRetries = minRetries;
    this.#bucketMs = windowMs / BUCKETS;
    this.#bucketStart = performance.now();
  }

  /** Counts a first attempt. */
  recordRequest(): void {
    this.#rotate();
    this.#requests[this.#index] = (this.#requests[this.#index] ?? 0) + 1;
  }

  /** Takes one retry from the budget; false (and counted) when the budget is spent. */
  tryRetry(): boolean {
    this.#rotate();
    const retries = sum(this.#retries);
    if (retries >= this.#minRetries + this.#ratio * sum(this.#requests)) {
      this.#exhausted++;
      return false;
    }
    this.#retries[this.#index] = (this.#retries[this.#index] ?? 0) + 1;
    return true;
  }

  /** Retries refused since start because the budget was spent. */
  get exhausted(): number {
    return this.#exhausted;
  }

  #rotate(): void {
    const now = performance.now();
    const steps = Math.floor((now - this.#bucketStart) / this.#bucketMs);
    if (steps <= 0) return;
    for (let i = 0; i < Math.min(steps, BUCKETS); i++) {
      this.#index = (this.#index + 1) % BUCKETS;
      this.#requests[this.#index] = 0;
      this.#retries[this.#index] = 0;
    }
    this.#bucketStart += steps * this.#bucketMs;
  }
}

const BUCKETS = 10;

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
