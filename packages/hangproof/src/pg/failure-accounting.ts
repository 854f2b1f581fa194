import { logEvidence } from '../core/index.js';
import { type HangproofError, isHangproofError } from '../errors.js';
import { LOG_MESSAGES } from '../log-events.js';
import type { ParamRedactor } from './database-options.js';
import type { LockEvidence } from './lock-evidence.js';
import type { PgLogger } from './logger.js';
import { conflict, isRetryableTxError, type PgPhase } from './pg-errors.js';
import { errorSummary } from './redact-params.js';
import { isOwnAbort, type Scope } from './scope.js';
import { type PgEndpoint, unreachableFields, unreachableReason } from './unreachable.js';

/** The pool's failure counters, as `stats()` reports them. */
export interface FailureCounters {
  readonly timeouts: Record<PgPhase, number>;
  unavailable: number;
  cancelsSent: number;
  cancelsConfirmed: number;
  discarded: number;
}

export interface FailureAccountingOptions {
  readonly pool: string;
  /** host:port, as the log lines name it. */
  readonly host: string;
  /** Host name and port for the LOG_EVENTS.pgUnavailable lines (see unreachable.ts). */
  readonly endpoint: PgEndpoint;
  readonly logger: PgLogger;
  readonly redactParams: ParamRedactor;
  /** Told of each lock timeout, to look up what the statement waited for (off the request path). */
  readonly lockEvidence: LockEvidence | undefined;
}

/**
 * Counts and logs a pool's failures once each: timeouts per phase, unavailability, cancels sent
 * and confirmed, connections discarded. The leasing side counts what it logs itself (acquire and
 * connect timeouts); `account` covers what a statement met.
 */
export class FailureAccounting {
  readonly counters: FailureCounters = {
    timeouts: { connect: 0, acquire: 0, query: 0, lock: 0, transaction: 0 },
    unavailable: 0,
    cancelsSent: 0,
    cancelsConfirmed: 0,
    discarded: 0,
  };
  readonly #o: FailureAccountingOptions;
  /** Errors already counted and logged, so a failure seen by a query and its transaction logs once. */
  readonly #accounted = new WeakSet<object>();

  constructor(options: FailureAccountingOptions) {
    this.#o = options;
  }

  /**
   * Counts and logs a failure with full (redacted) detail and returns what the caller gets: the
   * request's own abort reason as is, hangproof errors as is, 40001/40P01 as CONFLICT, anything
   * else (a constraint violation, a syntax error) as pg's error with bound values scrubbed.
   */
  account(
    err: unknown,
    scope: Scope,
    fp: string | undefined,
    params: readonly unknown[] | undefined,
    pid?: number,
  ): unknown {
    if (isOwnAbort(scope, err)) return err;
    if (isRetryableTxError(err)) return conflict(err);
    if (!isHangproofError(err) || this.#accounted.has(err)) return err;
    this.#accounted.add(err);
    const phase = err.details.phase as PgPhase | undefined;
    const alreadyLogged = phase === 'acquire' || phase === 'connect';
    if (!alreadyLogged && phase !== undefined) this.#logStatementFailure(err, phase, scope, fp, params, pid);
    return err;
  }

  #logStatementFailure(
    err: HangproofError,
    phase: PgPhase,
    scope: Scope,
    fp: string | undefined,
    params: readonly unknown[] | undefined,
    pid: number | undefined,
  ): void {
    const o = this.#o;
    if (err.code === 'DEPENDENCY_TIMEOUT') this.counters.timeouts[phase]++;
    else if (err.code === 'DEPENDENCY_UNAVAILABLE') this.counters.unavailable++;
    logEvidence(
      o.logger,
      'warn',
      {
        pool: o.pool,
        host: o.host,
        ...unreachableFields(o.endpoint, unreachableReason(err)),
        code: err.code,
        phase,
        requestId: scope.ctx?.requestId,
        route: scope.ctx?.name,
        step: scope.ctx?.stepInFlight,
        sql: fp,
        params: params === undefined ? undefined : o.redactParams(params, fp ?? ''),
        waitedMs: err.details.waitedMs,
        cause: errorSummary(err.cause, params),
      },
      LOG_MESSAGES.statementFailed,
    );
    // What it waited for, from Postgres itself, off the request path (see LockEvidence).
    if (phase === 'lock') {
      o.lockEvidence?.onLockTimeout(pid, { route: scope.ctx?.name, requestId: scope.ctx?.requestId, sql: fp });
    }
  }
}
