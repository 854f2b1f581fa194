import { setMaxListeners } from 'node:events';
import { HangproofError } from '../errors.js';
import type { AbortWatch } from './abort-watch.js';
import { type DeadlineEntry, deadlineTimers } from './deadline-timers.js';
import type { InFlightRequests } from './in-flight-requests.js';
import type { QueryShape } from './query-shape.js';

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
  /** HTTP method of a request. @default '' */
  readonly method?: string;
  /** Path of a request without its query string (which may carry tokens). @default '' */
  readonly path?: string;
  /**
   * Called once when the context aborts (after the signal's listeners, before the watchers): how the framework adapter that owns the request
   * answers it. A shared function (the adapter keeps its per-request state in `owner`), so a
   * request costs no closure for it.
   */
  readonly onAbort?: ((ctx: RequestContext) => void) | undefined;
  /** The adapter's per-request state, for `onAbort`. */
  readonly owner?: unknown;
}

/** How often one query shape ran in a request, for N+1 detection: one entry per shape. */
export interface ShapeRuns {
  readonly shape: QueryShape;
  /** Sequential runs: a batch of parallel runs of one shape counts once. */
  count: number;
  inFlight: number;
  reported: boolean;
  /** The next entry of the request's list: a shape that first ran earlier. */
  readonly next: ShapeRuns | undefined;
}

