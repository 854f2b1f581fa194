import type pg from 'pg';
import type { HolderView } from './holder-registry.js';
import type { LockWaitStats } from './lock-evidence.js';
import type { PgPhase } from './pg-errors.js';
import type { PlanStats } from './plan-evidence.js';

/** A query result row: column name to value. */
export type Row = Record<string, unknown>;

/** What a query returns: pg's result (rows, rowCount, fields...). */
export type QueryResult<R extends Row = Row> = pg.QueryResult<R>;

export interface QueryOptions {
  /**
   * Runs the statement on its own, not wrapped in a transaction. Needed for statements that
   * cannot run inside one (`VACUUM`, `CREATE INDEX CONCURRENTLY`). Only the client-side bound and
   * cancel apply then, plus the session defaults sent at connect (ignored behind PgBouncer).
   * @default false
   */
  readonly outsideTransaction?: boolean;
}

export interface TxOptions {
  /** Run again on 40001/40P01 (serialization failure, deadlock), within the budget. @default false */
  readonly retryable?: boolean;
  /** Isolation level of the transaction. @default the server's (read committed) */
  readonly isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /** `BEGIN READ ONLY`. @default false */
  readonly readOnly?: boolean;
}

/** The handle a transaction body gets: queries on the transaction's connection. */
export interface Transaction {
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

/** Pool numbers for `/readyz`, status pages and tests. */
export interface DatabaseStats {
  readonly pool: string;
  readonly max: number;
  /** Open connections. */
  readonly total: number;
  readonly idle: number;
  /** Connections checked out or being cleaned up (rollback, cancel, destroy). */
  readonly inUse: number;
  /** Callers waiting for a connection. */
  readonly waiting: number;
  /** Acquire waits (ms) over the last 1024 acquires. */
  readonly acquireWaitMs: { p50: number; p95: number; p99: number; max: number; samples: number };
  readonly timeouts: Readonly<Record<PgPhase, number>>;
  readonly unavailable: number;
  readonly cancelsSent: number;
  readonly cancelsConfirmed: number;
  /** Connections destroyed because their state was unknown after a timeout, cancel or error. */
  readonly discarded: number;
  readonly queries: number;
  readonly slowQueries: number;
  readonly nPlusOneDetected: number;
  readonly leaksDetected: number;
  readonly retriedTransactions: number;
  /** Who holds each checked-out connection, longest first. */
  readonly holders: readonly HolderView[];
  /** Lock waits captured from Postgres (relation, blockers), see `lockEvidence`. */
  readonly lockWaits: LockWaitStats;
  /** Plans captured for slow statements (dominant node, suggested index), see `planEvidence`. */
  readonly plans: PlanStats;
}

/** The Postgres guard. Create one per database with `createDatabase`. */
export interface Database {
  /** Runs one statement under the request's budget; see docs/reference/pg.md. */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>>;
  /** Runs `fn` in a transaction that always ends in COMMIT or ROLLBACK (or a destroyed connection). */
  tx<T>(fn: (t: Transaction) => Promise<T>, options?: TxOptions): Promise<T>;
  stats(): DatabaseStats;
  /** `SELECT 1` within `readinessTimeoutMs`; rejects with DEPENDENCY_TIMEOUT/UNAVAILABLE. Fits `addReadinessCheck`. */
  readinessCheck(signal?: AbortSignal): Promise<void>;
  /** Refuses new work, then closes the pool (waits at most 5 s for checked-out connections). */
  close(): Promise<void>;
  /** The underlying pg Pool, for tools that need it (migrations). Its queries are not guarded. */
  readonly dangerouslyRawPool: pg.Pool;
}
