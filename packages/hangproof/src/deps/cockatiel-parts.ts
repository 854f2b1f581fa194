/**
 * The parts of cockatiel (3.2.1) hangproof uses, and the only file that imports it.
 *
 * cockatiel's failure-ratio windows and backoff generators are small, well-tested pure math, so
 * hangproof uses them as they are. Its *policies* are not used: read from dist/ of 3.2.1,
 *  - RetryPolicy sleeps with a plain setTimeout that ignores abort, then makes one more attempt
 *    with an aborted signal;
 *  - CircuitBreakerPolicy makes callers that arrive in half-open `await` the probe (they should
 *    fail fast), and a probe that ends in an error its filter does not handle *closes* the
 *    circuit ("task failed successfully"), so a probe cut short by the caller's own deadline
 *    would close a circuit on no evidence;
 *  - BulkheadPolicy's queue has no wait bound and drops an aborted waiter only when a slot frees;
 *  - TimeoutPolicy aborts its child signal without a reason, so a try that timed out cannot be
 *    told apart from a caller that gave up.
 * Those abort-aware pieces are written by hand in circuit-breaker.ts, bulkhead.ts, attempt-scope.ts
 * and the retry loop of dependency.ts.
 *
 * Moving to cockatiel 4.x (Node >= 22, ESM only) touches this file only: the IBreaker shape
 * (`success(state)`, `failure(state) -> open?`) and the backoff generators are unchanged there.
 */
import {
  CircuitState,
  ExponentialBackoff,
  fullJitterGenerator,
  type IBackoff,
  type IBreaker,
  SamplingBreaker,
} from 'cockatiel';

/** A sliding window of call outcomes that says when the failure ratio should open the circuit. */
export interface FailureWindow {
  /** Records a success; `afterProbe` also clears the window (the circuit is closing). */
  success(afterProbe: boolean): void;
  /** Records a failure of a call made while closed; true when the circuit should open. */
  failure(): boolean;
}

export interface FailureWindowOptions {
  readonly failureRatio: number;
  readonly windowMs: number;
  readonly minimumCalls: number;
}

/**
 * A time-based window (cockatiel SamplingBreaker): opens when more than `failureRatio` of the
 * calls in the last `windowMs` failed and the window holds at least about `minimumCalls` calls.
 * SamplingBreaker expresses the minimum as a rate; `minimumCalls / windowMs` is that rate.
 */
export function createFailureWindow(options: FailureWindowOptions): FailureWindow {
  const breaker: IBreaker = new SamplingBreaker({
    threshold: options.failureRatio,
    duration: options.windowMs,
    minimumRps: (options.minimumCalls * 1000) / options.windowMs,
  });
  return {
    success: (afterProbe) => breaker.success(afterProbe ? CircuitState.HalfOpen : CircuitState.Closed),
    failure: () => breaker.failure(CircuitState.Closed),
  };
}

/** Delays between tries: exponential bound, full jitter (uniform in [0, bound)), capped. */
export interface BackoffSequence {
  /** The delay before the next retry, in ms. */
  next(): number;
}

export function createBackoff(initialDelayMs: number, maxDelayMs: number): BackoffSequence {
  const factory = new ExponentialBackoff({
    generator: fullJitterGenerator,
    initialDelay: initialDelayMs,
    maxDelay: maxDelayMs,
  });
  let current: IBackoff<unknown> | undefined;
  return {
    next() {
      current = current === undefined ? factory.next() : current.next(undefined);
      return current.duration;
    },
  };
}
