import type { Channel } from 'node:diagnostics_channel';
import {
  type BreakerStateEvent,
  channels,
  type DependencyCallEvent,
  MAX_REQUEST_ID_LENGTH,
  type PoolAcquireEvent,
  type QueryEvent,
  queryId,
  type RequestEndEvent,
  type Span,
} from '../core/index.js';
import { BoundedRing } from './bounded-ring.js';
import { ByteStringSlots } from './byte-string-slots.js';
import { DeferredRecords } from './deferred-records.js';
import { OTHER, SeriesBook, type SeriesView, SummedSeries } from './latency-series.js';
import { RecentEvidence } from './recent-evidence.js';
import { RouteBook } from './route-book.js';
import { type EndedRequest, loopRan, mayBeHeldUpByStall, type StallReport } from './stall-watchdog.js';

/** A slow request kept with its spans, for the waterfall on /status. */
export interface SlowRequest {
  readonly at: string;
  readonly requestId: string;
  readonly method: string;
  readonly route: string;
  readonly statusCode: number;
  readonly errorCode: string | undefined;
  readonly durationMs: number;
  readonly deadlineMs: number;
  readonly spans: readonly Span[];
  readonly droppedSpans: number;
}

/** A request that ended in a timeout, with where it was when the time ran out. */
export interface TimeoutRecord extends SlowRequest {
  readonly lastCompletedStep: string | undefined;
  readonly stepInFlight: string | undefined;
  readonly stepsInFlight: readonly string[];
}

export interface BreakerView {
  state: string;
  since: string;
  transitions: number;
}

export interface MeasurementsOptions {
  readonly bucketsSec: readonly number[];
  readonly maxRoutes: number;
  readonly maxQueryFingerprints: number;
  readonly maxDependencies: number;
  readonly slowRequestMs: number;
  readonly recentLimit: number;
}

/** Ended requests remembered, so a stall reported late can still list what it held up (see mayBeHeldUpByStall). */
const RECENT_ENDED = 256;
/** Error codes that count as timeouts on /status. */
const TIMEOUT_CODES = new Set(['REQUEST_TIMEOUT', 'DEPENDENCY_TIMEOUT']);
/** Spans kept per recent request (the context keeps up to 256). */
const MAX_KEPT_SPANS = 100;
/** Recorded as the error code of a pool acquire that gave up. */
export const ACQUIRE_FAILED = 'ACQUIRE_FAILED';

/** A short, stable id for a query fingerprint, usable as a Prometheus label (the same id the log lines use). */
export { queryId };

/**
 * Everything observe measures from hangproof's diagnostics channels: per route, per query
 * fingerprint (and all queries), per pool acquire, per dependency; breaker states; the most recent
 * slow requests, timeouts and loop stalls. Channels are process-wide, so one instance per process
 * sees the whole process.
 */
