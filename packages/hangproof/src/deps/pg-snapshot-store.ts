import { raceAbort } from '../core/index.js';
import type { SnapshotStore } from './snapshot-cache.js';

/**
 * What the store needs from node-postgres: a `pg.Pool` (or `pg.Client`) fits. Typed structurally
 * so hangproof/deps does not load `pg` unless this store is used.
 */
export interface Queryable {
  query(config: { text: string; values?: unknown[]; query_timeout?: number }): Promise<{ rows: unknown[] }>;
}

export interface PgSnapshotStoreOptions {
  /** A pg Pool. Give it a `connectionTimeoutMillis`: pg waits forever for a connection by default. */
  readonly pool: Queryable;
  /** Table name (`schema.table` allowed). @default 'hangproof_snapshots' */
  readonly table?: string;
}

const TABLE_NAME = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

/**
 * Keeps snapshots in a Postgres summary table so every instance, and a restarted process, starts
 * warm. One row per key: `hangproof_snapshots(key text primary key, value jsonb, refreshed_at timestamptz)`.
 * Each query carries `query_timeout` from the caller's signal budget and is raced against the
 * signal, so a stuck database cannot hold a snapshot read.
 */
export class PgSnapshotStore implements SnapshotStore {
  readonly #pool: Queryable;
  readonly #table: string;

  constructor(options: PgSnapshotStoreOptions) {
    const table = options.table ?? 'hangproof_snapshots';
    if (!TABLE_NAME.test(table))
      throw new TypeError(`table must match ${TABLE_NAME}, received ${JSON.stringify(table)}`);
    if (typeof options.pool?.query !== 'function') throw new TypeError('pool must have a query() method (a pg Pool)');
    this.#pool = options.pool;
    this.#table = table;
  }

  /** Creates the table if it does not exist. Run it from a migration or once at startup. */
  async ensureTable(timeoutMs = 5_000): Promise<void> {
    await this.#query(
      `CREATE TABLE IF NOT EXISTS ${this.#table} (
         key text PRIMARY KEY,
         value jsonb NOT NULL,
         refreshed_at timestamptz NOT NULL
       )`,
      [],
      AbortSignal.timeout(timeoutMs),
      timeoutMs,
    );
  }

  async load(key: string, signal: AbortSignal): Promise<{ value: unknown; refreshedAt: Date } | undefined> {
    const { rows } = await this.#query(`SELECT value, refreshed_at FROM ${this.#table} WHERE key = $1`, [key], signal);
    const row = rows[0] as { value: unknown; refreshed_at: Date } | undefined;
    return row === undefined ? undefined : { value: row.value, refreshedAt: new Date(row.refreshed_at) };
  }

  async save(key: string, value: unknown, refreshedAt: Date, signal: AbortSignal): Promise<void> {
    // Never move a key back in time: another instance may have saved a newer value meanwhile.
    await this.#query(
      `INSERT INTO ${this.#table} (key, value, refreshed_at) VALUES ($1, $2::jsonb, $3)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, refreshed_at = EXCLUDED.refreshed_at
       WHERE ${this.#table}.refreshed_at < EXCLUDED.refreshed_at`,
      [key, JSON.stringify(value), refreshedAt],
      signal,
    );
  }

  #query(text: string, values: unknown[], signal: AbortSignal, timeoutMs = 1_000): Promise<{ rows: unknown[] }> {
    return raceAbort(this.#pool.query({ text, values, query_timeout: timeoutMs }), signal);
  }
}
