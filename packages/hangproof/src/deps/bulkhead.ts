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

interface Waiter {
  readonly grant: (release: Release) => void;
  settled: boolean;
}

/**
 * A cap on concurrent calls with a short bounded queue whose every wait is bounded.
 *
 * Written by hand rather than using cockatiel's BulkheadPolicy (see cockatiel-parts.ts): there a
 * queued call has no wait bound, and an aborted waiter stays in the queue until a slot frees, so a
 * queued call can outlive its request. Here a waiter leaves the queue the moment its wait bound
 * passes or its signal aborts, and its place goes to the next waiter.
 */
export class Bulkhead {
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  #active = 0;
  readonly #queue: Waiter[] = [];
  #rejected = 0;

  constructor(maxConcurrent: number, maxQueue: number) {
    this.maxConcurrent = maxConcurrent;
    this.maxQueue = maxQueue;
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Calls turned away (queue full or wait bound passed) since start. */
  get rejected(): number {
    return this.#rejected;
  }

  /**
   * A slot, waiting at most `waitMs` in the queue. Rejects with BulkheadRejectedError when the
   * queue is full or the wait passes, or with the signal's reason when it aborts first.
   */
  acquire(waitMs: number, signal: AbortSignal | undefined): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#active < this.maxConcurrent) {
      this.#active++;
      return Promise.resolve(this.#releaser());
    }
    if (this.#queue.length >= this.maxQueue || waitMs <= 0) {
      this.#rejected++;
      return Promise.reject(new BulkheadRejectedError('bulkhead_full'));
    }
    return new Promise<Release>((resolve, reject) => {
      const leave = (error: unknown): void => {
        if (waiter.settled) return;
        waiter.settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(error);
      };
      const onAbort = (): void => leave(signal?.reason);
      const waiter: Waiter = {
        settled: false,
        grant: (release) => {
          waiter.settled = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const timer = setTimeout(() => {
        this.#rejected++;
        leave(new BulkheadRejectedError('bulkhead_wait'));
      }, waitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      // Hand the slot straight to the next waiter, so a newcomer cannot jump the queue.
      const next = this.#queue.shift();
      if (next === undefined) this.#active--;
      else next.grant(this.#releaser());
    };
  }
}
