/**
 * Options of a declared dependency. Every default lives in one frozen object below and is
 * repeated in docs/reference/deps.md; options are validated when the dependency is declared, so a
 * bad value fails at startup with a RangeError/TypeError naming it, never on the first request.
 */
import {
  nonNegative,
  nonNegativeInt,
  numberWhere,
  optionalFunction,
  positiveInt,
  positiveMs,
} from '../core/option-checks.js';

/** Retries of one call. Only idempotent calls are retried, and only on retryable failures. */
export interface RetryOptions {
  /** Tries per call in total, the first included; `1` turns retries off. @default 3 */
  readonly maxAttempts?: number;
  /** Upper bound of the first backoff, in ms; each delay is uniform in [0, bound) (full jitter). @default 50 */
  readonly initialDelayMs?: number;
  /** Largest backoff bound, in ms; the bound doubles per retry up to this. @default 1000 */
  readonly maxDelayMs?: number;
  /** Retries allowed as a share of first attempts over the budget window (0.1 = at most ~10 % extra load). @default 0.1 */
  readonly budgetRatio?: number;
  /** Retries always allowed per budget window, so a quiet dependency can still retry. @default 10 */
  readonly budgetMinRetries?: number;
  /** Length of the retry budget's sliding window, in ms. @default 10_000 */
  readonly budgetWindowMs?: number;
}

/** Circuit breaker: opens on a failure ratio over a sliding time window with a minimum volume. */
export interface BreakerOptions {
  /** Share (0..1, exclusive) of failed calls in the window that opens the circuit. @default 0.5 */
  readonly failureRatio?: number;
  /** Length of the sliding window the ratio is measured over, in ms. @default 10_000 */
  readonly windowMs?: number;
  /** Calls the window must hold before the ratio can open the circuit. @default 10 */
  readonly minimumCalls?: number;
  /** Time the circuit stays open before it lets exactly one probe call through, in ms. @default 5_000 */
  readonly halfOpenAfterMs?: number;
  /**
   * A call that succeeds but takes longer than this counts as a failure for the breaker (it still
   * returns its value), in ms. `null` means 80 % of `attemptTimeoutMs`; `0` turns it off. @default null
   */
  readonly slowCallMs?: number | null;
}

/** Bulkhead: a cap on concurrent calls plus a short, bounded queue with a bounded wait. */
export interface BulkheadOptions {
  /** Calls to this dependency in flight at once (retries of a call reuse its slot). @default 10 */
  readonly maxConcurrent?: number;
  /** Calls that may wait for a slot; more are rejected at once. `0` means no queue. @default 10 */
  readonly maxQueue?: number;
  /** Longest a call waits in the queue (never past its own budget), in ms. @default 100 */
  readonly queueWaitMs?: number;
}

/** Background health probing. Results are cached; readiness and status pages read only the cache. */
export interface HealthOptions {
  /** HTTP dependencies: path probed with GET; a 2xx or 3xx answer means up. @default undefined (no probe) */
  readonly path?: string;
  /** Any dependency: resolves when healthy, rejects when not. Must honour `signal`. Overrides `path`. */
  readonly probe?: (signal: AbortSignal) => Promise<unknown>;
  /** Time between probes, in ms. @default 10_000 */
  readonly intervalMs?: number;
  /** Time one probe may take before it counts as down, in ms; must be below `intervalMs`. @default 1_000 */
  readonly timeoutMs?: number;
  /** A critical dependency that is down (or not yet probed) makes the service not ready. @default false */
  readonly critical?: boolean;
}

/** How one dependency is called. Defaults live in DEPENDENCY_DEFAULTS. */
export interface DependencyOptions {
  /**
   * Longest one call may take in total, in ms: bulkhead wait, every attempt and every backoff.
   * Inside a request the call also never runs past the request's remaining budget minus `reserveMs`.
   * @default 1_000
   */
  readonly timeoutMs?: number;
  /**
   * Longest one attempt may take, in ms. Below `timeoutMs` it leaves room to retry an attempt that
   * timed out; equal to it, only fast failures (refused, reset, 503) are retried. @default timeoutMs
   */
  readonly attemptTimeoutMs?: number;
  /** Time kept back from the request's remaining budget to turn a failure into a clear error, in ms. @default 100 */
  readonly reserveMs?: number;
  /** An attempt starts only when it would get at least this long, in ms. @default 20 */
  readonly minAttemptMs?: number;
  readonly retry?: RetryOptions;
  readonly breaker?: BreakerOptions;
  readonly bulkhead?: BulkheadOptions;
  readonly health?: HealthOptions;
  /**
   * Non-HTTP calls: decides whether an error `fn` threw is the dependency failing (counted by the
   * breaker, reported as DEPENDENCY_UNAVAILABLE) or an answer to pass through unchanged (e.g. a
   * "not found" from an SDK). @default every error is a failure
   */
  readonly isFailure?: (error: unknown) => boolean;
  /**
   * Non-HTTP calls: decides whether a failure may be retried (idempotent calls only).
   * @default network errors (ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT...) and attempt timeouts
   */
  readonly isRetryable?: (error: unknown) => boolean;
}

