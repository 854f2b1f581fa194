import { HangproofError, isHangproofError } from '../errors.js';

/** Where a Postgres failure happened, as clients see it in `details.phase`. */
export type PgPhase = 'connect' | 'acquire' | 'query' | 'lock' | 'transaction';

/** A DEPENDENCY_TIMEOUT for Postgres; the message is client-safe, `cause` keeps the original. */
export function pgTimeout(phase: PgPhase, message: string, waitedMs: number, cause?: unknown): HangproofError {
  return new HangproofError('DEPENDENCY_TIMEOUT', {
    message,
    details: { dependency: 'postgres', phase, waitedMs: Math.round(waitedMs) },
    cause,
  });
}

/** A DEPENDENCY_UNAVAILABLE for Postgres: refused, dropped or shut-down connections. */
export function pgUnavailable(phase: PgPhase, cause: unknown): HangproofError {
  return new HangproofError('DEPENDENCY_UNAVAILABLE', {
    message: 'postgres is unavailable',
    details: { dependency: 'postgres', phase },
    cause,
  });
}

/** The SQLSTATE of a server error, if `err` is one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * pg reports a lost connection with plain Errors told apart only by their text (client.js), so
 * those few messages are matched here, once, instead of all over the guard.
 */
const CONNECTION_MESSAGES = [
  'Connection terminated',
  'not queryable',
  'timeout expired',
  'The server does not support SSL',
  'Client was closed',
];

/** True when `err` means the connection is gone or could not be made (not a query failure). */
export function isConnectionError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  const state = sqlState(err);
  if (state !== undefined) {
    // 08 connection exceptions, 57P01-57P03 shutdown/crash/cannot connect now, 53300 too many connections.
    return state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03' || state === '53300';
  }
  const message = (err as { message?: unknown }).message;
  return typeof message === 'string' && CONNECTION_MESSAGES.some((m) => message.includes(m));
}

/** pg-pool's two timeout texts: a new connection too slow, and (unused behind the gate) a pool wait. */
export const POOL_CONNECT_TIMEOUT_MESSAGE = 'Connection terminated due to connection timeout';
export const POOL_WAIT_TIMEOUT_MESSAGE = 'timeout exceeded when trying to connect';

/** 40001 serialization_failure and 40P01 deadlock_detected: the transaction may simply be run again. */
export function isRetryableTxError(err: unknown): boolean {
  // Also when already wrapped as CONFLICT by the query that saw it.
  const state = sqlState(err) ?? sqlState((err as { cause?: unknown } | null)?.cause);
  return state === '40001' || state === '40P01';
}

/** A serialization failure or deadlock (40001/40P01) as CONFLICT: the client may retry. */
export function conflict(err: unknown): HangproofError {
  if (isHangproofError(err) && err.code === 'CONFLICT') return err;
  return new HangproofError('CONFLICT', {
    message: 'the transaction conflicted with a concurrent one; retry the request',
    details: { dependency: 'postgres', sqlState: sqlState(err) ?? null },
    cause: err,
  });
}
