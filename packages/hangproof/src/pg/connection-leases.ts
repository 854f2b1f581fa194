import pg from 'pg';
import { BoundedGate, budgetUntil, channels, GateRefusedError, LatencyReservoir, logEvidence } from '../core/index.js';
import type { HangproofError } from '../errors.js';
import { LOG_MESSAGES } from '../log-events.js';
import type { ResolvedDatabaseOptions } from './database-options.js';
import type { FailureAccounting } from './failure-accounting.js';
import { destroyClient, GuardedConnection, type GuardOptions } from './guarded-connection.js';
import type { HolderRegistry } from './holder-registry.js';
import type { PgLogger } from './logger.js';
import {
  isConnectionError,
  type PgPhase,
  POOL_CONNECT_TIMEOUT_MESSAGE,
  POOL_WAIT_TIMEOUT_MESSAGE,
  pgTimeout,
  pgUnavailable,
} from './pg-errors.js';
import { BUDGET_SPENT, connectWithin } from './pool-connect.js';
import { errorSummary } from './redact-params.js';
import { isOwnAbort, type Scope } from './scope.js';
import { StatementSweep } from './statement-sweep.js';
import { type PgEndpoint, refusalReason, unreachableFields } from './unreachable.js';

/** A checkout: the connection's guard, which also carries the checkout's wait and holder record. */
export type Lease = GuardedConnection;

/** Where a pooled pg client keeps its guard between checkouts. */
const kGuard = Symbol('hangproof.pg.guard');

/** A raw checkout holds no permit: when its caller left, there is nothing to give back. */
const NOTHING_TO_RELEASE = (): void => {};

/** Bound of the ROLLBACK that ends a failed transaction; it runs after the caller was answered. */
const ROLLBACK_TIMEOUT_MS = 1_000;
/**
 * How long a released connection may sit on the idle stack before it goes back to pg's pool (or
 * half of idleTimeoutMs, when that is shorter): one timer a second while the stack holds any.
 */
const IDLE_RETURN_MS = 1_000;

export interface ConnectionLeasesOptions {
  readonly o: ResolvedDatabaseOptions;
  /** Lock timeout of the session defaults (kept under the statement limit, see TransactionLimits). */
  readonly lockTimeoutMs: number;
  readonly logger: PgLogger;
  readonly host: string;
  readonly endpoint: PgEndpoint;
  readonly holders: HolderRegistry;
  readonly failures: FailureAccounting;
}

/**
 * The leasing of connections: pg's pool (with a Client whose handshake is bounded), the permits
 * of a bounded FIFO gate in front of it, liveness checks of idle connections, and the way a lease
 * ends (released, rolled back, or destroyed). Acquire and connect timeouts are counted and
 * logged here, with the holders of the pool's connections.
 */
export class ConnectionLeases {
  readonly pool: pg.Pool;
  readonly #o: ResolvedDatabaseOptions;
  readonly #gate: BoundedGate;
  /** Gives one pool permit back: shared by every checkout (no closure per acquire). */
  readonly #releasePermit = (): void => this.#gate.release();
  readonly #logger: PgLogger;
  readonly #host: string;
  readonly #endpoint: PgEndpoint;
  readonly #holders: HolderRegistry;
  readonly #failures: FailureAccounting;
  readonly #waits = new LatencyReservoir(1024);
  #guardOptions: GuardOptions | undefined;
  #closed = false;
  /** A connection on its way from a release to the oldest waiting checkout (see #release). */
  #handedOver: GuardedConnection | undefined;
  /** Released connections kept checked out of pg's pool for the next checkout (see #keepIdle). */
  readonly #idle: GuardedConnection[] = [];
  /** Gives the idle stack's old connections back to pg's pool; armed only while it holds some. */
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #idleReturnMs: number;