/** An HTTP dependency, called through an undici Pool. Defaults live in HTTP_DEFAULTS. */
export interface HttpDependencyOptions extends DependencyOptions {
  /** Origin and optional base path, e.g. `https://market.internal:8443/v1`. Required. */
  readonly baseUrl: string;
  /** Time to open a TCP (and TLS) connection, in ms; never above `attemptTimeoutMs`. @default 1_000 */
  readonly connectTimeoutMs?: number;
  /** Largest response body read into memory, in bytes; a bigger one fails the call. @default 10 MiB */
  readonly maxResponseBytes?: number;
  /** Idle keep-alive sockets are closed after this long, in ms. @default 4_000 */
  readonly keepAliveTimeoutMs?: number;
  /** Headers sent with every call (e.g. an API key). */
  readonly headers?: Readonly<Record<string, string>>;
}

export const RETRY_DEFAULTS = Object.freeze({
  maxAttempts: 3,
  initialDelayMs: 50,
  maxDelayMs: 1_000,
  budgetRatio: 0.1,
  budgetMinRetries: 10,
  budgetWindowMs: 10_000,
} satisfies Required<RetryOptions>);

export const BREAKER_DEFAULTS = Object.freeze({
  failureRatio: 0.5,
  windowMs: 10_000,
  minimumCalls: 10,
  halfOpenAfterMs: 5_000,
  slowCallMs: null,
} satisfies Required<BreakerOptions>);

export const BULKHEAD_DEFAULTS = Object.freeze({
  maxConcurrent: 10,
  maxQueue: 10,
  queueWaitMs: 100,
} satisfies Required<BulkheadOptions>);

export const HEALTH_DEFAULTS = Object.freeze({
  intervalMs: 10_000,
  timeoutMs: 1_000,
  critical: false,
});

export const DEPENDENCY_DEFAULTS = Object.freeze({
  timeoutMs: 1_000,
  reserveMs: 100,
  minAttemptMs: 20,
});

export const HTTP_DEFAULTS = Object.freeze({
  connectTimeoutMs: 1_000,
  maxResponseBytes: 10 * 1024 * 1024,
  keepAliveTimeoutMs: 4_000,
});

export interface ResolvedHealth {
  readonly path: string | undefined;
  readonly probe: ((signal: AbortSignal) => Promise<unknown>) | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly critical: boolean;
}

export interface ResolvedDependencyOptions {
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly reserveMs: number;
  readonly minAttemptMs: number;
  readonly retry: Required<RetryOptions>;
  readonly breaker: Required<Omit<BreakerOptions, 'slowCallMs'>> & { readonly slowCallMs: number };
  readonly bulkhead: Required<BulkheadOptions>;
  readonly health: ResolvedHealth | undefined;
  readonly isFailure: ((error: unknown) => boolean) | undefined;
  readonly isRetryable: ((error: unknown) => boolean) | undefined;
}

export interface ResolvedHttpOptions extends ResolvedDependencyOptions {
  readonly origin: string;
  readonly basePath: string;
  readonly connectTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly keepAliveTimeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** Names appear in error details, logs, metrics labels and headers: keep them short and plain. */
export function validateName(name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new TypeError(`dependency name must match ${NAME}, received ${JSON.stringify(name)}`);
  }
  return name;
}

