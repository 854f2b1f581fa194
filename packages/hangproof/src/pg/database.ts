import pg from 'pg';
import {
  type AbortWatch,
  channels,
  currentContext,
  LatencyReservoir,
  type LatencySummary,
  publish,
  type RequestContext,
  raceAbort,
  sleep,
  watchSignal,
} from '../core/index.js';
import { type HangproofError, isHangproofError } from '../errors.js';
import { LOG_MESSAGES } from '../log-events.js';
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
import { fingerprint } from './fingerprint.js';
import { destroyClient, GuardedConnection, type GuardOptions } from './guarded-connection.js';
import { HolderRegistry } from './holder-registry.js';
import { isSingleStatement } from './limited-query.js';
import { defaultPgLogger, type PgLogger } from './logger.js';
import {
  conflict,
  isConnectionError,
  isRetryableTxError,
  type PgPhase,
  POOL_CONNECT_TIMEOUT_MESSAGE,
  POOL_WAIT_TIMEOUT_MESSAGE,
  pgTimeout,
  pgUnavailable,
} from './pg-errors.js';
import { BUDGET_SPENT, connectWithin } from './pool-connect.js';
import { GateRefusedError, PoolGate } from './pool-gate.js';
import { QueryAccounting } from './query-accounting.js';
import { errorSummary, redactParams } from './redact-params.js';
import { TransactionLimits } from './transaction-limits.js';

/** Creates the guarded pool. Validates options at once (TypeError/RangeError naming the value). */
export function createDatabase(options: DatabaseOptions): Database {
  return new GuardedDatabase(resolveDatabaseOptions(options));
}

/** The time frame one operation runs in: the request's (or the readiness check's) deadline. */
interface Scope {
  readonly ctx: RequestContext | undefined;
  /** What aborts the operation: the request context itself, or an explicit signal. */
  readonly abort: AbortWatch | undefined;
  /** An explicit signal (readiness checks); a request's is built on demand, see signalOf. */
  readonly signal?: AbortSignal | undefined;
  /** performance.now() deadline; Infinity outside a request. */
  readonly deadlineAt: number;
}

interface Lease {
  readonly conn: GuardedConnection;
  readonly waitMs: number;
  /** Gives the connection back; a promise only when it has to be destroyed (after its cancel). */
  release(): Promise<void> | undefined;
}

const CLOSE_TIMEOUT_MS = 5_000;

/** Bound of the ROLLBACK that ends a failed transaction; it runs after the caller was answered. */
const ROLLBACK_TIMEOUT_MS = 1_000;