  constructor(options: ConnectionLeasesOptions) {
    const o = options.o;
    this.#o = o;
    this.#logger = options.logger;
    this.#host = options.host;
    this.#endpoint = options.endpoint;
    this.#holders = options.holders;
    this.#failures = options.failures;
    this.#idleReturnMs =
      o.idleTimeoutMs === 0 ? IDLE_RETURN_MS : Math.max(1, Math.min(IDLE_RETURN_MS, Math.floor(o.idleTimeoutMs / 2)));
    this.pool = new pg.Pool({
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
      // per-transaction set_config values are what counts (PgBouncer ignores these).
      application_name: o.applicationName,
      statement_timeout: o.statementTimeoutMs,
      // Kept under the statement limit, as per-statement limits are (TransactionLimits.lockMs), so
      // a statement stuck behind a lock reports the lock.
      lock_timeout: options.lockTimeoutMs,
      idle_in_transaction_session_timeout: o.idleInTransactionTimeoutMs,
    });
    // Without this listener an idle connection dropped by the server crashes the process.
    this.pool.on('error', (err) => {
      // After close(), pg-pool has already let go of its connections while their Terminate is
      // still on the wire; a server shutting down right behind it is no news.
      const level = this.#closed ? 'debug' : 'warn';
      this.#logger[level](
        { pool: o.name, host: this.#host, err: errorSummary(err) },
        LOG_MESSAGES.idleConnectionFailed,
      );
    });
    // pg-pool listens for errors only while a client is idle; a checked-out client whose socket
    // dies would otherwise emit 'error' with no listener. The query in flight fails on its own.
    // The error also marks the connection broken: one on the idle stack is then destroyed, not
    // handed to the next query (pg-pool drops the idle ones it holds itself).
    this.pool.on('connect', (client) => {
      client.on('error', (err) => {
        this.#guard(client).markBroken(err);
        this.#logger.debug({ pool: o.name, err: errorSummary(err) }, 'postgres connection error');
      });
    });
    this.#gate = new BoundedGate(o.max, o.maxWaiting);
  }

  /** Connections checked out now. */
  get held(): number {
    return this.#gate.held;
  }

  /** Callers waiting for a permit now. */
  get waiting(): number {
    return this.#gate.waiting;
  }

  /** The acquire waits seen so far (a bounded reservoir). */
  get waits(): LatencyReservoir {
    return this.#waits;
  }

  /** Idle connections: pg's pool's and the idle stack's. */
  get idleCount(): number {
    return this.pool.idleCount + this.#idle.length;
  }

  /** Refuses new acquires (waiters get DEPENDENCY_UNAVAILABLE); the pool itself is ended by the caller. */
  close(): void {
    this.#closed = true;
    this.#gate.close();
    this.#returnIdle(0);
  }

  /** min(limit, remaining budget - reserve), from `now` when the caller has read the clock already. */
  #budget(scope: Scope, limitMs: number, now?: number): number {
    return budgetUntil(scope.deadlineAt, limitMs, this.#o.reserveMs, now);
  }