/** Drops keys whose value is `undefined`, so they do not override a default when spread. */
export function defined<T extends object>(o: T | undefined): Partial<T> {
  if (o === undefined) return {};
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function resolveDependencyOptions(name: string, input: DependencyOptions = {}): ResolvedDependencyOptions {
  const p = (field: string): string => `${name}: ${field}`;
  const base = { ...DEPENDENCY_DEFAULTS, ...defined(input) };
  const timeoutMs = positiveMs(p('timeoutMs'), base.timeoutMs);
  const attemptTimeoutMs = positiveMs(p('attemptTimeoutMs'), input.attemptTimeoutMs ?? timeoutMs);
  if (attemptTimeoutMs > timeoutMs) {
    throw new RangeError(`${p('attemptTimeoutMs')} must be <= timeoutMs (${timeoutMs}), received ${attemptTimeoutMs}`);
  }
  const reserveMs = nonNegative(p('reserveMs'), base.reserveMs);
  const minAttemptMs = positiveMs(p('minAttemptMs'), base.minAttemptMs);
  if (minAttemptMs > attemptTimeoutMs) {
    throw new RangeError(
      `${p('minAttemptMs')} must be <= attemptTimeoutMs (${attemptTimeoutMs}), received ${minAttemptMs}`,
    );
  }

  const retry = { ...RETRY_DEFAULTS, ...defined(input.retry) };
  positiveInt(p('retry.maxAttempts'), retry.maxAttempts);
  if (retry.maxAttempts > 10)
    throw new RangeError(`${p('retry.maxAttempts')} must be <= 10, received ${retry.maxAttempts}`);
  nonNegative(p('retry.initialDelayMs'), retry.initialDelayMs);
  nonNegative(p('retry.maxDelayMs'), retry.maxDelayMs);
  numberWhere(p('retry.budgetRatio'), retry.budgetRatio, (v) => v >= 0 && v <= 1, 'in [0, 1]');
  nonNegativeInt(p('retry.budgetMinRetries'), retry.budgetMinRetries);
  positiveMs(p('retry.budgetWindowMs'), retry.budgetWindowMs);

  const b = { ...BREAKER_DEFAULTS, ...defined(input.breaker) };
  numberWhere(p('breaker.failureRatio'), b.failureRatio, (v) => v > 0 && v < 1, 'in (0, 1)');
  positiveMs(p('breaker.windowMs'), b.windowMs);
  positiveInt(p('breaker.minimumCalls'), b.minimumCalls);
  positiveMs(p('breaker.halfOpenAfterMs'), b.halfOpenAfterMs);
  const slowCallMs =
    b.slowCallMs === null ? Math.round(attemptTimeoutMs * 0.8) : nonNegative(p('breaker.slowCallMs'), b.slowCallMs);
  const breaker = { ...b, slowCallMs };

  const bulkhead = { ...BULKHEAD_DEFAULTS, ...defined(input.bulkhead) };
  positiveInt(p('bulkhead.maxConcurrent'), bulkhead.maxConcurrent);
  nonNegativeInt(p('bulkhead.maxQueue'), bulkhead.maxQueue);
  nonNegative(p('bulkhead.queueWaitMs'), bulkhead.queueWaitMs);

  let health: ResolvedHealth | undefined;
  if (input.health !== undefined) {
    const h = { ...HEALTH_DEFAULTS, ...defined(input.health) };
    positiveMs(p('health.intervalMs'), h.intervalMs);
    positiveMs(p('health.timeoutMs'), h.timeoutMs);
    if (h.timeoutMs >= h.intervalMs) {
      throw new RangeError(
        `${p('health.timeoutMs')} must be below intervalMs (${h.intervalMs}), received ${h.timeoutMs}`,
      );
    }
    if (h.path !== undefined && (typeof h.path !== 'string' || !h.path.startsWith('/'))) {
      throw new TypeError(`${p('health.path')} must start with '/', received ${JSON.stringify(h.path)}`);
    }
    health = {
      path: h.path,
      probe: optionalFunction(p('health.probe'), h.probe),
      intervalMs: h.intervalMs,
      timeoutMs: h.timeoutMs,
      critical: h.critical === true,
    };
  }

  return {
    timeoutMs,
    attemptTimeoutMs,
    reserveMs,
    minAttemptMs,
    retry,
    breaker,
    bulkhead,
    health,
    isFailure: optionalFunction(p('isFailure'), input.isFailure),
    isRetryable: optionalFunction(p('isRetryable'), input.isRetryable),
  };
}

export function resolveHttpOptions(name: string, input: HttpDependencyOptions): ResolvedHttpOptions {
  if (input === null || typeof input !== 'object') throw new TypeError(`${name}: options must be an object`);
  const base = resolveDependencyOptions(name, input);
  let url: URL;
  try {
    url = new URL(input.baseUrl);
  } catch {
    throw new TypeError(`${name}: baseUrl must be an absolute http(s) URL, received ${JSON.stringify(input.baseUrl)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`${name}: baseUrl must be http or https, received ${url.protocol}`);
  }
  const h = { ...HTTP_DEFAULTS, ...defined(input) };
  positiveMs(`${name}: connectTimeoutMs`, h.connectTimeoutMs);
  positiveInt(`${name}: maxResponseBytes`, h.maxResponseBytes);
  positiveMs(`${name}: keepAliveTimeoutMs`, h.keepAliveTimeoutMs);
  if (base.health !== undefined && base.health.path === undefined && base.health.probe === undefined) {
    throw new TypeError(`${name}: health needs a path or a probe`);
  }
  return {
    ...base,
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    connectTimeoutMs: Math.min(h.connectTimeoutMs, base.attemptTimeoutMs),
    maxResponseBytes: h.maxResponseBytes,
    keepAliveTimeoutMs: h.keepAliveTimeoutMs,
    headers: { ...input.headers },
  };
}
