import { type AbortWatch, firstOutcome } from '../core/abort-watch.js';
/** Why a wait at the gate ended without a permit. */
export type GateRefusal = 'timeout' | 'queue-full' | 'closed';

export class GateRefusedError extends Error {
  readonly reason: GateRefusal;
  readonly waitedMs: number;
  constructor(reason: GateRefusal, waitedMs: number) {
    super(`pool gate refused: ${reason}`);
    this.name = 'GateRefusedError';
    this.reason = reason;
    this.waitedMs = waitedMs;
  }
}

interface Waiter {
  readonly grant: () => void;
  readonly fail: (reason: GateRefusal) => void;
}

/**
 * A FIFO semaphore of `max` permits in front of pg's Pool. pg-pool queues waiters with one fixed
 * `connectionTimeoutMillis` and keeps a waiter queued after its caller gave up, so a request with
 * 80 ms left would wait as long as one with 5 s, and the `waiting` count would include ghosts.
 * Here every waiter has its own bound (the request's remaining budget), leaves the queue the
 * moment it times out or its request aborts, and the queue itself is bounded (`maxWaiting`).
 * A permit is held from acquire until the connection is back in the pool or destroyed, so the
 * pool itself never has to queue.
 */
export class PoolGate {
  readonly #max: number;
  readonly #maxWaiting: number;
  readonly #queue: Waiter[] = [];
  #held = 0;
  #closed = false;

  constructor(max: number, maxWaiting: number) {
    this.#max = max;
    this.#maxWaiting = maxWaiting;
  }

  get held(): number {
    return this.#held;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  /** A permit at once when one is free and nobody waits (the common case), else undefined. */
  tryAcquire(): (() => void) | undefined {
    if (this.#closed || this.#held >= this.#max || this.#queue.length > 0) return undefined;
    this.#held++;
    return this.#releaser();
  }

  /** Resolves with a permit (call the returned function once to give it back). */
  acquire(timeoutMs: number, abort: AbortWatch | undefined): Promise<() => void> {
    const started = performance.now();
    if (this.#closed) return Promise.reject(new GateRefusedError('closed', 0));
    if (abort?.aborted) return Promise.reject(abort.abortReason);
    const permit = this.tryAcquire();
    if (permit !== undefined) return Promise.resolve(permit);
    if (this.#queue.length >= this.#maxWaiting) return Promise.reject(new GateRefusedError('queue-full', 0));
    if (timeoutMs <= 0) return Promise.reject(new GateRefusedError('timeout', 0));
    return new Promise((resolve, reject) => {
      const leave = (): void => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
      };
      const claim = firstOutcome(
        timeoutMs,
        abort,
        () => {
          leave();
          reject(new GateRefusedError('timeout', performance.now() - started));
        },
        (reason) => {
          leave();
          reject(reason);
        },
      );
      // A waiter still in the queue has not been claimed: a timeout or abort takes it out at once.
      const waiter: Waiter = {
        grant: () => {
          claim();
          leave();
          resolve(this.#releaser());
        },
        fail: (reason) => {
          if (!claim()) return;
          leave();
          reject(new GateRefusedError(reason, performance.now() - started));
        },
      };
      this.#queue.push(waiter);
    });
  }

  /** Refuses every waiter and any later acquire. */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#queue]) w.fail('closed');
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue[0];
      // Hand the permit straight to the next waiter, so a newcomer cannot overtake the queue.
      if (next !== undefined && !this.#closed) next.grant();
      else this.#held--;
    };
  }
}
