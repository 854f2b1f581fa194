import pg from 'pg';
import {
  type AbortWatch,
  BoundedGate,
  budgetUntil,
  channels,
  currentContext,
  GateRefusedError,
  LatencyReservoir,
  type LatencySummary,
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
import { shapeOf } from './fingerprint.js';
import { destroyClient, GuardedConnection, type GuardOptions } from './guarded-connection.js';
import { HolderRegistry } from './holder-registry.js';
import { isSingleStatement } from './limited-query.js';
import { LockEvidence } from './lock-evidence.js';
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
import { PlanEvidence } from './plan-evidence.js';
import { BUDGET_SPENT, connectWithin } from './pool-connect.js';
import { QueryAccounting } from './query-accounting.js';
import { errorSummary, redactParams } from './redact-params.js';
import { StatementSweep } from './statement-sweep.js';
import { TransactionLimits } from './transaction-limits.js';
import { endpointOf, type PgEndpoint, unreachableFields, unreachableReason } from './unreachable.js';

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

/** A checkout: the connection's guard, which also carries the checkout's wait and holder record. */
type Lease = GuardedConnection;

const CLOSE_TIMEOUT_MS = 5_000;

/** Where a pooled pg client keeps its guard between checkouts. */
const kGuard = Symbol('hangproof.pg.guard');

/** Bound of the ROLLBACK that ends a failed transaction; it runs after the caller was answered. */
const ROLLBACK_TIMEOUT_MS = 1_000;

class GuardedDatabase implements Database {
  readonly #o: ResolvedDatabaseOptions;
  readonly #pool: pg.Pool;
  readonly #gate: BoundedGate;
  /** Gives one pool permit back: shared by every checkout (no closure per acquire). */
  readonly #releasePermit = (): void => this.#gate.release();
  readonly #holders: HolderRegistry;
  readonly #accounting: QueryAccounting;
  readonly #lockEvidence: LockEvidence | undefined;
  readonly #planEvidence: PlanEvidence | undefined;
  readonly #logger: PgLogger;
  readonly #waits = new LatencyReservoir(1024);
  #guardOptions: GuardOptions | undefined;
  readonly #limits: TransactionLimits;
  #closed = false;
  /** Errors already counted and logged, so a failure seen by a query and its transaction logs once. */
  readonly #accounted = new WeakSet<object>();
  readonly #host: string;
  /** Host name and port for the LOG_EVENTS.pgUnavailable lines (see unreachable.ts). */
  readonly #endpoint: PgEndpoint;
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
    this.#endpoint = endpointOf(o.connectionString);
    this.#pool = new pg.Pool({
      connectionString: o.connectionString,
      ...(o.ssl === undefined ? {} : { ssl: o.ssl }),
      max: o.max,
      // The TCP/TLS/auth handshake of a new connection is bounded by pg's Client itself
      // (connectTimeoutMs, below). pg-pool is given no connectionTimeoutMillis: it would arm a
      // timer on every checkout for its wait queue, which the gate keeps empty.
      Client: clientWithConnectTimeout(o.connectTimeoutMs),
      idleTimeoutMillis: o.idleTimeoutMs,
      maxLifetimeSeconds: Math.ceil(o.maxLifetimeMs / 1000),
      // Finds dead idle peers (a restarted server behind a NAT) before a query is sent on them.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // Session defaults for direct connections and for `outsideTransaction` statements. The
      // per-transaction set_config values below are what counts (PgBouncer ignores these).
      application_name: o.applicationName,
      statement_timeout: o.statementTimeoutMs,
      // Kept under the statement limit, as per-statement limits are (TransactionLimits.lockMs), so
      // a statement stuck behind a lock reports the lock.
      lock_timeout: this.#limits.lockMs(o.statementTimeoutMs),
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
    this.#gate = new BoundedGate(o.max, o.maxWaiting);
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
    const plans = this.#planEvidence;
    this.#accounting = new QueryAccounting({
      pool: o.name,
      serverAddress: this.#endpoint.hostname,
      serverPort: this.#endpoint.port,
      slowQueryMs: o.slowQueryMs,
      nPlusOneThreshold: o.nPlusOneThreshold,
      redactParams: o.redactParams ?? redactParams,
      logger: this.#logger,
      onSlow: plans === undefined ? undefined : (...slow) => plans.onSlow(...slow),
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
    const shape = shapeOf(sql);
    const started = performance.now();
    this.#accounting.start(scope.ctx, shape);
    let lease: Lease | undefined;
    let failure: unknown;
    let rows = 0;
    try {
      lease = await this.#acquire(scope);
      const conn = lease;
      let result: pg.QueryResult;
      if (options.outsideTransaction === true) {
        result = await conn.run(sql, params, this.#statementBudget(scope, 'query'), scope.abort);
      } else if (isSingleStatement(sql)) {
        const limitMs = this.#statementBudget(scope, 'query');
        result =
          this.#o.statementLimits === 'when-shorter' && limitMs >= this.#o.statementTimeoutMs
            ? // The session's own limits (set when the connection opened) are the ones this
              // statement needs: no set_config for Postgres to parse, plan and answer.
              await conn.run(sql, params, limitMs, scope.abort)
            : // Shorter limits and the statement in one implicit transaction, one round trip.
              await conn.runLimited(this.#limits.statement(scope.ctx, limitMs), sql, params, limitMs, scope.abort);
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
      failure = this.#account(err, scope, shape.fingerprint, params, lease?.pid);
      throw failure;
    } finally {
      this.#accounting.end(scope.ctx, shape, started, rows, failure, lease?.waitMs ?? 0, params, sql);
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
        const conn = lease;
        await conn.run(this.#beginSql(scope, options), undefined, this.#statementBudget(scope, 'query'), scope.abort);
        const handle: Transaction = {
          query: async <R extends Row = Row>(sql: string, params?: readonly unknown[]) => {
            if (!open) throw new Error('this transaction has already ended; run queries inside its callback');
            const shape = shapeOf(sql);
            const started = performance.now();
            this.#accounting.start(scope.ctx, shape);
            let rows = 0;
            let error: unknown;
            try {
              const result = await conn.run(sql, params, this.#statementBudget(scope, 'query'), scope.abort);
              rows = rowCountOf(result);
              return result as QueryResult<R>;
            } catch (err) {
              error = this.#account(err, scope, shape.fingerprint, params, conn.pid);
              throw error;
            } finally {
              this.#accounting.end(scope.ctx, shape, started, rows, error, 0, params, sql);
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
      lease = await this.#acquire(scope);
      await lease.run('SELECT 1', undefined, this.#statementBudget(scope, 'query'), scope.abort);
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
    this.#lockEvidence?.close();
    this.#planEvidence?.close();
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
    return budgetUntil(scope.deadlineAt, limitMs, this.#o.reserveMs);
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

  /**
   * Takes a permit, then a live connection, within min(acquireTimeoutMs, remaining budget). The
   * common case (a free permit and an idle connection that needs no liveness check) costs one
   * promise and no timer: pg-pool hands an idle connection over on its next tick.
   */
  #acquire(scope: Scope): Promise<Lease> {
    const started = performance.now();
    const permit = this.#gate.tryAcquire() ? this.#releasePermit : undefined;
    if (permit === undefined || this.#pool.idleCount === 0 || this.#pool.waitingCount > 0) {
      return this.#acquireWaiting(scope, started, permit);
    }
    return new Promise<Lease>((resolve, reject) => {
      this.#pool.connect((err, client) => {
        if (err !== undefined && err !== null) {
          permit();
          reject(err);
        } else if (client === undefined) {
          permit();
          reject(new Error('pg-pool gave no client'));
        } else if (this.#needsPing(client, false)) {
          // Sat idle too long to trust without a check: the full path pings it (or another).
          client.release();
          this.#acquireWaiting(scope, started, permit).then(resolve, reject);
        } else {
          resolve(this.#lease(client, scope, started, permit));
        }
      });
    });
  }

  /** The acquire that may wait: for a permit (bounded FIFO), a new connection, a liveness check. */
  async #acquireWaiting(scope: Scope, started: number, permit: (() => void) | undefined): Promise<Lease> {
    const releasePermit = this.#releasePermit;
    try {
      if (permit === undefined)
        await this.#gate.acquire(Math.floor(this.#budget(scope, this.#o.acquireTimeoutMs)), scope.abort);
    } catch (err) {
      const waited = performance.now() - started;
      this.#publishAcquire(waited, false);
      if (err instanceof GateRefusedError) throw this.#acquireTimeout(scope, err, waited);
      throw err;
    }
    let client: pg.PoolClient;
    try {
      client = await this.#checkout(scope, started, releasePermit);
    } catch (err) {
      this.#publishAcquire(performance.now() - started, false);
      throw err;
    }
    return this.#lease(client, scope, started, releasePermit);
  }

  /** The checked-out connection's guard, filled in as this checkout's lease and holder record. */
  #lease(client: pg.PoolClient, scope: Scope, started: number, releasePermit: () => void): GuardedConnection {
    const now = performance.now();
    const waitMs = now - started;
    this.#waits.add(waitMs);
    this.#publishAcquire(waitMs, true);
    const conn = this.#guard(client);
    conn.waitMs = waitMs;
    conn.releasePermit = releasePermit;
    conn.requestId = scope.ctx?.requestId;
    conn.route = scope.ctx?.name;
    conn.step = scope.ctx?.stepInFlight;
    conn.ctx = scope.ctx;
    conn.since = now;
    conn.stack = this.#o.captureAcquireStacks ? new Error('acquired here').stack : undefined;
    this.#holders.add(conn);
    return conn;
  }

  /** Gives a lease's connection back (or destroys it) and then its permit; once per checkout. */
  #release(conn: GuardedConnection): Promise<void> | undefined {
    const releasePermit = conn.releasePermit;
    if (releasePermit === undefined) return undefined;
    conn.releasePermit = undefined;
    this.#holders.remove(conn);
    // The request goes with its checkout: a pooled connection must not keep it alive.
    conn.ctx = undefined;
    const done = (): void => {
      conn.lastReleasedAt = performance.now();
      releasePermit();
    };
    let destroying: Promise<void> | undefined;
    try {
      if (!conn.usable || conn.inTransaction) this.#counters.discarded++;
      destroying = conn.release();
    } finally {
      if (destroying === undefined) done();
    }
    return destroying?.finally(done);
  }

  #publishAcquire(waitMs: number, ok: boolean): void {
    if (channels.poolAcquire.hasSubscribers) channels.poolAcquire.publish({ pool: this.#o.name, waitMs, ok });
  }

  /** True when an idle connection sat unused longer than `pingIdleAfterMs` (a fresh one never). */
  #needsPing(client: pg.PoolClient, fresh: boolean): boolean {
    if (fresh) return false;
    const lastUsed = this.#guard(client).lastReleasedAt;
    return lastUsed > 0 && performance.now() - lastUsed >= this.#o.pingIdleAfterMs;
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
            {
              pool: this.#o.name,
              host: this.#host,
              ...unreachableFields(this.#endpoint, timedOut ? 'connect_timeout' : 'refused'),
              err: errorSummary(err),
            },
            'opening a postgres connection failed; retrying once',
          );
          continue;
        }
        releasePermit();
        if (timedOut) throw this.#phaseTimeout(scope, 'connect', performance.now() - started, err);
        if (isConnectionError(err)) {
          this.#counters.unavailable++;
          this.#logger.error(
            {
              pool: this.#o.name,
              host: this.#host,
              ...unreachableFields(this.#endpoint, 'refused'),
              phase: 'connect',
              err: errorSummary(err),
            },
            LOG_MESSAGES.connectionRefused,
          );
          throw pgUnavailable('connect', err);
        }
        throw err;
      }
      if (!this.#needsPing(client, fresh)) return client;
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

  /** The connection's guard: one per pooled connection, made on its first checkout and reused. */
  #guard(client: pg.PoolClient): GuardedConnection {
    const tagged = client as pg.PoolClient & { [kGuard]?: GuardedConnection };
    let conn = tagged[kGuard];
    if (conn === undefined) {
      this.#guardOptions ??= {
        unresponsiveGraceMs: this.#o.unresponsiveGraceMs,
        cancelTimeoutMs: this.#o.cancelTimeoutMs,
        ssl: this.#o.ssl,
        onCancel: (delivered) => {
          this.#counters.cancelsSent++;
          if (delivered) this.#counters.cancelsConfirmed++;
        },
        // A bound fires up to a fifth of the grace late; the grace is what it is measured against.
        sweep: new StatementSweep(Math.max(5, Math.min(50, this.#o.unresponsiveGraceMs / 5))),
      };
      conn = new GuardedConnection(client, this.#guardOptions);
      tagged[kGuard] = conn;
    }
    return conn;
  }

  /**
   * Ends a lease after the caller has its answer: a failed transaction is rolled back (bounded),
   * and a connection whose state is unknown is destroyed. Never throws.
   */
  #finish(lease: Lease, failed: boolean): void {
    const conn = lease;
    if (failed && conn.usable && conn.inTransaction) {
      void this.#rollbackAndRelease(lease);
      return;
    }
    try {
      this.#release(lease)?.catch((err: unknown) => this.#releaseFailed(err));
    } catch (err) {
      this.#releaseFailed(err);
    }
  }

  async #rollbackAndRelease(lease: Lease): Promise<void> {
    try {
      try {
        await lease.run('ROLLBACK', undefined, ROLLBACK_TIMEOUT_MS, undefined);
      } catch (err) {
        lease.markBroken(err instanceof Error ? err : new Error('ROLLBACK failed'));
      }
      await this.#release(lease);
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
        ...unreachableFields(this.#endpoint, phase === 'connect' ? 'connect_timeout' : undefined),
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
  #account(
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
    if (!alreadyLogged && phase !== undefined) {
      if (err.code === 'DEPENDENCY_TIMEOUT') this.#counters.timeouts[phase]++;
      else if (err.code === 'DEPENDENCY_UNAVAILABLE') this.#counters.unavailable++;
      this.#logger.warn(
        {
          pool: this.#o.name,
          host: this.#host,
          ...unreachableFields(this.#endpoint, unreachableReason(err)),
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
      // What it waited for, from Postgres itself, off the request path (see LockEvidence).
      if (phase === 'lock') {
        this.#lockEvidence?.onLockTimeout(pid, { route: scope.ctx?.name, requestId: scope.ctx?.requestId, sql: fp });
      }
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

/** pg's Client with `connectionTimeoutMillis` of its own, for pg-pool to create connections with. */
function clientWithConnectTimeout(connectTimeoutMs: number): typeof pg.Client {
  return class TimedClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super({
        ...(typeof config === 'string' ? { connectionString: config } : config),
        connectionTimeoutMillis: connectTimeoutMs,
      });
    }
  };
}

const NO_LOCK_WAITS = Object.freeze({ captured: 0, lockTimeouts: 0, failed: 0, skipped: 0, recent: [] });
const NO_PLANS = Object.freeze({ captured: 0, failed: 0, skipped: 0, recent: [] });

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
