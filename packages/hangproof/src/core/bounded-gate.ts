import type { AbortWatch } from './abort-watch.js';
import { type DeadlineEntry, type DeadlineTarget, deadlineTimers } from './deadline-timers.js';

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

/**
 * How a wait at the gate ends: `granted` true with the slot taken (give it back with `release`),
 * false with `reason` (a GateRefusedError, or the abort's reason).
 */
export type GateWaitDone = (granted: boolean, reason?: unknown) => void;

/**
 * One caller in the queue. Its bound is an entry of the shared deadline timers (no Timeout of its
 * own) and its abort a reused watcher function, so a wait costs this object and its entry.
 */
export class GateWaiter implements DeadlineTarget {
  #done: GateWaitDone | undefined;
  /**
   * The wait's bound, and the caller's async context: the wait ends in it (hangproof's request
   * and every other AsyncLocalStorage store, such as the application's tracing context), whoever's
   * release, abort or timer ends it.
   */
  readonly #deadline: DeadlineEntry;
  readonly #gate: BoundedGate;
  readonly #started: number;
  readonly #abort: AbortWatch | undefined;
  readonly #onAbort = (reason: unknown): void => {
    const done = this.#claim();
    if (done === undefined) return;
    this.#gate.leave(this);
    this.#tell(done, false, reason);
  };

  constructor(gate: BoundedGate, waitMs: number, abort: AbortWatch | undefined, done: GateWaitDone, now: number) {
    this.#gate = gate;
    this.#started = now;
    this.#abort = abort;
    this.#done = done;
    this.#deadline = deadlineTimers.schedule(this, waitMs, now);
    abort?.addAbortWatcher(this.#onAbort);
  }

  /** The wait's bound passed: the waiter leaves the queue, refused. */
  onDeadline(): void {
    const done = this.#claim();
    if (done === undefined) return;
    this.#gate.refused++;
    this.#gate.leave(this);
    this.#tell(done, false, new GateRefusedError('timeout', performance.now() - this.#started));
  }

  /** The gate took it out of the queue with a slot; false when it had already left. */
  grant(): boolean {
    const done = this.#claim();
    if (done === undefined) return false;
    this.#tell(done, true, undefined);
    return true;
  }

  /** The gate took it out of the queue without one (closed). */
  refuse(reason: GateRefusal): void {
    const done = this.#claim();
    if (done !== undefined) this.#tell(done, false, new GateRefusedError(reason, performance.now() - this.#started));
  }

  /** The first end of the wait takes its callback and stops its bound and abort watch; later ones get nothing. */
  #claim(): GateWaitDone | undefined {
    const done = this.#done;
    if (done === undefined) return undefined;
    this.#done = undefined;
    deadlineTimers.cancel(this.#deadline);
    this.#abort?.unwatchAbort(this.#onAbort);
    return done;
  }

  /** Runs the callback in the caller's context; its failure cannot break the release or timer that ended the wait. */
  #tell(done: GateWaitDone, granted: boolean, reason: unknown): void {
    try {
      this.#deadline.runInAsyncScope(done, undefined, granted, reason);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
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
  readonly #queue: GateWaiter[] = [];
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
      if (!(this.#queue.shift() as GateWaiter).grant()) this.#held--;
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
    return new Promise<void>((resolve, reject) =>
      this.acquireWith(waitMs, abort, (granted, reason) => (granted ? resolve() : reject(reason))),
    );
  }

  /**
   * `acquire` for a caller that takes a callback: no promise, and the wait's bound on the shared
   * deadline timers (it may end up to a few ms after `waitMs`, never before). `done` runs once,
   * in the caller's context; at once (before this returns) when the answer is known now. `now`:
   * the caller's performance.now() at the start of the wait, when it has read it already.
   */
  acquireWith(waitMs: number, abort: AbortWatch | undefined, done: GateWaitDone, now?: number): void {
    if (this.#closed) done(false, new GateRefusedError('closed', 0));
    else if (abort?.aborted) done(false, abort.abortReason);
    else if (this.tryAcquire()) done(true);
    else if (this.#queue.length >= this.#maxWaiting || waitMs <= 0) {
      this.refused++;
      done(false, new GateRefusedError(waitMs <= 0 ? 'timeout' : 'queue-full', 0));
    } else this.#queue.push(new GateWaiter(this, waitMs, abort, done, now ?? performance.now()));
  }

  /** Takes a waiter that left (timeout, abort) out of the queue. */
  leave(waiter: GateWaiter): void {
    const i = this.#queue.indexOf(waiter);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /** Gives a slot back: to the oldest waiter when the limit allows, otherwise to the gate. */
  release(): void {
    while (this.#held <= this.#limit && this.#queue.length > 0 && !this.#closed) {
      // The slot passes on without being freed, so a newcomer cannot take it in between.
      if ((this.#queue.shift() as GateWaiter).grant()) return;
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
