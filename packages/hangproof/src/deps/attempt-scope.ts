import type { HangproofError } from '../errors.js';

/**
 * The signal of one attempt: it aborts when the attempt's own time is up (with the timeout error,
 * so `timedOut` is true) or when the caller's signal aborts (with the caller's reason, so a
 * request deadline stays a REQUEST_TIMEOUT). One controller per attempt, so one timeout never
 * aborts other calls (opossum#780 shares one controller per breaker).
 *
 * It listens on the caller's signal directly instead of using `AbortSignal.any()`, which keeps
 * every combined signal alive as long as the long-lived source lives (nodejs/node#55351);
 * `dispose()` removes the listener and the timer as soon as the attempt ends.
 */
const ATTEMPT_ENDED = new DOMException('the attempt has ended', 'AbortError');

export class AttemptScope {
  readonly #controller = new AbortController();
  readonly #parent: AbortSignal | undefined;
  readonly #onParentAbort: () => void;
  #timer: NodeJS.Timeout | undefined;
  #timedOut = false;

  constructor(budgetMs: number, parent: AbortSignal | undefined, makeTimeoutError: () => HangproofError) {
    this.#parent = parent;
    this.#onParentAbort = () => this.#controller.abort(parent?.reason);
    if (parent?.aborted) {
      this.#controller.abort(parent.reason);
      return;
    }
    parent?.addEventListener('abort', this.#onParentAbort, { once: true });
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#controller.signal.aborted) return;
      this.#timedOut = true;
      this.#controller.abort(makeTimeoutError());
    }, budgetMs);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True when the attempt's own time ran out (not the caller's). */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /**
   * Ends the attempt: clears the timer, stops listening on the caller, and aborts the attempt's
   * signal (as cockatiel's `abortOnReturn` does) so work the attempt left behind, e.g. an SDK call
   * that lost the race, is told to stop.
   */
  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#parent?.removeEventListener('abort', this.#onParentAbort);
    if (!this.#controller.signal.aborted) this.#controller.abort(ATTEMPT_ENDED);
  }
}