export class Measurements {
  readonly routes: RouteBook;
  /** All queries: the per-query series summed when read. */
  readonly queryTotal: SeriesView;
  readonly queries: SeriesBook;
  /** Fingerprint text by query id, for /status. */
  readonly fingerprints = new Map<string, string>();
  readonly poolAcquire: SeriesBook;
  readonly dependencies: SeriesBook;
  readonly breakers = new Map<string, BreakerView>();
  readonly slowRequests: BoundedRing<SlowRequest>;
  readonly timeouts: BoundedRing<TimeoutRecord>;
  readonly stalls: BoundedRing<StallReport>;
  stallCount = 0;
  /** The last minute's evidence, for the likely causes on /status. */
  readonly evidence = new RecentEvidence();
  /** Requests answered 503 OVERLOADED, by reason. */
  readonly shed = new Map<string, number>();
  readonly startedAtMs = Date.now();
  readonly #slowMs: number;
  /** Route, query and pool-acquire values on their way to their series (see DeferredRecords). */
  readonly #deferred = new DeferredRecords();
  /**
   * The last requests that ended, as primitives in fixed arrays: no allocation per request, and no
   * context (with its spans and whatever its closures hold) kept alive after its request. Names
   * and steps are the routes' and steps' own strings; ids are made per request, so they are kept
   * as bytes (see ByteStringSlots).
   */
  readonly #ended = {
    id: new ByteStringSlots(RECENT_ENDED, MAX_REQUEST_ID_LENGTH),
    name: new Array<string>(RECENT_ENDED),
    kind: new Array<'request' | 'job'>(RECENT_ENDED),
    startedAt: new Float64Array(RECENT_ENDED),
    endedAt: new Float64Array(RECENT_ENDED),
    step: new Array<string | undefined>(RECENT_ENDED),
    lastStep: new Array<string | undefined>(RECENT_ENDED),
  };
  #endedNext = 0;
  readonly #subscriptions: [Channel, (message: unknown) => void][] = [];

  constructor(o: MeasurementsOptions) {
    const boundsMs = Float64Array.from(o.bucketsSec, (s) => s * 1000);
    this.#slowMs = o.slowRequestMs;
    const fold = (): void => this.#deferred.fold();
    this.routes = new RouteBook(o.maxRoutes, boundsMs, this.startedAtMs, fold);
    this.queries = new SeriesBook(
      o.maxQueryFingerprints,
      boundsMs,
      (fp) => {
        const id = fp === OTHER ? OTHER : queryId(fp);
        this.fingerprints.set(id, fp);
        return { query_id: id };
      },
      this.startedAtMs,
      fold,
    );
    this.queryTotal = new SummedSeries({}, () => this.queries.series(), boundsMs, this.startedAtMs);
    this.poolAcquire = new SeriesBook(o.maxDependencies, boundsMs, (pool) => ({ pool }), this.startedAtMs, fold);
    this.dependencies = new SeriesBook(o.maxDependencies, boundsMs, (dependency) => ({ dependency }), this.startedAtMs);
    this.slowRequests = new BoundedRing(o.recentLimit);
    this.timeouts = new BoundedRing(o.recentLimit);
    this.stalls = new BoundedRing(o.recentLimit);
  }

  /** The hot path: a beat and a held record per request; its series records are folded later (DeferredRecords). */
  readonly onRequestEnd = (e: RequestEndEvent): void => {
    const { ctx } = e;
    const endedAt = ctx.startedAt + e.durationMs;
    loopRan(endedAt);
    // Only a request a stall can have held up is remembered: a healthy one stores nothing here, and
    // the 256 slots reach back over many more requests.
    if (mayBeHeldUpByStall(e.durationMs)) this.#rememberEnded(ctx, endedAt);
    this.#deferred.add(this.routes.get(e.method, e.route), e.durationMs, e.errorCode);
    const timedOut = e.errorCode !== undefined && TIMEOUT_CODES.has(e.errorCode);
    const slow = !timedOut && e.durationMs >= this.#slowMs;
    if (!timedOut && !slow && e.statusCode < 500) return;
    // Only a timed-out, slow or failed request is kept as evidence, with the wall-clock time.
    const now = Date.now();
    if (timedOut) this.timeouts.push(this.#timeout(e, now));
    else if (slow) this.slowRequests.push(this.#slow(e, now));
    this.evidence.addRequest(e, now);
  };

  #rememberEnded(ctx: RequestEndEvent['ctx'], endedAt: number): void {
    const i = this.#endedNext;
    const ended = this.#ended;
    ended.id.set(i, ctx.requestId);
    ended.name[i] = ctx.name;
    ended.kind[i] = ctx.kind;
    ended.startedAt[i] = ctx.startedAt;
    ended.endedAt[i] = endedAt;
    ended.step[i] = ctx.stepsInFlightAtAbort.at(-1) ?? ctx.stepInFlight;
    ended.lastStep[i] = ctx.lastCompletedStep;
    this.#endedNext = (i + 1) % RECENT_ENDED;
  }

  readonly onQuery = (e: QueryEvent): void => {
    this.#deferred.add(this.queries.get(e.fingerprint), e.durationMs, e.errorCode);
  };

  readonly onPoolAcquire = (e: PoolAcquireEvent): void => {
    this.#deferred.add(this.poolAcquire.get(e.pool), e.waitMs, e.ok ? undefined : ACQUIRE_FAILED);
  };

  readonly onDependencyCall = (e: DependencyCallEvent): void => {
    const now = Date.now();
    this.dependencies.get(e.dependency).record(e.durationMs, now, e.outcome === 'ok' ? undefined : e.outcome);
  };

  readonly onBreakerState = (e: BreakerStateEvent): void => {
    this.evidence.addBreakerChange(e);
    const b = this.breakers.get(e.dependency);
    const since = new Date().toISOString();
    if (b === undefined) {
      if (this.breakers.size < 1000) this.breakers.set(e.dependency, { state: e.to, since, transitions: 1 });
      return;
    }
    b.state = e.to;
    b.since = since;
    b.transitions++;
  };

  /** Requests that ended at or after `perfNow` (performance.now() time), among the last 256 a stall can have held up. */
  *endedSince(perfNow: number): IterableIterator<EndedRequest> {
    const e = this.#ended;
    for (let i = 0; i < RECENT_ENDED; i++) {
      if ((e.endedAt[i] as number) < perfNow) continue;
      const requestId = e.id.get(i);
      if (requestId === undefined) continue;
      yield {
        requestId,
        name: e.name[i] as string,
        kind: e.kind[i] as 'request' | 'job',
        startedAt: e.startedAt[i] as number,
        durationMs: (e.endedAt[i] as number) - (e.startedAt[i] as number),
        stepInFlight: e.step[i],
        lastCompletedStep: e.lastStep[i],
      };
    }
  }

  recordStall(report: StallReport): void {
    this.stallCount++;
    this.stalls.push(report);
    this.evidence.addStall(report);
  }

  recordShed(reason: string): void {
    this.shed.set(reason, (this.shed.get(reason) ?? 0) + 1);
  }

  subscribe(): void {
    const pairs: [Channel, (message: unknown) => void][] = [
      [channels.requestEnd, this.onRequestEnd as (m: unknown) => void],
      [channels.query, this.onQuery as (m: unknown) => void],
      [channels.poolAcquire, this.onPoolAcquire as (m: unknown) => void],
      [channels.dependencyCall, this.onDependencyCall as (m: unknown) => void],
      [channels.breakerState, this.onBreakerState as (m: unknown) => void],
      [channels.evidence, this.evidence.onEvidence as (m: unknown) => void],
    ];
    for (const [channel, fn] of pairs) {
      channel.subscribe(fn);
      this.#subscriptions.push([channel, fn]);
    }
    this.#deferred.start();
  }

  unsubscribe(): void {
    for (const [channel, fn] of this.#subscriptions) channel.unsubscribe(fn);
    this.#subscriptions.length = 0;
    this.#deferred.stop();
  }

  #slow(e: RequestEndEvent, now: number): SlowRequest {
    const { ctx } = e;
    return {
      at: new Date(now - e.durationMs).toISOString(),
      requestId: ctx.requestId,
      method: e.method,
      route: e.route,
      statusCode: e.statusCode,
      errorCode: e.errorCode,
      durationMs: Math.round(e.durationMs * 10) / 10,
      deadlineMs: ctx.budgetMs,
      spans: ctx.spans.slice(0, MAX_KEPT_SPANS),
      droppedSpans: ctx.droppedSpans + Math.max(0, ctx.spans.length - MAX_KEPT_SPANS),
    };
  }

  #timeout(e: RequestEndEvent, now: number): TimeoutRecord {
    const { ctx } = e;
    return {
      ...this.#slow(e, now),
      lastCompletedStep: ctx.lastCompletedStep,
      // Steps end as soon as the abort rejects their work: what ran at the deadline is kept apart.
      stepInFlight: ctx.stepInFlight ?? ctx.stepsInFlightAtAbort.at(-1),
      stepsInFlight: ctx.stepsInFlight.length > 0 ? [...ctx.stepsInFlight] : [...ctx.stepsInFlightAtAbort],
    };
  }
}
