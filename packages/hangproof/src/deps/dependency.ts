import {
  budgetUntil,
  channels,
  currentContext,
  LatencyReservoir,
  type LatencySummary,
  publish,
  raceAbort,
  sleep,
} from '../core/index.js';
import { isHangproofError } from '../errors.js';
import { LOG_MESSAGES } from '../log-events.js';
import { AttemptScope } from './attempt-scope.js';
import { Bulkhead, BulkheadRejectedError, type Release } from './bulkhead.js';
import { type BreakerPermit, type BreakerState, CircuitBreaker } from './circuit-breaker.js';
import { createBackoff } from './cockatiel-parts.js';
import { type AttemptFailure, classifyFailure, dependencyTimeout, dependencyUnavailable } from './failure.js';
import type { HealthMonitor, HealthSnapshot } from './health-monitor.js';
import type { DepsLogger } from './logger.js';
import type { ResolvedDependencyOptions } from './options.js';
import { RetryBudget } from './retry-budget.js';

/** Per-call choices. */
export interface CallOptions {
  /**
   * The call is safe to repeat, so retryable failures are retried. Never set it for a call that
   * creates or charges something without an idempotency key. @default false
   */
  readonly idempotent?: boolean;
}

/** What one attempt is told about itself. */
export interface AttemptInfo {
  /** 1 for the first try. */
  readonly attempt: number;
  /** Time this attempt may take, in ms; pass it downstream so the callee can give up in time. */
  readonly budgetMs: number;
}

/** The work of one attempt: must stop when `signal` aborts (it is raced against it anyway). */
export type AttemptFn<T> = (signal: AbortSignal, attempt: AttemptInfo) => Promise<T>;

/** What a status page (and `hangproof doctor`) shows about one dependency. */
export interface DependencyStatus {
  readonly name: string;
  readonly kind: 'http' | 'call';
  readonly critical: boolean;
  readonly health: HealthSnapshot | null;
  readonly breaker: {
    readonly state: BreakerState;
    /** ms until an open circuit lets one probe through; 0 when not open. */
    readonly retryAfterMs: number;
    readonly opened: number;
    readonly halfOpened: number;
    readonly closed: number;
  };
  readonly bulkhead: { readonly active: number; readonly queued: number; readonly rejected: number };
  /** Attempt durations of the recent calls that reached the dependency. */
  readonly latencyMs: LatencySummary;
  readonly calls: {
    readonly total: number;
    readonly ok: number;
    /** Failed calls by hangproof code. */
    readonly failed: Readonly<Record<string, number>>;
    readonly attempts: number;
    readonly retries: number;
    readonly retryBudgetExhausted: number;
  };
  readonly config: {
    readonly timeoutMs: number;
    readonly attemptTimeoutMs: number;
    readonly reserveMs: number;
    readonly maxAttempts: number;
    readonly retryBudgetRatio: number;
    readonly breaker: {
      readonly failureRatio: number;
      readonly windowMs: number;
      readonly minimumCalls: number;
      readonly halfOpenAfterMs: number;
      readonly slowCallMs: number;
    };
    readonly bulkhead: { readonly maxConcurrent: number; readonly maxQueue: number; readonly queueWaitMs: number };
    readonly health: { readonly intervalMs: number; readonly timeoutMs: number } | null;
    readonly connectTimeoutMs?: number;
  };
}

interface CallRecord {
  attempts: number;
  /** The error was the callee's own answer (isFailure said no): the dependency worked. */
  passthrough: boolean;
}

export interface DependencyInit {
  readonly name: string;
  readonly kind: 'http' | 'call';
  readonly options: ResolvedDependencyOptions;
  readonly logger: DepsLogger;
  /** Extra config shown on status pages (e.g. connectTimeoutMs of HTTP dependencies). */
  readonly extraConfig?: { readonly connectTimeoutMs?: number };
}

/**
 * One declared dependency and the policies every call to it runs through, outermost first:
 * caller's signal -> breaker fast path -> bulkhead (bounded wait) -> per attempt: breaker permit,
 * attempt timeout = min(attemptTimeoutMs, what is left of the call), the work -> retry decision
 * (idempotent, retryable, budget, backoff that fits) -> abort-aware backoff.
 *
 * The call's time is min(timeoutMs, request remaining - reserveMs), fixed when it starts, and
 * nothing inside it waits past that. Local rejections (open circuit, full bulkhead, the caller's
 * deadline or disconnect) are never counted against the dependency.
 */
export class Dependency {
  readonly name: string;
  readonly kind: 'http' | 'call';
  readonly options: ResolvedDependencyOptions;
  readonly #logger: DepsLogger;
  readonly #breaker: CircuitBreaker;
  readonly #bulkhead: Bulkhead;
  readonly #retryBudget: RetryBudget;
  readonly #latency = new LatencyReservoir();
  readonly #extraConfig: { readonly connectTimeoutMs?: number };
  readonly #transitions = { opened: 0, halfOpened: 0, closed: 0 };
  readonly #calls = { total: 0, ok: 0, attempts: 0, retries: 0 };
  readonly #failed = new Map<string, number>();
  health: HealthMonitor | undefined;

