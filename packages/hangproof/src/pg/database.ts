import type pg from 'pg';
import { budgetUntil, currentContext, type LatencySummary, raceAbort, sleep, watchSignal } from '../core/index.js';
import { ConnectionLeases, type Lease } from './connection-leases.js';
import type {
  Database,
  DatabaseStats,
  QueryOptions,
  QueryResult,
  Row,
  Transaction,
  TxOptions,
} from './database-api.js';
import { type DatabaseOptions, type ResolvedDatabaseOptions, resolveDatabaseOptions } from './database-options.js';
import { FailureAccounting } from './failure-accounting.js';
import { shapeOf } from './fingerprint.js';
import { HolderRegistry } from './holder-registry.js';
import { isSingleStatement } from './limited-query.js';
import { LockEvidence } from './lock-evidence.js';
import { defaultPgLogger, type PgLogger } from './logger.js';
import { conflict, isRetryableTxError, type PgPhase, pgTimeout } from './pg-errors.js';
import { PlanEvidence } from './plan-evidence.js';
import { QueryAccounting } from './query-accounting.js';
import { trackRawCheckouts } from './raw-checkouts.js';
import { redactParams } from './redact-params.js';
import { type Scope, signalOf } from './scope.js';
import { TransactionLimits } from './transaction-limits.js';
import { endpointOf } from './unreachable.js';

/** Creates the guarded pool. Validates options at once (TypeError/RangeError naming the value). */
export function createDatabase(options: DatabaseOptions): Database {
  return new GuardedDatabase(resolveDatabaseOptions(options));
}

const CLOSE_TIMEOUT_MS = 5_000;
const NO_QUERY_OPTIONS: QueryOptions = Object.freeze({});

class GuardedDatabase implements Database {
  readonly #o: ResolvedDatabaseOptions;
  readonly #leases: ConnectionLeases;
  readonly #failures: FailureAccounting;
  readonly #holders: HolderRegistry;
  readonly #accounting: QueryAccounting;
  readonly #lockEvidence: LockEvidence | undefined;
  readonly #planEvidence: PlanEvidence | undefined;
  readonly #logger: PgLogger;
  readonly #limits: TransactionLimits;
  #retriedTransactions = 0;
  #rawPool: pg.Pool | undefined;

