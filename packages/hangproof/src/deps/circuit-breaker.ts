import { createFailureWindow, type FailureWindow } from './cockatiel-parts.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  readonly failureRatio: number;
  readonly windowMs: number;
  readonly minimumCalls: number;
  readonly halfOpenAfterMs: number;
  /** Called on every state change, synchronously. */
  readonly onStateChange?: (from: BreakerState, to: BreakerState) => void;
  /** Clock in ms; performance.now() unless a test drives the pure state machine. */
  readonly now?: () => number;
}

/** Admission to make one attempt. `probe` is the single half-open trial call. */
export interface BreakerPermit {
  readonly probe: boolean;
}

const CLOSED_PERMIT: BreakerPermit = Object.freeze({ probe: false });
const PROBE_PERMIT: BreakerPermit = Object.freeze({ probe: true });

/**
 * A circuit breaker whose half-open state admits exactly one probe and fails everyone else fast.
 *
 * Written by hand rather than using cockatiel's CircuitBreakerPolicy (see cockatiel-parts.ts):
 * there, callers arriving during half-open wait for the probe, and a probe ending in an error the
 * policy does not handle closes the circuit. Here the caller always owns the attempt's timeout, so
 * the probe is bounded, and every permit ends in exactly one of `success`, `failure` or `release`
 * (a local outcome, e.g. the caller's own deadline, that says nothing about the dependency).
 * The failure-ratio arithmetic is cockatiel's SamplingBreaker.
 */
export class CircuitBreaker {
  readonly #window: FailureWindow;
  readonly #halfOpenAfterMs: number;
  readonly #onStateChange: ((from: BreakerState, to: BreakerState) => void) | undefined;
  readonly #now: () => number;
  #state: BreakerState = 'closed';
  #openedAt = 0;
  #probeInFlight = false;

  constructor(options: CircuitBreakerOptions) {
    this.#window = createFailureWindow(options);
    this.#halfOpenAfterMs = options.halfOpenAfterMs;
    this.#onStateChange = options.onStateChange;
    this.#now = options.now ?? (() => performance.now());
  }

  /** The state now; an open circuit whose delay has passed reads as half-open. */
  get state(): BreakerState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#halfOpenAfterMs) this.#transition('half-open');
    return this.#state;
  }

  /** ms until an open circuit lets a probe through; 0 when not open. */
  get retryAfterMs(): number {
    if (this.state !== 'open') return 0;
    return Math.max(0, this.#openedAt + this.#halfOpenAfterMs - this.#now());
  }

  /** True when a call would be rejected right now, without taking a permit. */
  get rejecting(): boolean {
    const state = this.state;
    return state === 'open' || (state === 'half-open' && this.#probeInFlight);
  }

  /**
   * A permit for one attempt, or undefined when the circuit rejects it: open, or half-open with
   * the probe already out. Synchronous, so check-and-take cannot interleave with another caller.
   */
  admit(): BreakerPermit | undefined {
    const state = this.state;
    if (state === 'closed') return CLOSED_PERMIT;
    if (state === 'open' || this.#probeInFlight) return undefined;
    this.#probeInFlight = true;
    return PROBE_PERMIT;
  }

  /** The attempt reached the dependency and it answered well. */
  success(permit: BreakerPermit): void {
    if (permit.probe) {
      this.#probeInFlight = false;
      if (this.#state !== 'half-open') return;
      this.#window.success(true);
      this.#transition('closed');
    } else if (this.#state === 'closed') {
      this.#window.success(false);
    }
  }

  /** The attempt reached the dependency and it failed (error, 5xx, timeout, too slow). */
  failure(permit: BreakerPermit): void {
    if (permit.probe) {
      this.#probeInFlight = false;
      if (this.#state === 'half-open') this.#open();
    } else if (this.#state === 'closed' && this.#window.failure()) {
      this.#open();
    }
    // Outcomes of calls admitted before the circuit opened say nothing new: ignored.
  }

  /** The attempt ended for a local reason (caller gave up, not started): no evidence either way. */
  release(permit: BreakerPermit): void {
    if (permit.probe) this.#probeInFlight = false;
  }

  #open(): void {
    this.#openedAt = this.#now();
    this.#transition('open');
  }

  #transition(to: BreakerState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#onStateChange?.(from, to);
  }
}
