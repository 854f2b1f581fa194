import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from 'hangproof/testing';
import pg from 'pg';
import { pinPostgres } from './pin-postgres.ts';
import { LOAD_CORE } from './server-process.ts';

export const BOTS_USERS = 2_000;
export const BOTS_PER_USER = 50;

async function seed(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 120_000 });
  await c.connect();
  try {
    await c.query(`CREATE TABLE bots (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      user_id integer NOT NULL,
      name text NOT NULL,
      stage text NOT NULL,
      updated_at timestamptz NOT NULL)`);
    await c.query(
      `INSERT INTO bots (user_id, name, stage, updated_at)
       SELECT g % $1, 'bot-' || g, (ARRAY['draft','backtest','paper','live'])[1 + g % 4],
              now() - make_interval(secs => g)
       FROM generate_series(1, $2) AS g`,
      [BOTS_USERS, BOTS_USERS * BOTS_PER_USER],
    );
    await c.query('CREATE INDEX bots_user_updated ON bots (user_id, updated_at DESC)');
    await c.query('VACUUM ANALYZE bots');
  } finally {
    await c.end();
  }
}

/**
 * Runs `fn` against an embedded Postgres seeded with the db route's table (100k bots, indexed by
 * user), pinned to the load generator's core; stops and deletes it afterwards. `suite` prefixes
 * the progress line.
 */
export async function withBotsDatabase<T>(suite: string, fn: (url: string) => Promise<T>): Promise<T> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hangproof-bench-pg-'));
  const server = await startEmbeddedPostgres({ dataDir, settings: { fsync: 'off', max_connections: 100 } });
  try {
    const pinned = await pinPostgres(dataDir);
    process.stderr.write(
      `${suite}: seeding (${BOTS_USERS * BOTS_PER_USER} rows); Postgres pinned to core ${pinned ? LOAD_CORE : 'none'}\n`,
    );
    await seed(server.url);
    return await fn(server.url);
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
