import { setMaxListeners } from 'node:events';
import { HangproofError } from '../errors.js';
import type { AbortWatch } from './abort-watch.js';

/** A timed piece of a request: a step, a query, an outbound call. Times are ms from request start. */
export interface Span {
  readonly name: string;
  /** What the span measures: `auth`, `db` (one query), `external`, `serialization` or `step`. */
  readonly kind: string;
  readonly startMs: number;
  readonly durationMs: number;
  readonly attrs?: Readonly<Record<string, unknown>> | undefined;
}

export interface RequestContextInit {
  readonly requestId: string;
  /** Time the request (or job) may take in total, in ms, counted from now. */
  readonly budgetMs: number;
  /** `request` for HTTP requests, `job` for background work. @default 'request' */
  readonly kind?: 'request' | 'job';
  /** Route pattern or job name, used in logs and application_name. */
  readonly name?: string;
}

/**
 * Spans kept per request. A request that runs thousands of queries (an N+1 gone wild) must not
 * grow memory without bound; the count of dropped spans is kept instead.
 */
export const MAX_SPANS_PER_REQUEST = 256;

/** Shared by every context that never aborted mid-step, so a context allocates no array for it. */
const NO_STEPS: readonly string[] = Object.freeze([]);

const noop = (): void => {};

/**
 * Everything hangproof knows about one request or job while it runs: its identity, its deadline,
 * the signal that aborts at that deadline (or when the client leaves), and the spans so far.
 * It lives in AsyncLocalStorage (see context-storage.ts), so any code the request awaits finds it.
 */
export class RequestContext implements AbortWatch {
  readonly requestId: string;
  readonly kind: 'request' | 'job';
  name: string;
  /** Wall-clock start, for log timestamps. */
  readonly startedAtEpochMs: number;
  /** Monotonic start (performance.now()), for durations. */
  readonly startedAt: number;
  readonly budgetMs: number;
  /** Monotonic time at which the budget is spent. */
  readonly deadlineAt: number;
  /** Set by auth code once the caller is known. */
  userId: string | undefined;
  readonly spans: Span[] = [];
  droppedSpans = 0;
  lastCompletedStep: string | undefined;
  /**
   * The steps that were running when the signal aborted, innermost last. Steps end as soon as
   * the abort rejects their work, so by the time the request ends `stepsInFlight` is usually
   * empty; this keeps the answer to "where was it when the time ran out?".
   */
  stepsInFlightAtAbort: readonly string[] = NO_STEPS;
  /** Fields a route adds to the request's log line, e.g. `{ bot_count: 50 }`. */
  readonly fields: Record<string, unknown> = {};
  readonly #inFlight: string[] = [];
  // The AbortSignal is created on first use: building one costs microseconds (an EventTarget),
  // more than the rest of the context together, and many requests never need it.
  #controller: AbortController | undefined;
  #reason: HangproofError | undefined;
  #watchers: Set<(reason: unknown) => void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(init: RequestContextInit) {
    this.requestId = init.requestId;
    this.kind = init.kind ?? 'request';
    this.name = init.name ?? '';
    this.startedAtEpochMs = Date.now();
    this.startedAt = performance.now();
    this.budgetMs = Math.max(0, init.budgetMs);
    this.deadlineAt = this.startedAt + this.budgetMs;
    // Kept ref'd: a job whose work ignores its signal still ends at its deadline. end() clears
    // it, so a finished request holds nothing.
    this.#timer = setTimeout(() => this.expire(), this.budgetMs);
  }

  /** ms since the request started. */
  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  /** ms left before the deadline; 0 once it has passed. */
  remainingMs(): number {
    return Math.max(0, this.deadlineAt - performance.now());
  }

  /** Aborts at the deadline (reason REQUEST_TIMEOUT) or when the request is abandoned. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      // Parallel queries and calls each listen on this signal; that is expected, not a leak.
      setMaxListeners(1000, this.#controller.signal);
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  /** Why the context aborted: REQUEST_TIMEOUT, CLIENT_CLOSED_REQUEST, SHUTTING_DOWN... */
  get abortReason(): HangproofError | undefined {
    return this.#reason;
  }

  /**
   * Calls `fn` once, synchronously, when the context aborts (after the signal's listeners);
   * returns the function that stops watching. The cheap form of a signal listener for code that
   * watches many short operations (each query) and for the framework adapter that owns the
   * request. Like a listener on an aborted signal, a watcher added after the abort or the end is
   * never called: check `aborted` first.
   */
  watchAbort(fn: (reason: unknown) => void): () => void {
    if (this.#ended) return noop;
    if (this.#watchers === undefined) this.#watchers = new Set();
    const watchers = this.#watchers;
    watchers.add(fn);
    return () => {
      watchers.delete(fn);
    };
  }

  /** The innermost step still running, named in the log when a request times out. */
  get stepInFlight(): string | undefined {
    return this.#inFlight.at(-1);
  }

  get stepsInFlight(): readonly string[] {
    return this.#inFlight;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Aborts the signal with `reason`. The first reason wins; later calls do nothing. */
  abort(reason: HangproofError): void {
    if (this.#reason !== undefined || this.#ended) return;
    this.#reason = reason;
    this.#clearTimer();
    if (this.#inFlight.length > 0) this.stepsInFlightAtAbort = [...this.#inFlight];
    this.#controller?.abort(reason);
    const watchers = this.#watchers;
    this.#watchers = undefined;
    // Iterated live, as an AbortSignal dispatches: a watcher stopped by an earlier one is skipped.
    if (watchers !== undefined) for (const fn of watchers) fn(reason);
  }

  addSpan(span: Span): void {
    if (this.spans.length < MAX_SPANS_PER_REQUEST) this.spans.push(span);
    else this.droppedSpans++;
  }

  /** Marks `name` as running; call the returned function when it ends. */
  beginStep(name: string): (ok: boolean) => void {
    this.#inFlight.push(name);
    return (ok) => {
      const i = this.#inFlight.lastIndexOf(name);
      if (i >= 0) this.#inFlight.splice(i, 1);
      if (ok) this.lastCompletedStep = name;
    };
  }

  annotate(fields: Readonly<Record<string, unknown>>): void {
    Object.assign(this.fields, fields);
  }

  /** Stops the deadline timer. Called once the response is out (or the job returned). */
  end(): void {
    this.#ended = true;
    this.#clearTimer();
    // An ended context can no longer abort. Its watchers close over the request's reply and
    // socket; dropping them lets those go with the request even while the context itself is
    // still referenced (observe keeps the last ended contexts for stall reports).
    this.#watchers = undefined;
  }

  private expire(): void {
    this.#timer = undefined;
    this.abort(
      new HangproofError('REQUEST_TIMEOUT', {
        message: `the request did not complete within its deadline of ${this.budgetMs} ms`,
        details: { deadlineMs: this.budgetMs },
      }),
    );
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
