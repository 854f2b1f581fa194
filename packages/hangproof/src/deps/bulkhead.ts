import { BoundedGate, GateRefusedError, watchSignal } from '../core/index.js';

/** Why a call did not get a bulkhead slot. */
export type BulkheadRejection = 'bulkhead_full' | 'bulkhead_wait';

/** Thrown by Bulkhead.acquire; the dependency turns it into DEPENDENCY_UNAVAILABLE. */
export class BulkheadRejectedError extends Error {
  readonly reason: BulkheadRejection;
  constructor(reason: BulkheadRejection) {
    super(reason === 'bulkhead_full' ? 'bulkhead and its queue are full' : 'no bulkhead slot within the wait bound');
    this.name = 'BulkheadRejectedError';
    this.reason = reason;
  }
}

/** Gives the slot back. Calling it twice is harmless. */
export type Release = () => void;

/**
 * A cap on concurrent calls with a short bounded queue whose every wait is bounded: core's
 * BoundedGate, with the dependency layer's rejection type.
 *
 * Not cockatiel's BulkheadPolicy (see cockatiel-parts.ts): there a queued call has no wait bound,
 * and an aborted waiter stays in the queue until a slot frees, so a queued call can outlive its
 * request.
 */
export class Bulkhead {
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly #gate: BoundedGate;

  constructor(maxConcurrent: number, maxQueue: number) {
    this.maxConcurrent = maxConcurrent;
    this.maxQueue = maxQueue;
    this.#gate = new BoundedGate(maxConcurrent, maxQueue);
  }

  get active(): number {
    return this.#gate.held;
  }

  get queued(): number {
    return this.#gate.waiting;
  }

  /** Calls turned away (queue full or wait bound passed) since start. */
  get rejected(): number {
    return this.#gate.refused;
  }

  /**
   * A slot, waiting at most `waitMs` in the queue. Rejects with BulkheadRejectedError when the
   * queue is full or the wait passes, or with the signal's reason when it aborts first.
   */
  async acquire(waitMs: number, signal: AbortSignal | undefined): Promise<Release> {
    try {
      await this.#gate.acquire(waitMs, watchSignal(signal));
    } catch (err) {
      if (!(err instanceof GateRefusedError)) throw err;
      throw new BulkheadRejectedError(err.reason === 'timeout' && err.waitedMs > 0 ? 'bulkhead_wait' : 'bulkhead_full');
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#gate.release();
    };
  }
}