  constructor(init: DependencyInit) {
    this.name = init.name;
    this.kind = init.kind;
    this.options = init.options;
    this.#logger = init.logger;
    this.#extraConfig = init.extraConfig ?? {};
    const o = init.options;
    this.#breaker = new CircuitBreaker({ ...o.breaker, onStateChange: (from, to) => this.#onBreakerChange(from, to) });
    this.#bulkhead = new Bulkhead(o.bulkhead.maxConcurrent, o.bulkhead.maxQueue);
    this.#retryBudget = new RetryBudget(o.retry.budgetRatio, o.retry.budgetMinRetries, o.retry.budgetWindowMs);
  }

  /** The breaker's state now. */
  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  /**
   * Runs `fn` as a call to this dependency under its policies and the current request's deadline.
   * Resolves with what `fn` resolved with; rejects with DEPENDENCY_TIMEOUT / DEPENDENCY_UNAVAILABLE
   * (details `{ dependency, reason? }`), with the caller's own REQUEST_TIMEOUT or
   * CLIENT_CLOSED_REQUEST when that is what ended it, or with `fn`'s error when `isFailure` passed it through.
   */
  async call<T>(fn: AttemptFn<T>, options: CallOptions = {}): Promise<T> {
    const ctx = currentContext();
    const started = performance.now();
    const o = this.options;
    const budgetMs = ctx === undefined ? o.timeoutMs : budgetUntil(ctx.deadlineAt, o.timeoutMs, o.reserveMs);
    const record: CallRecord = { attempts: 0, passthrough: false };
    const endStep = ctx?.beginStep(this.name);
    let outcome = 'ok';
    try {
      return await this.#run(fn, options.idempotent === true, started + budgetMs, ctx?.signal, record);
    } catch (err) {
      if (!record.passthrough) outcome = isHangproofError(err) ? err.code : 'INTERNAL';
      throw err;
    } finally {
      const durationMs = performance.now() - started;
      this.#calls.total++;
      this.#calls.attempts += record.attempts;
      if (outcome === 'ok') this.#calls.ok++;
      else this.#failed.set(outcome, (this.#failed.get(outcome) ?? 0) + 1);
      if (ctx !== undefined) {
        endStep?.(outcome === 'ok');
        ctx.addSpan({
          name: this.name,
          kind: 'external',
          startMs: started - ctx.startedAt,
          durationMs,
          attrs:
            outcome === 'ok' ? { attempts: record.attempts } : { attempts: record.attempts, failed: true, outcome },
        });
      }
      publish(channels.dependencyCall, () => ({ dependency: this.name, durationMs, outcome }));
    }
  }

