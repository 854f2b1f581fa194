import { HangproofError, isHangproofError } from '../errors.js';

/** A 5xx answer, thrown inside an HTTP attempt so the retry and breaker logic see a failure. */
export class HttpStatusFailure extends Error {
  readonly statusCode: number;
  constructor(statusCode: number) {
    super(`dependency answered ${statusCode}`);
    this.name = 'HttpStatusFailure';
    this.statusCode = statusCode;
  }
}

/** A response body over `maxResponseBytes`: a failure, never retried. */
export class ResponseTooLargeError extends Error {
  constructor(limit: number) {
    super(`response body exceeds ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

/** What one failed attempt means. */
export interface AttemptFailure {
  /** What the caller gets if this is the last attempt. */
  readonly error: unknown;
  /** Counted by the breaker as the dependency failing. */
  readonly counts: boolean;
  /** May be retried (idempotent calls only, within budgets). */
  readonly retryable: boolean;
}

/** The dependency did not answer in time (socket-level timeouts included). */
const TIMEOUT_CODES = new Set([
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'DEPENDENCY_TIMEOUT',
  'REQUEST_TIMEOUT',
]);

/** Transport failures after which a fresh try may well succeed. */
const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** 502/503/504 say "not now"; other 5xx are answers that will not change on a retry. */
const RETRYABLE_STATUS = new Set([502, 503, 504]);

const REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection_refused',
  ECONNRESET: 'connection_reset',
  UND_ERR_SOCKET: 'connection_reset',
  EPIPE: 'connection_reset',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
};

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const cause = (err as { cause?: unknown } | null)?.cause;
  const causeCode = (cause as { code?: unknown } | null)?.code;
  return typeof causeCode === 'string' ? causeCode : undefined;
}

export function dependencyTimeout(dependency: string, cause?: unknown): HangproofError {
  return new HangproofError('DEPENDENCY_TIMEOUT', {
    message: `dependency '${dependency}' did not answer in time`,
    details: { dependency },
    ...(cause === undefined ? {} : { cause }),
  });
}

export function dependencyUnavailable(
  dependency: string,
  reason: string,
  extra: { cause?: unknown; retryAfterSec?: number } = {},
): HangproofError {
  return new HangproofError('DEPENDENCY_UNAVAILABLE', {
    message: `dependency '${dependency}' is unavailable (${reason.replaceAll('_', ' ')})`,
    details: { dependency, reason },
    ...(extra.cause === undefined ? {} : { cause: extra.cause }),
    ...(extra.retryAfterSec === undefined ? {} : { retryAfterSec: extra.retryAfterSec }),
  });
}

export interface ClassifyOptions {
  readonly isFailure: ((error: unknown) => boolean) | undefined;
  readonly isRetryable: ((error: unknown) => boolean) | undefined;
}

/**
 * Turns whatever an attempt threw into the caller-facing error and the retry/breaker verdict.
 * Called only when the caller's own signal has not aborted (that case is the caller's reason).
 */
export function classifyFailure(
  dependency: string,
  raw: unknown,
  attemptTimedOut: boolean,
  options: ClassifyOptions,
): AttemptFailure {
  if (attemptTimedOut) return { error: dependencyTimeout(dependency), counts: true, retryable: true };
  if (raw instanceof HttpStatusFailure) {
    return {
      error: dependencyUnavailable(dependency, `status_${raw.statusCode}`),
      counts: true,
      retryable: RETRYABLE_STATUS.has(raw.statusCode),
    };
  }
  if (raw instanceof ResponseTooLargeError) {
    return {
      error: dependencyUnavailable(dependency, 'response_too_large', { cause: raw }),
      counts: true,
      retryable: false,
    };
  }
  if (options.isFailure !== undefined && !isHangproofError(raw) && !options.isFailure(raw)) {
    return { error: raw, counts: false, retryable: false };
  }
  const code = errorCode(raw);
  const retryable =
    options.isRetryable !== undefined
      ? options.isRetryable(raw)
      : code !== undefined && (RETRYABLE_NETWORK_CODES.has(code) || TIMEOUT_CODES.has(code));
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return { error: dependencyTimeout(dependency, raw), counts: true, retryable };
  }
  const reason = (code !== undefined ? REASONS[code] : undefined) ?? 'error';
  return { error: dependencyUnavailable(dependency, reason, { cause: raw }), counts: true, retryable };
}
