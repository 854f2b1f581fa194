export interface ConcurrencyLimiterOptions {
  /** Slots; 0 is not allowed here (the caller skips the limiter instead). */
  readonly maxInFlight: number;
  /** Waiters allowed at once. */
  readonly maxQueued: number;
  /** Longest wait for a slot, in ms. */
  readonly queueWaitMs: number;
}

interface Waiter {
  readonly resolve: (granted: boolean) => void;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * A limit on work in flight with a short, bounded queue in front of it: a caller either gets a slot
 * now, waits at most `queueWaitMs` among at most `maxQueued` others, or is refused at once. Nothing
 * ever waits until a gateway gives up. A released slot passes straight to the oldest waiter
 * (FIFO), so a waiter cannot be overtaken by a newcomer. The limit is `maxInFlight` unless an
 * adaptive limit moves it (setLimit) below that ceiling.
 */
export class ConcurrencyLimiter {
  readonly maxInFlight: number;
  readonly maxQueued: number;
  readonly queueWaitMs: number;
  #limit: number;
  #inFlight = 0;
  readonly #queue: Waiter[] = [];

  constructor(o: ConcurrencyLimiterOptions) {
    if (!(Number.isInteger(o.maxInFlight) && o.maxInFlight > 0)) {
      throw new RangeError(`maxInFlight must be a positive integer, received ${o.maxInFlight}`);
    }
    this.maxInFlight = o.maxInFlight;
    this.#limit = o.maxInFlight;
    this.maxQueued = o.maxQueued;
    this.queueWaitMs = o.queueWaitMs;
  }

  /** Slots right now: maxInFlight, or less while an adaptive limit holds it lower. */
  get limit(): number {
    return this.#limit;
  }

  /**
   * Moves the limit (clamped to 1..maxInFlight). Raising it lets waiters in at once; lowering it
   * takes effect as requests in flight finish.
   */
  setLimit(limit: number): void {
    this.#limit = Math.max(1, Math.min(this.maxInFlight, Math.floor(limit)));
    while (this.#inFlight < this.#limit && this.#queue.length > 0) {
      this.#inFlight++;
      this.#grant(this.#queue.shift() as Waiter);
    }
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Takes a slot if one is free now. */
  tryAcquire(): boolean {
    if (this.#inFlight < this.#limit) {
      this.#inFlight++;
      return true;
    }
    return false;
  }

  /** True when a caller refused by tryAcquire may wait (queue not full, waiting allowed). */
  canWait(): boolean {
    return this.queueWaitMs > 0 && this.#queue.length < this.maxQueued;
  }

  /**
   * Waits for a slot: resolves true with the slot taken, or false after `queueWaitMs` or when
   * `signal` aborts. Call only after tryAcquire failed and canWait returned true.
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        resolve,
        signal,
        timer: setTimeout(() => this.#drop(waiter), this.queueWaitMs),
        onAbort: () => this.#drop(waiter),
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  /** Gives a slot back; the oldest waiter, if any, takes it over. */
  release(): void {
    const next = this.#inFlight > this.#limit ? undefined : this.#queue.shift();
    if (next === undefined) {
      if (this.#inFlight > 0) this.#inFlight--;
      return;
    }
    this.#grant(next);
  }

  #grant(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(true);
  }

  #drop(waiter: Waiter): void {
    const i = this.#queue.indexOf(waiter);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    clearTimeout(waiter.timer);
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(false);
  }
}