  constructor(o: ResolvedDatabaseOptions) {
    this.#o = o;
    this.#logger = o.logger ?? defaultPgLogger();
    this.#limits = new TransactionLimits(o);
    const url = new URL(o.connectionString);
    const host = `${url.hostname}:${url.port || '5432'}`;
    const endpoint = endpointOf(o.connectionString);
    this.#holders = new HolderRegistry(o.name, o.leakDetectionMs, this.#logger);
    this.#lockEvidence =
      o.lockEvidence === false
        ? undefined
        : new LockEvidence({
            pool: o.name,
            connectionString: o.connectionString,
            ssl: o.ssl,
            applicationName: o.applicationName,
            lockTimeoutMs: o.lockTimeoutMs,
            logger: this.#logger,
            holders: () => this.#holders.list(),
            options: o.lockEvidence,
          });
    this.#planEvidence =
      o.planEvidence === false
        ? undefined
        : new PlanEvidence({
            pool: o.name,
            connectionString: o.connectionString,
            ssl: o.ssl,
            applicationName: o.applicationName,
            logger: this.#logger,
            options: o.planEvidence,
          });
    this.#failures = new FailureAccounting({
      pool: o.name,
      host,
      endpoint,
      logger: this.#logger,
      redactParams: o.redactParams ?? redactParams,
      lockEvidence: this.#lockEvidence,
    });
    this.#leases = new ConnectionLeases({
      o,
      lockTimeoutMs: this.#limits.lockMs(o.statementTimeoutMs),
      logger: this.#logger,
      host,
      endpoint,
      holders: this.#holders,
      failures: this.#failures,
    });
    const plans = this.#planEvidence;
    this.#accounting = new QueryAccounting({
      pool: o.name,
      serverAddress: endpoint.hostname,
      serverPort: endpoint.port,
      slowQueryMs: o.slowQueryMs,
      nPlusOneThreshold: o.nPlusOneThreshold,
      redactParams: o.redactParams ?? redactParams,
      logger: this.#logger,
      onSlow: plans === undefined ? undefined : (...slow) => plans.onSlow(...slow),
    });
  }

  get dangerouslyRawPool(): pg.Pool {
    this.#rawPool ??= trackRawCheckouts(
      this.#leases.pool,
      () => this.#leases.rawConnect(this.#scope()),
      this.#holders,
      this.#o.captureAcquireStacks,
    );
    return this.#rawPool;
  }

  query<R extends Row = Row>(
    sql: string,
    params?: readonly unknown[],
    options: QueryOptions = NO_QUERY_OPTIONS,
  ): Promise<QueryResult<R>> {
    if (options.outsideTransaction === true || !isSingleStatement(sql)) return this.#queryInSteps(sql, params, options);
    // The common case, callback-style: one promise per query. An async function here would add
    // its frame and a promise per await (each also running AsyncLocalStorage's hooks on Node 20).
    return new Promise<QueryResult<R>>((resolve, reject) => {
      const scope = this.#scope();
      const shape = shapeOf(sql);
      const started = performance.now();
      const runs = this.#accounting.start(scope.ctx, shape);
      let lease: Lease | undefined;
      const finish = (err: unknown, result?: pg.QueryResult): void => {
        const ended = performance.now();
        let failure: unknown;
        try {
          if (err !== null) failure = this.#failures.account(err, scope, shape.fingerprint, params, lease?.pid);
          const rows = failure === undefined ? rowCountOf(result as pg.QueryResult) : 0;
          this.#accounting.end(scope.ctx, shape, runs, started, ended, rows, failure, lease?.waitMs ?? 0, params, sql);
        } catch (unexpected) {
          failure ??= unexpected;
        } finally {
          // Whatever happened above, the connection goes back (or is destroyed) exactly once.
          if (lease !== undefined) this.#leases.finish(lease, failure !== undefined, ended);
        }
        if (failure === undefined) resolve(result as QueryResult<R>);
        else reject(failure);
      };
      this.#leases.acquireWith(
        scope,
        (err, acquired) => {
          if (acquired === undefined) {
            finish(err);
            return;
          }
          lease = acquired;
          // The lease's own time is the statement's start: one clock read for both.
          const leasedAt = acquired.since;
          let limitMs: number;
          try {
            limitMs = this.#statementBudget(scope, 'query', leasedAt);
          } catch (spent) {
            finish(spent);
            return;
          }
          if (this.#o.statementLimits === 'when-shorter' && limitMs >= this.#o.statementTimeoutMs) {
            // The session's own limits (set when the connection opened) are the ones this statement
            // needs: no set_config for Postgres to parse, plan and answer.
            acquired.runWith(sql, params, limitMs, scope.abort, finish, leasedAt);
          } else {
            // Shorter limits and the statement in one implicit transaction, one round trip.
            acquired.runLimitedWith(
              this.#limits.statement(scope.ctx, limitMs),
              sql,
              params,
              limitMs,
              scope.abort,
              finish,
              leasedAt,
            );
          }
        },
        started,
      );
    });
  }

  /** A statement outside the implicit transaction, or several statements in one string. */
  async #queryInSteps<R extends Row>(
    sql: string,
    params: readonly unknown[] | undefined,
    options: QueryOptions,
  ): Promise<QueryResult<R>> {
    const scope = this.#scope();
    const shape = shapeOf(sql);
    const started = performance.now();
    const runs = this.#accounting.start(scope.ctx, shape);
    let lease: Lease | undefined;
    let failure: unknown;
    let rows = 0;
    try {
      lease = await this.#leases.acquire(scope);
      const conn = lease;
      let result: pg.QueryResult;
      if (options.outsideTransaction === true) {
        result = await conn.run(sql, params, this.#statementBudget(scope, 'query'), scope.abort);
      } else {
        // Several statements in one string cannot be Parsed as one: BEGIN with the limits, the
        // statements (simple protocol), COMMIT; three round trips.
        await conn.run(this.#beginSql(scope, {}), undefined, this.#statementBudget(scope, 'query'), scope.abort);
        result = await conn.run(sql, params, this.#statementBudget(scope, 'query'), scope.abort);
        await conn.run('COMMIT', undefined, this.#statementBudget(scope, 'query'), scope.abort);
      }
      rows = rowCountOf(result);
      return result as QueryResult<R>;
    } catch (err) {
      failure = this.#failures.account(err, scope, shape.fingerprint, params, lease?.pid);
      throw failure;
    } finally {
      this.#accounting.end(
        scope.ctx,
        shape,
        runs,
        started,
        performance.now(),
        rows,
        failure,
        lease?.waitMs ?? 0,
        params,
        sql,
      );
      if (lease !== undefined) this.#leases.finish(lease, failure !== undefined);
    }
  }

  async tx<T>(fn: (t: Transaction) => Promise<T>, options: TxOptions = {}): Promise<T> {
    const scope = this.#scope();
    for (let attempt = 1; ; attempt++) {
      let lease: Lease | undefined;
      let open = true;
      let failed = true;
      try {
        lease = await this.#leases.acquire(scope);
        const conn = lease;
        await conn.run(this.#beginSql(scope, options), undefined, this.#statementBudget(scope, 'query'), scope.abort);
        const handle: Transaction = {
          query: async <R extends Row = Row>(sql: string, params?: readonly unknown[]) => {
            if (!open) throw new Error('this transaction has already ended; run queries inside its callback');
            const shape = shapeOf(sql);
            const started = performance.now();
            const runs = this.#accounting.start(scope.ctx, shape);
            let rows = 0;
            let error: unknown;
            try {
              const result = await conn.run(sql, params, this.#statementBudget(scope, 'query'), scope.abort);
              rows = rowCountOf(result);
              return result as QueryResult<R>;
            } catch (err) {
              error = this.#failures.account(err, scope, shape.fingerprint, params, conn.pid);
              throw error;
            } finally {
              this.#accounting.end(scope.ctx, shape, runs, started, performance.now(), rows, error, 0, params, sql);
            }
          },
        };
        // The body may ignore the signal (a CPU loop, an unguarded await): the transaction still
        // ends at the deadline, and its connection is rolled back or destroyed behind it.
        const result = await raceAbort(fn(handle), signalOf(scope));
        open = false;
        await conn.run('COMMIT', undefined, this.#statementBudget(scope, 'query'), scope.abort);
        failed = false;
        return result;
      } catch (err) {
        open = false;
        const retry =
          options.retryable === true &&
          isRetryableTxError(err) &&
          attempt < this.#o.maxTxAttempts &&
          (await this.#backoff(scope, attempt));
        if (retry) {
          this.#retriedTransactions++;
          continue;
        }
        throw isRetryableTxError(err) ? conflict(err) : this.#failures.account(err, scope, undefined, undefined);
      } finally {
        open = false;
        if (lease !== undefined) this.#leases.finish(lease, failed);
      }
    }
  }

  stats(): DatabaseStats {
    const c = this.#failures.counters;
    const pool = this.#leases.pool;
    return {
      pool: this.#o.name,
      max: this.#o.max,
      total: pool.totalCount,
      idle: this.#leases.idleCount,
      inUse: this.#leases.held,
      waiting: this.#leases.waiting,
      acquireWaitMs: acquireWaits(this.#leases.waits.summary()),
      timeouts: { ...c.timeouts },
      unavailable: c.unavailable,
      cancelsSent: c.cancelsSent,
      cancelsConfirmed: c.cancelsConfirmed,
      discarded: c.discarded,
      queries: this.#accounting.queries,
      slowQueries: this.#accounting.slowQueries,
      nPlusOneDetected: this.#accounting.nPlusOneDetected,
      leaksDetected: this.#holders.leaksDetected,
      retriedTransactions: this.#retriedTransactions,
      holders: this.#holders.list(),
      lockWaits: this.#lockEvidence?.stats() ?? NO_LOCK_WAITS,
      plans: this.#planEvidence?.stats() ?? NO_PLANS,
    };
  }

  async readinessCheck(signal?: AbortSignal): Promise<void> {
    const scope: Scope = {
      ctx: undefined,
      abort: watchSignal(signal),
      signal,
      deadlineAt: performance.now() + this.#o.readinessTimeoutMs + this.#o.reserveMs,
    };
    let lease: Lease | undefined;
    let failed = true;
    try {
      lease = await this.#leases.acquire(scope);
      await lease.run('SELECT 1', undefined, this.#statementBudget(scope, 'query'), scope.abort);
      failed = false;
    } catch (err) {
      throw this.#failures.account(err, scope, 'SELECT ?', undefined);
    } finally {
      if (lease !== undefined) this.#leases.finish(lease, failed);
    }
  }

  async close(): Promise<void> {
    this.#leases.close();
    this.#holders.close();
    this.#lockEvidence?.close();
    this.#planEvidence?.close();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), CLOSE_TIMEOUT_MS);
    });
    const outcome = await Promise.race([this.#leases.pool.end().then(() => 'ended' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.#logger.warn(
        { pool: this.#o.name, holders: this.#holders.list() },
        `postgres pool did not close within ${CLOSE_TIMEOUT_MS} ms: connections still checked out`,
      );
    }
  }

  // ---------------------------------------------------------------------------------------------

  #scope(): Scope {
    const ctx = currentContext();
    return { ctx, abort: ctx, deadlineAt: ctx?.deadlineAt ?? Number.POSITIVE_INFINITY };
  }

  /** min(limit, remaining - reserve), from `now` when the caller has read the clock already. */
  #budget(scope: Scope, limitMs: number, now?: number): number {
    return budgetUntil(scope.deadlineAt, limitMs, this.#o.reserveMs, now);
  }

  /** The statement limit now (or at `now`); throws when no usable time is left. */
  #statementBudget(scope: Scope, phase: PgPhase, now?: number): number {
    const ms = this.#budget(scope, this.#o.statementTimeoutMs, now);
    if (ms >= 1) return Math.floor(ms);
    if (scope.abort?.aborted) throw scope.abort.abortReason;
    throw pgTimeout(phase, 'no time was left in the request for the postgres statement', 0);
  }

  /** `BEGIN` plus the transaction's limits; the statement limit is what is left of the budget. */
  #beginSql(scope: Scope, options: TxOptions): string {
    return this.#limits.begin(scope.ctx, this.#statementBudget(scope, 'query'), options);
  }

  /** Jittered exponential backoff before a retry; false when it would not fit in the budget. */
  async #backoff(scope: Scope, attempt: number): Promise<boolean> {
    const waitMs = Math.random() * this.#o.txRetryBaseMs * 2 ** (attempt - 1);
    if (this.#budget(scope, Number.POSITIVE_INFINITY) < waitMs + 1) return false;
    try {
      await sleep(waitMs, signalOf(scope));
      return true;
    } catch {
      return false;
    }
  }
}

const NO_LOCK_WAITS = Object.freeze({
  captured: 0,
  lockTimeouts: 0,
  failed: 0,
  skipped: 0,
  connectionsOpened: 0,
  recent: [],
});
const NO_PLANS = Object.freeze({ captured: 0, failed: 0, skipped: 0, connectionsOpened: 0, recent: [] });

/** Rows of a result; a string of several statements gives pg's array of results. */
function rowCountOf(result: pg.QueryResult | pg.QueryResult[]): number {
  if (Array.isArray(result)) return result.reduce((n, r) => n + rowCountOf(r), 0);
  return result.rowCount ?? result.rows.length;
}

/** The pool's acquire-wait figures: zeros, not nulls, before the first acquire. */
function acquireWaits(s: LatencySummary): DatabaseStats['acquireWaitMs'] {
  return { p50: s.p50 ?? 0, p95: s.p95 ?? 0, p99: s.p99 ?? 0, max: s.max ?? 0, samples: s.count };
}
