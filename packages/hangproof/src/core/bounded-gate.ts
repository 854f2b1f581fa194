import { type AbortWatch, firstOutcome } from './abort-watch.js';

/** Why a wait at a gate ended without a slot. */
export type GateRefusal = 'timeout' | 'queue-full' | 'closed';

/** Rejection of BoundedGate.acquire when no slot came: the caller turns it into its own error. */
export class GateRefusedError extends Error {
  readonly reason: GateRefusal;
  readonly waitedMs: number;
  constructor(reason: GateRefusal, waitedMs: number) {
    super(`gate refused: ${reason}`);
    this.name = 'GateRefusedError';
    this.reason = reason;
    this.waitedMs = waitedMs;
  }
}

interface Waiter {
  /** Ends the wait with a slot; false when the waiter had already left (timeout, abort). */
  readonly grant: () => boolean;
  readonly refuse: (reason: GateRefusal) => void;
}

/**
 * The one bounded wait of hangproof: `limit` slots with a FIFO queue in front of them, where every
 * waiter has its own bound and leaves the queue the moment that bound passes or its request
 * aborts, and the queue itself holds at most `maxWaiting`. A released slot passes straight to the
 * oldest waiter, so a newcomer cannot overtake the queue. The Postgres pool gate, the dependency
 * bulkhead and the overload guard are each one of these.
 *
 * Hand-written: p-limit and cockatiel's bulkhead queue without a per-waiter bound, and keep an
 * aborted waiter queued until a slot frees (see deps/cockatiel-parts.ts), so a queued caller
 * could outlive its request.
 */
export class BoundedGate {
  #limit: number;
  readonly #maxWaiting: number;
  readonly #queue: Waiter[] = [];
  #held = 0;
  #closed = false;
  /** Waits refused (queue full or bound passed) since start. */
  refused = 0;

  constructor(limit: number, maxWaiting: number) {
    this.#limit = limit;
    this.#maxWaiting = maxWaiting;
  }

  /** Slots taken now. */
  get held(): number {
    return this.#held;
  }

  /** Callers waiting now. */
  get waiting(): number {
    return this.#queue.length;
  }

  get limit(): number {
    return this.#limit;
  }

  /** Moves the limit. Raising it lets waiters in at once; lowering it takes effect as slots come back. */
  set limit(limit: number) {
    this.#limit = limit;
    while (this.#held < this.#limit && this.#queue.length > 0) {
      this.#held++;
      if (!(this.#queue.shift() as Waiter).grant()) this.#held--;
    }
  }

  /** True when a caller refused by tryAcquire would be queued rather than refused at once. */
  get canWait(): boolean {
    return !this.#closed && this.#queue.length < this.#maxWaiting;
  }

  /** True when tryAcquire would succeed now (a look, nothing taken). */
  get hasRoom(): boolean {
    return !this.#closed && this.#held < this.#limit && this.#queue.length === 0;
  }

  /** A slot at once when one is free and nobody waits (the common case); give it back with `release`. */
  tryAcquire(): boolean {
    if (this.#closed || this.#held >= this.#limit || this.#queue.length > 0) return false;
    this.#held++;
    return true;
  }

  /**
   * Resolves once a slot is taken (give it back with `release`), waiting at most `waitMs`.
   * Rejects with GateRefusedError (queue full, bound passed, gate closed), or with the abort's
   * reason when `abort` fires first.
   */
  acquire(waitMs: number, abort: AbortWatch | undefined): Promise<void> {
    if (this.#closed) return Promise.reject(new GateRefusedError('closed', 0));
    if (abort?.aborted) return Promise.reject(abort.abortReason);
    if (this.tryAcquire()) return Promise.resolve();
    if (this.#queue.length >= this.#maxWaiting || waitMs <= 0) {
      this.refused++;
      return Promise.reject(new GateRefusedError(waitMs <= 0 ? 'timeout' : 'queue-full', 0));
    }
    const started = performance.now();
    return new Promise<void>((resolve, reject) => {
      const leave = (): void => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
      };
      const claim = firstOutcome(
        waitMs,
        abort,
        () => {
          leave();
          this.refused++;
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
          if (!claim()) return false;
          resolve();
          return true;
        },
        refuse: (reason) => {
          if (!claim()) return;
          leave();
          reject(new GateRefusedError(reason, performance.now() - started));
        },
      };
      this.#queue.push(waiter);
    });
  }

  /** Gives a slot back: to the oldest waiter when the limit allows, otherwise to the gate. */
  release(): void {
    while (this.#held <= this.#limit && this.#queue.length > 0 && !this.#closed) {
      // The slot passes on without being freed, so a newcomer cannot take it in between.
      if ((this.#queue.shift() as Waiter).grant()) return;
    }
    if (this.#held > 0) this.#held--;
  }

  /** Refuses every waiter and any later acquire. */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#queue]) w.refuse('closed');
    this.#queue.length = 0;
  }
}
