/** Type tests of `hangproof/pg` (compiled by `npm run typecheck`, never run). */
import { createDatabase, type Database, type DatabaseStats, type QueryResult, type Transaction } from 'hangproof/pg';

export async function pgSurface(): Promise<void> {
  const db: Database = createDatabase({ connectionString: 'postgres://localhost/app', max: 5 });
  const result: QueryResult<{ id: number }> = await db.query<{ id: number }>('SELECT $1::int AS id', [1]);
  const id: number | undefined = result.rows[0]?.id;
  void id;
  const total: number = await db.tx(async (t: Transaction) => (await t.query('SELECT 1')).rows.length, {
    retryable: true,
  });
  void total;
  const stats: DatabaseStats = db.stats();
  const inUse: number = stats.inUse;
  void inUse;
  await db.readinessCheck(AbortSignal.timeout(100));
  await db.close();
  // @ts-expect-error the connection string is required
  createDatabase({ max: 5 });
  // @ts-expect-error max is a number
  createDatabase({ connectionString: 'postgres://localhost/app', max: '5' });
}

// @ts-expect-error option resolution is internal
export type NoResolve = typeof import('hangproof/pg').resolveDatabaseOptions;
// @ts-expect-error the default logger is internal
export type NoDefaultLogger = typeof import('hangproof/pg').defaultPgLogger;