  async #run<T>(
    fn: AttemptFn<T>,
    idempotent: boolean,
    deadline: number,
    callerSignal: AbortSignal | undefined,
    record: CallRecord,
  ): Promise<T> {
    if (callerSignal?.aborted) throw callerSignal.reason;
    // The first permit is taken before queueing, synchronously: an open circuit answers at once,
    // and in half-open only the probe may queue; everyone else fails fast instead of waiting.
    const permit = this.#breaker.admit();
    if (permit === undefined) throw this.#openError();
    const o = this.options;
    const waitMs = Math.min(o.bulkhead.queueWaitMs, deadline - performance.now() - o.minAttemptMs);
    let release: Release;
    try {
      release = await this.#bulkhead.acquire(waitMs, callerSignal);
    } catch (err) {
      this.#breaker.release(permit);
      if (err instanceof BulkheadRejectedError) throw dependencyUnavailable(this.name, err.reason);
      throw err;
    }
    try {
      return await this.#attempts(fn, idempotent, deadline, callerSignal, record, permit);
    } finally {
      release();
    }
  }

  async #attempts<T>(
    fn: AttemptFn<T>,
    idempotent: boolean,
    deadline: number,
    callerSignal: AbortSignal | undefined,
    record: CallRecord,
    firstPermit: BreakerPermit,
  ): Promise<T> {
    const o = this.options;
    let last: AttemptFailure | undefined;
    let backoff: ReturnType<typeof createBackoff> | undefined;
    for (let attempt = 1; ; attempt++) {
      const attemptMs = Math.min(o.attemptTimeoutMs, deadline - performance.now());
      if (attemptMs < (attempt === 1 ? o.minAttemptMs : this.#retryNeedsMs())) {
        if (attempt === 1) this.#breaker.release(firstPermit);
        if (last !== undefined) throw last.error;
        if (callerSignal?.aborted) throw callerSignal.reason;
        // Not even a minimal try fits in what the request has left: fail now rather than call.
        throw dependencyTimeout(this.name);
      }
      const permit = attempt === 1 ? firstPermit : this.#breaker.admit();
      if (permit === undefined) throw last?.error ?? this.#openError();
      if (attempt === 1) this.#retryBudget.recordRequest();
      record.attempts++;

      const scope = new AttemptScope(attemptMs, callerSignal, () => dependencyTimeout(this.name));
      const attemptStarted = performance.now();
      let delayMs: number;
      try {
        const value = await raceAbort(fn(scope.signal, { attempt, budgetMs: attemptMs }), scope.signal);
        const took = performance.now() - attemptStarted;
        this.#latency.add(took);
        if (o.breaker.slowCallMs > 0 && took > o.breaker.slowCallMs) this.#breaker.failure(permit);
        else this.#breaker.success(permit);
        return value;
      } catch (raw) {
        if (callerSignal?.aborted && !scope.timedOut) {
          // The caller's deadline or disconnect: says nothing about the dependency.
          this.#breaker.release(permit);
          throw callerSignal.reason;
        }
        const took = performance.now() - attemptStarted;
        if (
          scope.timedOut &&
          attemptMs < o.attemptTimeoutMs &&
          !(o.breaker.slowCallMs > 0 && took > o.breaker.slowCallMs)
        ) {
          // The try was cut short by the caller's remaining budget, before it was even slow: the
          // caller's deadline, not evidence against the dependency. No time is left to retry either.
          this.#breaker.release(permit);
          throw dependencyTimeout(this.name);
        }
        const failure = classifyFailure(this.name, raw, scope.timedOut, o);
        if (!failure.counts) {
          this.#breaker.success(permit);
          record.passthrough = true;
          throw failure.error;
        }
        this.#latency.add(took);
        this.#breaker.failure(permit);
        last = failure;
        if (!idempotent || !failure.retryable || attempt >= o.retry.maxAttempts) throw failure.error;
        backoff ??= createBackoff(o.retry.initialDelayMs, o.retry.maxDelayMs);
        delayMs = backoff.next();
        // Never start an attempt that cannot finish: the backoff plus a typical try must fit.
        if (performance.now() + delayMs + this.#retryNeedsMs() > deadline) throw failure.error;
        if (this.#breaker.rejecting) throw failure.error;
        if (!this.#retryBudget.tryRetry()) throw failure.error;
      } finally {
        scope.dispose();
      }
      this.#calls.retries++;
      // cockatiel's retry sleeps through an abort; this sleep ends the moment the caller gives up.
      if (delayMs > 0) await sleep(delayMs, callerSignal);
    }
  }

  /**
   * A retry starts only if it gets the recent median attempt time (at least minAttemptMs, at most
   * a full attempt): a try with less time than the dependency usually needs would only add load.
   */
  #retryNeedsMs(): number {
    const o = this.options;
    return Math.min(o.attemptTimeoutMs, Math.max(o.minAttemptMs, this.#latency.quantile(0.5) ?? 0));
  }

  #openError() {
    const retryAfterSec = Math.max(1, Math.ceil(this.#breaker.retryAfterMs / 1000));
    return dependencyUnavailable(this.name, 'breaker_open', { retryAfterSec });
  }

  #onBreakerChange(from: BreakerState, to: BreakerState): void {
    if (to === 'open') this.#transitions.opened++;
    else if (to === 'half-open') this.#transitions.halfOpened++;
    else this.#transitions.closed++;
    const fields = { dependency: this.name, from, to };
    if (to === 'open') this.#logger.warn(fields, LOG_MESSAGES.breakerOpened);
    else this.#logger.info(fields, to === 'half-open' ? LOG_MESSAGES.breakerHalfOpen : LOG_MESSAGES.breakerClosed);
    publish(channels.breakerState, () => fields);
  }

  status(): DependencyStatus {
    const o = this.options;
    return {
      name: this.name,
      kind: this.kind,
      critical: o.health?.critical ?? false,
      health: this.health?.snapshot ?? null,
      breaker: {
        state: this.#breaker.state,
        retryAfterMs: Math.round(this.#breaker.retryAfterMs),
        ...this.#transitions,
      },
      bulkhead: { active: this.#bulkhead.active, queued: this.#bulkhead.queued, rejected: this.#bulkhead.rejected },
      latencyMs: this.#latency.summary(),
      calls: {
        ...this.#calls,
        failed: Object.fromEntries(this.#failed),
        retryBudgetExhausted: this.#retryBudget.exhausted,
      },
      config: {
        timeoutMs: o.timeoutMs,
        attemptTimeoutMs: o.attemptTimeoutMs,
        reserveMs: o.reserveMs,
        maxAttempts: o.retry.maxAttempts,
        retryBudgetRatio: o.retry.budgetRatio,
        breaker: {
          failureRatio: o.breaker.failureRatio,
          windowMs: o.breaker.windowMs,
          minimumCalls: o.breaker.minimumCalls,
          halfOpenAfterMs: o.breaker.halfOpenAfterMs,
          slowCallMs: o.breaker.slowCallMs,
        },
        bulkhead: { ...o.bulkhead },
        health: o.health === undefined ? null : { intervalMs: o.health.intervalMs, timeoutMs: o.health.timeoutMs },
        ...this.#extraConfig,
      },
    };
  }
}