class GuardedDatabase implements Database {
  readonly #o: ResolvedDatabaseOptions;
  readonly #pool: pg.Pool;
  readonly #gate: PoolGate;
  readonly #holders: HolderRegistry;
  readonly #accounting: QueryAccounting;
  readonly #logger: PgLogger;
  readonly #waits = new LatencyReservoir(1024);
  /** When each pooled client was last given back, for the idle liveness check. */
  readonly #lastReleased = new WeakMap<pg.PoolClient, number>();
  #guardOptions: GuardOptions | undefined;
  readonly #limits: TransactionLimits;
  #closed = false;
  /** Errors already counted and logged, so a failure seen by a query and its transaction logs once. */
  readonly #accounted = new WeakSet<object>();
  readonly #host: string;
  readonly #counters = {
    timeouts: { connect: 0, acquire: 0, query: 0, lock: 0, transaction: 0 } as Record<PgPhase, number>,
    unavailable: 0,
    cancelsSent: 0,
    cancelsConfirmed: 0,
    discarded: 0,
    retriedTransactions: 0,
  };

  constructor(o: ResolvedDatabaseOptions) {
    this.#o = o;
    this.#logger = o.logger ?? defaultPgLogger();
    this.#limits = new TransactionLimits(o);
    const url = new URL(o.connectionString);
    this.#host = `${url.hostname}:${url.port || '5432'}`;
    this.#pool = new pg.Pool({
      connectionString: o.connectionString,
      ...(o.ssl === undefined ? {} : { ssl: o.ssl }),
      max: o.max,
      // Bounds the TCP/TLS/auth handshake of a new connection. pg-pool also uses it for its own
      // wait queue, which the gate keeps empty.
      connectionTimeoutMillis: o.connectTimeoutMs,
      idleTimeoutMillis: o.idleTimeoutMs,
      maxLifetimeSeconds: Math.ceil(o.maxLifetimeMs / 1000),
      // Finds dead idle peers (a restarted server behind a NAT) before a query is sent on them.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // Session defaults for direct connections and for `outsideTransaction` statements. The
      // per-transaction set_config values below are what counts (PgBouncer ignores these).
      application_name: o.applicationName,
      statement_timeout: o.statementTimeoutMs,
      lock_timeout: o.lockTimeoutMs,
      idle_in_transaction_session_timeout: o.idleInTransactionTimeoutMs,
    });
    // Without this listener an idle connection dropped by the server crashes the process.
    this.#pool.on('error', (err) => {
      // After close(), pg-pool has already let go of its connections while their Terminate is
      // still on the wire; a server shutting down right behind it is no news.
      const level = this.#closed ? 'debug' : 'warn';
      this.#logger[level](
        { pool: o.name, host: this.#host, err: errorSummary(err) },
        'idle postgres connection failed',
      );
    });
    // pg-pool listens for errors only while a client is idle; a checked-out client whose socket
    // dies would otherwise emit 'error' with no listener. The query in flight fails on its own.
    this.#pool.on('connect', (client) => {
      client.on('error', (err) =>
        this.#logger.debug({ pool: o.name, err: errorSummary(err) }, 'postgres connection error'),
      );
    });
    this.#gate = new PoolGate(o.max, o.maxWaiting);
    this.#holders = new HolderRegistry(o.name, o.leakDetectionMs, this.#logger);
    this.#accounting = new QueryAccounting({
      pool: o.name,
      slowQueryMs: o.slowQueryMs,
      nPlusOneThreshold: o.nPlusOneThreshold,
      redactParams: o.redactParams ?? redactParams,
      logger: this.#logger,
    });
  }

  get dangerouslyRawPool(): pg.Pool {
    return this.#pool;
  }

  async query<R extends Row = Row>(
    sql: string,
    params?: readonly unknown[],
    options: QueryOptions = {},
  ): Promise<QueryResult<R>> {
    const scope = this.#scope();
    const fp = fingerprint(sql);
    const ticket = this.#accounting.begin(scope.ctx, fp, params);
    let lease: Lease | undefined;
    let failure: unknown;
    let rows = 0;
    try {
      lease = await this.#acquire(scope);
      const { conn } = lease;
      let result: pg.QueryResult;
      if (options.outsideTransaction === true) {
        result = await conn.run(sql, params, this.#statementBudget(scope, 'query'), scope.abort);
      } else if (isSingleStatement(sql)) {
        // The limits and the statement in one implicit transaction, one round trip (LimitedQuery).
        const limitMs = this.#statementBudget(scope, 'query');
        result = await conn.runLimited(this.#limits.statement(scope.ctx, limitMs), sql, params, limitMs, scope.abort);
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
      failure = this.#account(err, scope, fp, params);
      throw failure;
    } finally {
      ticket.end({ rows, error: failure, ...(lease === undefined ? {} : { waitMs: lease.waitMs }) });
      if (lease !== undefined) this.#finish(lease, failure !== undefined);
    }
  }

  async tx<T>(fn: (t: Transaction) => Promise<T>, options: TxOptions = {}): Promise<T> {
    const scope = this.#scope();
    for (let attempt = 1; ; attempt++) {
      let lease: Lease | undefined;
      let open = true;
      let failed = true;
      try {
        lease = await this.#acquire(scope);
        const { conn } = lease;
        await conn.run(this.#beginSql(scope, options), undefined, this.#statementBudget(scope, 'query'), scope.abort);
        const handle: Transaction = {
          query: async <R extends Row = Row>(sql: string, params?: readonly unknown[]) => {
            if (!open) throw new Error('this transaction has already ended; run queries inside its callback');
            const fp = fingerprint(sql);
            const ticket = this.#accounting.begin(scope.ctx, fp, params);
            let rows = 0;
            let error: unknown;
            try {
              const result = await conn.run(sql, params, this.#statementBudget(scope, 'query'), scope.abort);
              rows = rowCountOf(result);
              return result as QueryResult<R>;
            } catch (err) {
              error = this.#account(err, scope, fp, params);
              throw error;
            } finally {
              ticket.end({ rows, error });
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
          this.#counters.retriedTransactions++;
          continue;
        }
        throw isRetryableTxError(err) ? conflict(err) : this.#account(err, scope, undefined, undefined);
      } finally {
        open = false;
        if (lease !== undefined) this.#finish(lease, failed);
      }
    }
  }

  stats(): DatabaseStats {
    const c = this.#counters;
    return {
      pool: this.#o.name,
      max: this.#o.max,
      total: this.#pool.totalCount,
      idle: this.#pool.idleCount,
      inUse: this.#gate.held,
      waiting: this.#gate.waiting,
      acquireWaitMs: acquireWaits(this.#waits.summary()),
      timeouts: { ...c.timeouts },
      unavailable: c.unavailable,
      cancelsSent: c.cancelsSent,
      cancelsConfirmed: c.cancelsConfirmed,
      discarded: c.discarded,
      queries: this.#accounting.queries,
      slowQueries: this.#accounting.slowQueries,
      nPlusOneDetected: this.#accounting.nPlusOneDetected,
      leaksDetected: this.#holders.leaksDetected,
      retriedTransactions: c.retriedTransactions,
      holders: this.#holders.list(),
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
      lease = await this.#acquire(scope);
      await lease.conn.run('SELECT 1', undefined, this.#statementBudget(scope, 'query'), scope.abort);
      failed = false;
    } catch (err) {
      throw this.#account(err, scope, 'SELECT ?', undefined);
    } finally {
      if (lease !== undefined) this.#finish(lease, failed);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#gate.close();
    this.#holders.close();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), CLOSE_TIMEOUT_MS);
    });
    const outcome = await Promise.race([this.#pool.end().then(() => 'ended' as const), timedOut]);
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

  /** min(limit, remaining - reserve). */
  #budget(scope: Scope, limitMs: number): number {
    return Math.min(limitMs, scope.deadlineAt - performance.now() - this.#o.reserveMs);
  }

  /** The statement limit now; throws when no usable time is left. */
  #statementBudget(scope: Scope, phase: PgPhase): number {
    const ms = this.#budget(scope, this.#o.statementTimeoutMs);
    if (ms >= 1) return Math.floor(ms);
    if (scope.abort?.aborted) throw scope.abort.abortReason;
    throw pgTimeout(phase, 'no time was left in the request for the postgres statement', 0);
  }

  /** `BEGIN` plus the transaction's limits; the statement limit is what is left of the budget. */
  #beginSql(scope: Scope, options: TxOptions): string {
    return this.#limits.begin(scope.ctx, this.#statementBudget(scope, 'query'), options);
  }

  /** Takes a permit, then a live connection, within min(acquireTimeoutMs, remaining budget). */
  async #acquire(scope: Scope): Promise<Lease> {
    const started = performance.now();
    const waitBudget = this.#budget(scope, this.#o.acquireTimeoutMs);
    let releasePermit = this.#gate.tryAcquire();
    try {
      releasePermit ??= await this.#gate.acquire(Math.floor(waitBudget), scope.abort);
    } catch (err) {
      const waited = performance.now() - started;
      publish(channels.poolAcquire, () => ({ pool: this.#o.name, waitMs: waited, ok: false }));
      if (err instanceof GateRefusedError) throw this.#acquireTimeout(scope, err, waited);
      throw err;
    }
    let client: pg.PoolClient;
    try {
      client = await this.#checkout(scope, started, releasePermit);
    } catch (err) {
      publish(channels.poolAcquire, () => ({ pool: this.#o.name, waitMs: performance.now() - started, ok: false }));
      throw err;
    }
    const waitMs = performance.now() - started;
    this.#waits.add(waitMs);
    publish(channels.poolAcquire, () => ({ pool: this.#o.name, waitMs, ok: true }));
    const conn = this.#guard(client);
    const holder = this.#holders.add({
      requestId: scope.ctx?.requestId,
      route: scope.ctx?.name,
      step: scope.ctx?.stepInFlight,
      since: performance.now(),
      stack: this.#o.captureAcquireStacks ? new Error('acquired here').stack : undefined,
      pid: conn.pid,
    });
    let released = false;
    return {
      conn,
      waitMs,
      release: () => {
        if (released) return undefined;
        released = true;
        this.#holders.remove(holder);
        const done = (): void => {
          this.#lastReleased.set(client, performance.now());
          (releasePermit as () => void)();
        };
        let destroying: Promise<void> | undefined;
        try {
          if (!conn.usable || conn.inTransaction) this.#counters.discarded++;
          destroying = conn.release();
        } finally {
          if (destroying === undefined) done();
        }
        return destroying?.finally(done);
      },
    };
  }

  /**
   * Gets a live client from pg's pool while holding a permit. A new connection that fails to open
   * is tried once more (opening is side-effect free) if the budget allows; an idle connection
   * older than `pingIdleAfterMs` is checked first, and a dead one replaced. When the budget runs
   * out while pg is still connecting, the permit stays taken until that attempt settles, so the
   * pool never opens more than `max` connections.
   */
  async #checkout(scope: Scope, started: number, releasePermit: () => void): Promise<pg.PoolClient> {
    let connectFailures = 0;
    for (let attempt = 0; attempt <= this.#o.max + 1; attempt++) {
      const fresh = this.#pool.idleCount === 0;
      const phase: PgPhase = fresh ? 'connect' : 'acquire';
      const limit = this.#budget(scope, fresh ? this.#o.connectTimeoutMs : this.#o.acquireTimeoutMs);
      if (limit < 1) {
        releasePermit();
        if (scope.abort?.aborted) throw scope.abort.abortReason;
        throw this.#phaseTimeout(scope, phase, performance.now() - started, undefined);
      }
      let client: pg.PoolClient;
      try {
        client = await connectWithin(this.#pool, limit, scope.abort, releasePermit);
      } catch (err) {
        if (err === BUDGET_SPENT) throw this.#phaseTimeout(scope, phase, performance.now() - started, undefined);
        if (isOwnAbort(scope, err)) throw err;
        connectFailures++;
        const timedOut = err instanceof Error && err.message === POOL_CONNECT_TIMEOUT_MESSAGE;
        if (connectFailures === 1 && (timedOut || isConnectionError(err)) && this.#budget(scope, 1) >= 1) {
          this.#logger.warn(
            { pool: this.#o.name, host: this.#host, err: errorSummary(err) },
            'opening a postgres connection failed; retrying once',
          );
          continue;
        }
        releasePermit();
        if (timedOut) throw this.#phaseTimeout(scope, 'connect', performance.now() - started, err);
        if (isConnectionError(err)) {
          this.#counters.unavailable++;
          this.#logger.error(
            { pool: this.#o.name, host: this.#host, phase: 'connect', err: errorSummary(err) },
            LOG_MESSAGES.connectionRefused,
          );
          throw pgUnavailable('connect', err);
        }
        throw err;
      }
      const lastUsed = this.#lastReleased.get(client);
      if (fresh || lastUsed === undefined || performance.now() - lastUsed < this.#o.pingIdleAfterMs) return client;
      if (await this.#ping(client, scope)) return client;
    }
    releasePermit();
    throw pgUnavailable('acquire', new Error('no live connection after checking every idle one'));
  }

  /** `SELECT 1` on a connection that sat idle; a failure destroys it (no cancel: it is dead). */
  async #ping(client: pg.PoolClient, scope: Scope): Promise<boolean> {
    const conn = this.#guard(client);
    try {
      const limit = Math.max(1, Math.floor(this.#budget(scope, this.#o.pingTimeoutMs)));
      await conn.run('SELECT 1', undefined, limit, scope.abort);
      return true;
    } catch (err) {
      if (isOwnAbort(scope, err)) {
        destroyClient(client, err as Error);
        throw err;
      }
      this.#counters.discarded++;
      this.#logger.warn(
        { pool: this.#o.name, host: this.#host, err: errorSummary(err) },
        'idle postgres connection failed its liveness check; destroyed',
      );
      destroyClient(client, err instanceof Error ? err : new Error('liveness check failed'));
      return false;
    }
  }

  #guard(client: pg.PoolClient): GuardedConnection {
    this.#guardOptions ??= {
      unresponsiveGraceMs: this.#o.unresponsiveGraceMs,
      cancelTimeoutMs: this.#o.cancelTimeoutMs,
      ssl: this.#o.ssl,
      onCancel: (delivered) => {
        this.#counters.cancelsSent++;
        if (delivered) this.#counters.cancelsConfirmed++;
      },
    };
    return new GuardedConnection(client, this.#guardOptions);
  }

  /**
   * Ends a lease after the caller has its answer: a failed transaction is rolled back (bounded),
   * and a connection whose state is unknown is destroyed. Never throws.
   */
  #finish(lease: Lease, failed: boolean): void {
    const { conn } = lease;
    if (failed && conn.usable && conn.inTransaction) {
      void this.#rollbackAndRelease(lease);
      return;
    }
    try {
      lease.release()?.catch((err: unknown) => this.#releaseFailed(err));
    } catch (err) {
      this.#releaseFailed(err);
    }
  }

  async #rollbackAndRelease(lease: Lease): Promise<void> {
    try {
      try {
        await lease.conn.run('ROLLBACK', undefined, ROLLBACK_TIMEOUT_MS, undefined);
      } catch (err) {
        lease.conn.markBroken(err instanceof Error ? err : new Error('ROLLBACK failed'));
      }
      await lease.release();
    } catch (err) {
      this.#releaseFailed(err);
    }
  }

  #releaseFailed(err: unknown): void {
    this.#logger.error({ pool: this.#o.name, err: errorSummary(err) }, 'releasing a postgres connection failed');
  }

  /** Turns an acquire refusal into DEPENDENCY_TIMEOUT phase 'acquire' and logs the holders. */
  #acquireTimeout(scope: Scope, refusal: GateRefusedError, waited: number): HangproofError {
    const cause = new Error(
      `${POOL_WAIT_TIMEOUT_MESSAGE}: ${refusal.reason === 'queue-full' ? 'the wait queue is full' : `no connection of pool '${this.#o.name}' (${this.#host}) became free within ${Math.round(waited)} ms`}`,
    );
    const err =
      refusal.reason === 'closed'
        ? pgUnavailable('acquire', new Error('the database has been closed'))
        : pgTimeout('acquire', `no postgres connection became free within ${Math.round(waited)} ms`, waited, cause);
    this.#counters.timeouts.acquire++;
    this.#logger.error(
      {
        pool: this.#o.name,
        host: this.#host,
        phase: 'acquire',
        reason: refusal.reason,
        waitedMs: Math.round(waited),
        requestId: scope.ctx?.requestId,
        route: scope.ctx?.name,
        inUse: this.#gate.held,
        waiting: this.#gate.waiting,
        holders: this.#holders.list(),
      },
      LOG_MESSAGES.acquireTimeout,
    );
    return err;
  }

  #phaseTimeout(scope: Scope, phase: PgPhase, waited: number, cause: unknown): HangproofError {
    const message =
      phase === 'connect'
        ? `could not open a postgres connection within ${Math.round(waited)} ms`
        : `no postgres connection became free within ${Math.round(waited)} ms`;
    const err = pgTimeout(
      phase,
      message,
      waited,
      cause ??
        new Error(
          `${POOL_CONNECT_TIMEOUT_MESSAGE}: ${this.#host} did not complete the handshake in ${Math.round(waited)} ms`,
        ),
    );
    this.#counters.timeouts[phase]++;
    this.#logger.error(
      {
        pool: this.#o.name,
        host: this.#host,
        phase,
        waitedMs: Math.round(waited),
        requestId: scope.ctx?.requestId,
        route: scope.ctx?.name,
        holders: phase === 'acquire' ? this.#holders.list() : undefined,
        err: cause === undefined ? undefined : errorSummary(cause),
      },
      phase === 'connect' ? LOG_MESSAGES.connectTimeout : LOG_MESSAGES.acquireTimeout,
    );
    return err;
  }

  /**
   * Counts and logs a failure with full (redacted) detail and returns what the caller gets: the
   * request's own abort reason as is, hangproof errors as is, 40001/40P01 as CONFLICT, anything
   * else (a constraint violation, a syntax error) as pg's error with bound values scrubbed.
   */
  #account(err: unknown, scope: Scope, fp: string | undefined, params: readonly unknown[] | undefined): unknown {
    if (isOwnAbort(scope, err)) return err;
    if (isRetryableTxError(err)) return conflict(err);
    if (!isHangproofError(err) || this.#accounted.has(err)) return err;
    this.#accounted.add(err);
    const phase = err.details.phase as PgPhase | undefined;
    const alreadyLogged = phase === 'acquire' || phase === 'connect';
    if (!alreadyLogged && phase !== undefined) {
      if (err.code === 'DEPENDENCY_TIMEOUT') this.#counters.timeouts[phase]++;
      else if (err.code === 'DEPENDENCY_UNAVAILABLE') this.#counters.unavailable++;
      this.#logger.warn(
        {
          pool: this.#o.name,
          host: this.#host,
          code: err.code,
          phase,
          requestId: scope.ctx?.requestId,
          route: scope.ctx?.name,
          step: scope.ctx?.stepInFlight,
          sql: fp,
          params: params === undefined ? undefined : (this.#o.redactParams ?? redactParams)(params, fp ?? ''),
          waitedMs: err.details.waitedMs,
          cause: errorSummary(err.cause, params),
        },
        LOG_MESSAGES.statementFailed,
      );
    }
    return err;
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

/** Rows of a result; a string of several statements gives pg's array of results. */
function rowCountOf(result: pg.QueryResult | pg.QueryResult[]): number {
  if (Array.isArray(result)) return result.reduce((n, r) => n + rowCountOf(r), 0);
  return result.rowCount ?? result.rows.length;
}

/** True when `err` is the scope's own abort reason (the request ended), not a database failure. */
function isOwnAbort(scope: Scope, err: unknown): boolean {
  return scope.abort?.aborted === true && err === scope.abort.abortReason;
}

/** The scope's AbortSignal: built from the request context only where a real signal is needed. */
function signalOf(scope: Scope): AbortSignal | undefined {
  return scope.ctx?.signal ?? scope.signal;
}

/** The pool's acquire-wait figures: zeros, not nulls, before the first acquire. */
function acquireWaits(s: LatencySummary): DatabaseStats['acquireWaitMs'] {
  return { p50: s.p50 ?? 0, p95: s.p95 ?? 0, p99: s.p99 ?? 0, max: s.max ?? 0, samples: s.count };
}