  /**
   * A checkout of pg's pool itself, for `dangerouslyRawPool.connect()`: no permit and no guard,
   * but the same bound as a guarded checkout (acquireTimeoutMs, or connectTimeoutMs when a new
   * connection is opened, within the request's budget). Rejects with the same DEPENDENCY_TIMEOUT
   * (phase `acquire` or `connect`) or with the request's abort; a connection that comes after the
   * caller left goes straight back to the pool.
   */
  rawConnect(scope: Scope): Promise<pg.PoolClient> {
    // A raw checkout comes through pg's pool only: the idle stack's connections go back to it first.
    this.#returnIdle(0);
    const started = performance.now();
    const opens = this.pool.idleCount === 0 && this.pool.totalCount < this.#o.max;
    const phase: PgPhase = opens ? 'connect' : 'acquire';
    const limit = this.#budget(scope, opens ? this.#o.connectTimeoutMs : this.#o.acquireTimeoutMs, started);
    if (limit < 1) {
      if (scope.abort?.aborted) return Promise.reject(scope.abort.abortReason);
      return Promise.reject(this.#phaseTimeout(scope, phase, 0, undefined));
    }
    return connectWithin(this.pool, limit, scope.abort, NOTHING_TO_RELEASE).catch((err: unknown) => {
      throw err === BUDGET_SPENT ? this.#phaseTimeout(scope, phase, performance.now() - started, undefined) : err;
    });
  }

  /**
   * Takes a permit, then a live connection, within min(acquireTimeoutMs, remaining budget). The
   * common cases cost no timer and no promise of their own: a free permit (or one passed on by a
   * release) and an idle connection that needs no liveness check, which pg-pool hands over on its
   * next tick.
   */
  acquire(scope: Scope): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) =>
      this.acquireWith(scope, (err, lease) => (lease === undefined ? reject(err) : resolve(lease))),
    );
  }

  /**
   * `acquire` for a caller that takes a callback: `done(null, lease)` or `done(err)`, once.
   * `started`: the caller's performance.now() at the start of its operation, when it has one.
   */
  acquireWith(scope: Scope, done: (err: unknown, lease?: Lease) => void, started = performance.now()): void {
    if (this.#gate.tryAcquire()) {
      this.#checkoutWith(scope, started, done);
      return;
    }
    const waitMs = Math.floor(this.#budget(scope, this.#o.acquireTimeoutMs, started));
    this.#gate.acquireWith(
      waitMs,
      scope.abort,
      (granted, reason) => {
        if (granted) {
          this.#checkoutWith(scope, started, done);
          return;
        }
        const waited = performance.now() - started;
        this.#publishAcquire(waited, false);
        done(reason instanceof GateRefusedError ? this.#acquireTimeout(scope, reason, waited) : reason);
      },
      started,
    );
  }

  /** With a permit held: an idle connection in callback form, or the checkout that may wait. */
  #checkoutWith(scope: Scope, started: number, done: (err: unknown, lease?: Lease) => void): void {
    const permit = this.#releasePermit;
    const handed = this.#handedOver;
    if (handed !== undefined) {
      this.#handedOver = undefined;
      done(null, this.#lease(handed.client, scope, started, permit));
      return;
    }
    const kept = this.#takeIdle();
    if (kept !== undefined) {
      done(null, this.#lease(kept.client, scope, started, permit));
      return;
    }
    if (this.pool.idleCount === 0 || this.pool.waitingCount > 0) {
      this.#checkoutWaiting(scope, started).then((lease) => done(null, lease), done);
      return;
    }
    this.pool.connect((err, client) => {
      if (err !== undefined && err !== null) {
        permit();
        done(err);
      } else if (client === undefined) {
        permit();
        done(new Error('pg-pool gave no client'));
      } else if (this.#needsPing(client, false)) {
        // Sat idle too long to trust without a check: the full path pings it (or another).
        client.release();
        this.#checkoutWaiting(scope, started).then((lease) => done(null, lease), done);
      } else {
        done(null, this.#lease(client, scope, started, permit));
      }
    });
  }

  /** The checkout that may wait, with a permit held: a new connection, a liveness check. */
  async #checkoutWaiting(scope: Scope, started: number): Promise<Lease> {
    let client: pg.PoolClient;
    try {
      client = await this.#checkout(scope, started, this.#releasePermit);
    } catch (err) {
      this.#publishAcquire(performance.now() - started, false);
      throw err;
    }
    return this.#lease(client, scope, started, this.#releasePermit);
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
  #release(conn: GuardedConnection, now?: number): Promise<void> | undefined {
    const releasePermit = conn.releasePermit;
    if (releasePermit === undefined) return undefined;
    conn.releasePermit = undefined;
    this.#holders.remove(conn);
    // The request goes with its checkout: a pooled connection must not keep it alive.
    conn.ctx = undefined;
    const done = (): void => {
      conn.lastReleasedAt = now ?? performance.now();
      releasePermit();
    };
    if (this.#canHandOver(conn, now)) {
      // The permit goes to the oldest waiter at once (BoundedGate.release grants synchronously),
      // and its checkout takes this connection as it is: no trip through pg-pool's idle list,
      // its idle timer and its next-tick hand-over. Whatever the waiter did not take goes back.
      this.#handedOver = conn;
      try {
        done();
      } finally {
        const unclaimed = this.#handedOver;
        this.#handedOver = undefined;
        unclaimed?.client.release();
      }
      return undefined;
    }
    if (this.#canKeepIdle(conn, now)) {
      this.#keepIdle(conn);
      done();
      return undefined;
    }
    let destroying: Promise<void> | undefined;
    try {
      destroying = this.#returnToPool(conn);
    } finally {
      if (destroying === undefined) done();
    }
    return destroying?.finally(done);
  }

  /**
   * True when a released connection may pass straight to a waiting query, as pg-pool passes one
   * to its own queue: a query waits for a permit, nothing waits inside pg-pool (a raw checkout
   * must not starve), the connection is clean, and it is younger than its lifetime, when it has one
   * (pg-pool retires an expired one only when it comes back).
   */
  #canHandOver(conn: GuardedConnection, now = performance.now()): boolean {
    return this.#gate.waiting > 0 && this.#isReusable(conn, now);
  }

  /** Clean, younger than its lifetime, and no raw checkout waits inside pg's pool (it must not starve). */
  #isReusable(conn: GuardedConnection, now: number): boolean {
    const lifetimeMs = this.#o.maxLifetimeMs;
    return (
      this.pool.waitingCount === 0 &&
      conn.usable &&
      !conn.inTransaction &&
      (lifetimeMs === 0 || now - conn.createdAt < lifetimeMs)
    );
  }

  #canKeepIdle(conn: GuardedConnection, now = performance.now()): boolean {
    return !this.#closed && this.#isReusable(conn, now);
  }

  /**
   * Keeps a released connection checked out of pg's pool, on a stack the next checkout takes it
   * from. Why: pg-pool's own round trip (a next-tick hand-over, an idle timer set at each release
   * and cleared at each checkout, two events) cost a bare route 2.4 to 3.5 % of its CPU per query
   * (docs/benchmarks.md, "Seventeenth pass"). The newest is taken first, so under light traffic
   * the others age out: one idle for #idleReturnMs goes back to pg's pool, whose idle timeout
   * (idleTimeoutMs) then closes it as before.
   */
  #keepIdle(conn: GuardedConnection): void {
    this.#idle.push(conn);
    if (this.#idleTimer === undefined) this.#armIdleTimer(this.#idleReturnMs);
  }

  /** The idle stack's one timer, due in `ms` (it does not hold the process open). */
  #armIdleTimer(ms: number): void {
    this.#idleTimer = setTimeout(() => this.#onIdleTimer(), ms);
    this.#idleTimer.unref();
  }

  /** The newest kept connection that is still fit for use; an unfit one is destroyed or returned. */
  #takeIdle(): GuardedConnection | undefined {
    if (this.pool.waitingCount > 0) return undefined;
    for (let conn = this.#idle.pop(); conn !== undefined; conn = this.#idle.pop()) {
      const now = performance.now();
      // Sat idle long enough to need a liveness check: pg's pool path pings it.
      if (this.#isReusable(conn, now) && now - conn.lastReleasedAt < this.#o.pingIdleAfterMs) return conn;
      this.#giveBack(conn);
    }
    return undefined;
  }

  #onIdleTimer(): void {
    this.#idleTimer = undefined;
    this.#returnIdle(this.#idleReturnMs);
    const oldest = this.#idle[0];
    if (oldest !== undefined) {
      // Due when the oldest one left has sat its time, so none sits longer than #idleReturnMs.
      this.#armIdleTimer(Math.max(1, oldest.lastReleasedAt + this.#idleReturnMs - performance.now()));
    }
  }

  /** Gives the kept connections idle for `olderThanMs` or more (0: all) back to pg's pool. */
  #returnIdle(olderThanMs: number): void {
    const now = performance.now();
    let keep = 0;
    for (const conn of this.#idle) {
      if (now - conn.lastReleasedAt < olderThanMs) this.#idle[keep++] = conn;
      else this.#giveBack(conn);
    }
    this.#idle.length = keep;
    if (keep === 0 && this.#idleTimer !== undefined) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
  }

  /** A kept connection back to pg's pool (see #returnToPool); a failed destroy is logged. */
  #giveBack(conn: GuardedConnection): void {
    this.#returnToPool(conn)?.catch((err: unknown) => this.#releaseFailed(err));
  }

  /**
   * A connection back to pg's pool, or destroyed (and counted as discarded) when its state is not
   * known to be clean; the promise of that destroy, if any.
   */
  #returnToPool(conn: GuardedConnection): Promise<void> | undefined {
    if (!conn.usable || conn.inTransaction) this.#failures.counters.discarded++;
    return conn.release();
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
      const fresh = this.pool.idleCount === 0;
      const phase: PgPhase = fresh ? 'connect' : 'acquire';
      const limit = this.#budget(scope, fresh ? this.#o.connectTimeoutMs : this.#o.acquireTimeoutMs);
      if (limit < 1) {
        releasePermit();
        if (scope.abort?.aborted) throw scope.abort.abortReason;
        throw this.#phaseTimeout(scope, phase, performance.now() - started, undefined);
      }
      let client: pg.PoolClient;
      try {
        client = await connectWithin(this.pool, limit, scope.abort, releasePermit);
      } catch (err) {
        if (err === BUDGET_SPENT) throw this.#phaseTimeout(scope, phase, performance.now() - started, undefined);
        if (isOwnAbort(scope, err)) throw err;
        connectFailures++;
        const timedOut = err instanceof Error && err.message === POOL_CONNECT_TIMEOUT_MESSAGE;
        if (connectFailures === 1 && (timedOut || isConnectionError(err)) && this.#budget(scope, 1) >= 1) {
          logEvidence(
            this.#logger,
            'warn',
            {
              pool: this.#o.name,
              host: this.#host,
              ...unreachableFields(this.#endpoint, timedOut ? 'connect_timeout' : refusalReason(err)),
              err: errorSummary(err),
            },
            'opening a postgres connection failed; retrying once',
          );
          continue;
        }
        releasePermit();
        if (timedOut) throw this.#phaseTimeout(scope, 'connect', performance.now() - started, err);
        if (isConnectionError(err)) {
          this.#failures.counters.unavailable++;
          logEvidence(
            this.#logger,
            'error',
            {
              pool: this.#o.name,
              host: this.#host,
              ...unreachableFields(this.#endpoint, refusalReason(err)),
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
      this.#failures.counters.discarded++;
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
          this.#failures.counters.cancelsSent++;
          if (delivered) this.#failures.counters.cancelsConfirmed++;
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
   * and a connection whose state is unknown is destroyed. Never throws. `now`: the caller's
   * performance.now() at the end of its statement, when it has read it already.
   */
  finish(lease: Lease, failed: boolean, now?: number): void {
    const conn = lease;
    if (failed && conn.usable && conn.inTransaction) {
      void this.#rollbackAndRelease(lease);
      return;
    }
    try {
      this.#release(lease, now)?.catch((err: unknown) => this.#releaseFailed(err));
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
    this.#failures.counters.timeouts.acquire++;
    logEvidence(
      this.#logger,
      'error',
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
    this.#failures.counters.timeouts[phase]++;
    logEvidence(
      this.#logger,
      'error',
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