/** Slots of one compact span record: kind, subject, start, duration, then four kind-specific values. */
const STRIDE = 8;
const REC_SPAN = 0;
const REC_QUERY = 1;

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
  /** Monotonic start (performance.now()), for durations. */
  readonly startedAt: number;
  readonly budgetMs: number;
  /** Monotonic time at which the budget is spent. */
  readonly deadlineAt: number;
  /** HTTP method; '' for jobs. */
  readonly method: string;
  /** Request path without its query string; '' for jobs. */
  readonly path: string;
  /** Set by auth code once the caller is known. */
  userId: string | undefined;
  droppedSpans = 0;
  /** Per-kind totals, kept as numbers so the log line needs no span list: queries. */
  dbCount = 0;
  /** Time spent in queries (sum of their durations, parallel ones overlap), ms. */
  dbMs = 0;
  /** Time spent waiting for a pooled connection, ms. */
  acquireMs = 0;
  /** Outbound calls (spans of kind `external`) and their summed time, ms. */
  externalCount = 0;
  externalMs = 0;
  /**
   * Runs per query shape, for N+1 detection, newest shape first: a list rather than a Map, as most
   * requests run a handful of shapes and a Map per request is the larger allocation.
   */
  queryRuns: ShapeRuns | undefined;
  /** The HTTP status sent, set by the adapter when the request ends (499 when the client left). */
  statusCode = 0;
  /** The hangproof error code the request ended with, if any. */
  errorCode: string | undefined;
  /** The failure behind a 500, for the log only (never the client). */
  err: unknown;
  /** performance.now() when the overload guard gave the request its slot (adaptive limit only). */
  admittedAt = 0;
  /** How many requests held a slot at that moment: the adaptive limit's sample. */
  inFlightAtAdmission = 0;
  /** Total duration in ms, set when the request ends. */
  durationMs = 0;
  /** The adapter's per-request state (see RequestContextInit.owner); undefined once the request ended. */
  get owner(): unknown {
    return this.#owner;
  }
  #owner: unknown;
  readonly #onAbort: ((ctx: RequestContext) => void) | undefined;
  /**
   * Spans as flat records of STRIDE slots (kind, subject, start, duration, ...): a query span
   * costs a few array slots and no object. Span objects are built only when read (`spans`): a
   * slow or failed request's log line, Server-Timing for an admin, /status.
   */
  #records: unknown[] | undefined;
  #spanCount = 0;
  #built: Span[] | undefined;
  lastCompletedStep: string | undefined;
  /**
   * The steps that were running when the signal aborted, innermost last. Steps end as soon as
   * the abort rejects their work, so by the time the request ends `stepsInFlight` is usually
   * empty; this keeps the answer to "where was it when the time ran out?".
   */
  stepsInFlightAtAbort: readonly string[] = NO_STEPS;
  #fields: Record<string, unknown> | undefined;
  /** Steps running now, innermost last; shared empty array until the first step. */
  #inFlight: string[] = NO_STEPS as string[];
  // The AbortSignal is created on first use: building one costs microseconds (an EventTarget),
  // more than the rest of the context together, and many requests never need it.
  #controller: AbortController | undefined;
  #reason: HangproofError | undefined;
  // Abort watchers: the first in a field (most requests have at most one at a time, the running
  // query's), the others in a Set made only when a second one comes.
  #watcher: ((reason: unknown) => void) | undefined;
  #moreWatchers: Set<(reason: unknown) => void> | undefined;
  #deadline: DeadlineEntry | undefined;
  #startedAtEpochMs: number | undefined;
  #ended = false;
  /** @internal The in-flight list this context is in, and its neighbours there (InFlightRequests). */
  inFlightIn: InFlightRequests | undefined;
  /** @internal */
  inFlightPrev: RequestContext | undefined;
  /** @internal */
  inFlightNext: RequestContext | undefined;

  constructor(init: RequestContextInit) {
    this.requestId = init.requestId;
    this.kind = init.kind ?? 'request';
    this.name = init.name ?? '';
    this.method = init.method ?? '';
    this.path = init.path ?? '';
    this.#owner = init.owner;
    this.#onAbort = init.onAbort;
    this.startedAt = performance.now();
    this.budgetMs = Math.max(0, init.budgetMs);
    this.deadlineAt = this.startedAt + this.budgetMs;
    // One timer for every context's deadline (see DeadlineTimers). end() cancels it, so a
    // finished request holds nothing.
    this.#deadline = deadlineTimers.schedule(this, this.budgetMs, this.startedAt);
  }

  /** The context itself: with `route`, `method`, `statusCode`, `errorCode` and `durationMs` it is the requestEnd event. */
  get ctx(): RequestContext {
    return this;
  }

  /** Route pattern (same as `name`), for the requestEnd event. */
  get route(): string {
    return this.name;
  }

  /**
   * Wall-clock start (epoch ms), for timestamps: worked out from the wall clock when first read
   * (by a slow request's line, a span export), since most requests never need it.
   */
  get startedAtEpochMs(): number {
    this.#startedAtEpochMs ??= Date.now() - (performance.now() - this.startedAt);
    return this.#startedAtEpochMs;
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
    this.addAbortWatcher(fn);
    const more = this.#moreWatchers;
    // A watcher in the Set is stopped in that Set even while abort() walks it: it is then skipped.
    if (more?.has(fn)) return () => void more.delete(fn);
    return () => this.unwatchAbort(fn);
  }

  /** watchAbort without the stop function: stop with `unwatchAbort(fn)`. */
  addAbortWatcher(fn: (reason: unknown) => void): void {
    if (this.#ended || this.#watcher === fn) return;
    if (this.#watcher === undefined && this.#moreWatchers?.has(fn) !== true) {
      this.#watcher = fn;
      return;
    }
    this.#moreWatchers ??= new Set();
    this.#moreWatchers.add(fn);
  }

  /** Stops calling `fn` (added with watchAbort or addAbortWatcher). */
  unwatchAbort(fn: (reason: unknown) => void): void {
    if (this.#watcher === fn) this.#watcher = undefined;
    else this.#moreWatchers?.delete(fn);
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
    this.#onAbort?.(this);
    const first = this.#watcher;
    this.#watcher = undefined;
    first?.(reason);
    const more = this.#moreWatchers;
    this.#moreWatchers = undefined;
    // Iterated live, as an AbortSignal dispatches: a watcher stopped by an earlier one is skipped.
    if (more !== undefined) for (const fn of more) fn(reason);
  }

  /** Records a span; `db` and `external` spans also count into the per-kind totals. */
  addSpan(span: Span): void {
    if (span.kind === 'db') {
      this.dbCount++;
      this.dbMs += span.durationMs;
    } else if (span.kind === 'external') {
      this.externalCount++;
      this.externalMs += span.durationMs;
    }
    const r = this.#slot();
    if (r === undefined) return;
    const at = this.#spanCount++ * STRIDE;
    r[at] = REC_SPAN;
    r[at + 1] = span;
  }

  /**
   * Records one guarded query: totals, and a span as numbers plus the interned shape. `startedAt`
   * is performance.now(); `errorCode` is the hangproof code of a failure, `phase` where it failed.
   */
  recordQuery(
    shape: QueryShape,
    startedAt: number,
    durationMs: number,
    rows: number,
    acquireMs: number,
    errorCode: string | undefined,
    phase?: string,
  ): void {
    this.dbCount++;
    this.dbMs += durationMs;
    this.acquireMs += acquireMs;
    const r = this.#slot();
    if (r === undefined) return;
    const at = this.#spanCount++ * STRIDE;
    r[at] = REC_QUERY;
    r[at + 1] = shape;
    r[at + 2] = startedAt - this.startedAt;
    r[at + 3] = durationMs;
    r[at + 4] = rows;
    r[at + 5] = acquireMs;
    r[at + 6] = errorCode;
    r[at + 7] = phase;
  }

  /** How many spans are kept (without building them). */
  get spanCount(): number {
    return this.#spanCount;
  }

  /** The spans so far, built from the compact records on first read after a change. */
  get spans(): readonly Span[] {
    if (this.#built !== undefined && this.#built.length === this.#spanCount) return this.#built;
    const out: Span[] = [];
    const r = this.#records;
    for (let i = 0; i < this.#spanCount; i++) {
      const at = i * STRIDE;
      if (r?.[at] === REC_SPAN) {
        out.push(r[at + 1] as Span);
        continue;
      }
      const shape = r?.[at + 1] as QueryShape;
      const acquireMs = r?.[at + 5] as number;
      const error = r?.[at + 6] as string | undefined;
      const attrs: Record<string, unknown> = {
        queryId: shape.id,
        fingerprint: shape.fingerprint,
        rows: r?.[at + 4] as number,
      };
      if (acquireMs > 0) attrs.acquireMs = Math.round(acquireMs * 10) / 10;
      if (error !== undefined) attrs.error = error;
      const phase = r?.[at + 7] as string | undefined;
      if (phase !== undefined) attrs.phase = phase;
      out.push({
        name: shape.label,
        kind: 'db',
        startMs: r?.[at + 2] as number,
        durationMs: r?.[at + 3] as number,
        attrs,
      });
    }
    this.#built = out;
    return out;
  }

  /** The record array with room for one more span, or undefined when the cap is reached. */
  #slot(): unknown[] | undefined {
    if (this.#spanCount >= MAX_SPANS_PER_REQUEST) {
      this.droppedSpans++;
      return undefined;
    }
    this.#records ??= [];
    return this.#records;
  }

  /** Fields a route adds to the request's log line, e.g. `{ bot_count: 50 }`. */
  get fields(): Record<string, unknown> {
    this.#fields ??= {};
    return this.#fields;
  }

  /** True when a route added fields (reading `fields` would create the object). */
  get hasFields(): boolean {
    return this.#fields !== undefined;
  }

  /** Marks `name` as running; call the returned function when it ends. */
  beginStep(name: string): (ok: boolean) => void {
    if (this.#inFlight === NO_STEPS) this.#inFlight = [];
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

  /**
   * Stops the deadline timer and fixes `durationMs`. Called once the response is out (or the job
   * returned); `now` is the caller's performance.now() of that moment, when it has read it already.
   */
  end(now = performance.now()): void {
    if (this.#ended) return;
    this.#ended = true;
    this.durationMs = now - this.startedAt;
    this.#clearTimer();
    // An ended context can no longer abort. Its watchers and its owner (the adapter's reply)
    // hold the request's whole object graph: the socket, the parsed request, the response body.
    // Dropped here, they go with the request even while the context itself is still referenced:
    // every async resource created during the request (a keep-alive timer, a pooled connection's
    // idle timer, a socket opened for the pool) keeps the context as its AsyncLocalStorage store
    // for as long as it lives, and would otherwise keep all of that alive and promoted to the
    // old generation, for the garbage collector to trace.
    this.#watcher = undefined;
    this.#moreWatchers = undefined;
    this.#owner = undefined;
  }

  /** @internal The deadline has come: DeadlineTimers calls this, nothing else should. */
  onDeadline(): void {
    this.#deadline = undefined;
    this.abort(
      new HangproofError('REQUEST_TIMEOUT', {
        message: `the request did not complete within its deadline of ${this.budgetMs} ms`,
        details: { deadlineMs: this.budgetMs },
      }),
    );
  }

  #clearTimer(): void {
    if (this.#deadline !== undefined) deadlineTimers.cancel(this.#deadline);
    this.#deadline = undefined;
  }
}
