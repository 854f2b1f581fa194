import { type AbortWatch, BoundedGate } from '../core/index.js';

export interface ConcurrencyLimiterOptions {
  /** Slots; 0 is not allowed here (the caller skips the limiter instead). */
  readonly maxInFlight: number;
  /** Waiters allowed at once. */
  readonly maxQueued: number;
  /** Longest wait for a slot, in ms. */
  readonly queueWaitMs: number;
}

/**
 * A limit on work in flight with a short, bounded queue in front of it: a caller either gets a slot
 * now, waits at most `queueWaitMs` among at most `maxQueued` others, or is refused at once. Nothing
 * ever waits until a gateway gives up. It is core's BoundedGate (FIFO, a released slot passes
 * straight to the oldest waiter) with a ceiling an adaptive limit may move the limit under.
 */
export class ConcurrencyLimiter {
  readonly maxInFlight: number;
  readonly maxQueued: number;
  readonly queueWaitMs: number;
  readonly #gate: BoundedGate;

  constructor(o: ConcurrencyLimiterOptions) {
    if (!(Number.isInteger(o.maxInFlight) && o.maxInFlight > 0)) {
      throw new RangeError(`maxInFlight must be a positive integer, received ${o.maxInFlight}`);
    }
    this.maxInFlight = o.maxInFlight;
    this.maxQueued = o.maxQueued;
    this.queueWaitMs = o.queueWaitMs;
    this.#gate = new BoundedGate(o.maxInFlight, o.maxQueued);
  }

  /** Slots right now: maxInFlight, or less while an adaptive limit holds it lower. */
  get limit(): number {
    return this.#gate.limit;
  }

  /**
   * Moves the limit (clamped to 1..maxInFlight). Raising it lets waiters in at once; lowering it
   * takes effect as requests in flight finish.
   */
  setLimit(limit: number): void {
    this.#gate.limit = Math.max(1, Math.min(this.maxInFlight, Math.floor(limit)));
  }

  get inFlight(): number {
    return this.#gate.held;
  }

  get queued(): number {
    return this.#gate.waiting;
  }

  /** True when tryAcquire would take a slot now (nothing is taken). */
  hasRoom(): boolean {
    return this.#gate.hasRoom;
  }

  /** Takes a slot if one is free now. */
  tryAcquire(): boolean {
    return this.#gate.tryAcquire();
  }

  /** True when a caller refused by tryAcquire may wait (queue not full, waiting allowed). */
  canWait(): boolean {
    return this.queueWaitMs > 0 && this.#gate.canWait;
  }

  /**
   * Waits for a slot: resolves true with the slot taken, or false after `queueWaitMs` or when
   * `abort` (the request's context) aborts. Call only after tryAcquire failed and canWait returned
   * true. The context is watched as it is: no AbortSignal is built for the wait.
   */
  wait(abort?: AbortWatch): Promise<boolean> {
    return new Promise<boolean>((resolve) => this.#gate.acquireWith(this.queueWaitMs, abort, resolve));
  }

  /** Gives a slot back; the oldest waiter, if any, takes it over. */
  release(): void {
    this.#gate.release();
  }
}
