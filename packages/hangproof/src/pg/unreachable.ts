import type { HangproofError } from '../errors.js';
import { LOG_EVENTS } from '../log-events.js';
import { sqlState } from './pg-errors.js';

/**
 * Stable `event` of every log line that says Postgres could not be reached, as opposed to a query
 * that ran slowly: the report ranks it above the per-query symptoms it causes.
 */
export const PG_UNAVAILABLE_EVENT = LOG_EVENTS.pgUnavailable;

/**
 * Why Postgres counts as unreachable. `too_many_connections` (53300) is a server that is up but
 * has no connection slot left for this role, database or server: a connection storm of other
 * clients, not a network or a restart.
 */
export type UnreachableReason = 'connect_timeout' | 'refused' | 'no_answer' | 'too_many_connections';

/** The reason of a refused or dropped connection: out of slots (53300), or refused. */
export function refusalReason(err: unknown): 'refused' | 'too_many_connections' {
  return sqlState(err) === '53300' ? 'too_many_connections' : 'refused';
}

/** Where the pool connects: host name and port, as log lines name them. */
export interface PgEndpoint {
  readonly hostname: string;
  readonly port: number;
}

/** The host and port of a connection string (5432 when the URL names none). */
export function endpointOf(connectionString: string): PgEndpoint {
  const url = new URL(connectionString);
  return { hostname: url.hostname, port: Number(url.port || '5432') };
}

/**
 * Tells "unreachable" from "slow" for a failure the guard already classified:
 * - DEPENDENCY_UNAVAILABLE: the connection was refused, dropped or shut down (or refused for
 *   want of a slot, 53300);
 * - a connect-phase timeout: the handshake never completed;
 * - a query-phase timeout whose cause carries no SQLSTATE: the client gave up because the server
 *   never answered at all (a slow statement is stopped by the server's own statement_timeout,
 *   57014, which is an answer; a request with no time left has no cause).
 * Anything else (57014, a lock, an acquire wait) is slowness, and undefined is returned.
 */
export function unreachableReason(err: HangproofError): UnreachableReason | undefined {
  if (err.code === 'DEPENDENCY_UNAVAILABLE') return refusalReason(err.cause);
  if (err.code !== 'DEPENDENCY_TIMEOUT') return undefined;
  if (err.details.phase === 'connect') return 'connect_timeout';
  if (err.details.phase === 'query' && err.cause !== undefined && sqlState(err.cause) === undefined) return 'no_answer';
  return undefined;
}

/** The fields a log line adds when `reason` is set: the event, the host and the port. */
export function unreachableFields(
  endpoint: PgEndpoint,
  reason: UnreachableReason | undefined,
): Record<string, string | number> {
  if (reason === undefined) return {};
  return { event: PG_UNAVAILABLE_EVENT, reason, hostname: endpoint.hostname, port: endpoint.port };
}
