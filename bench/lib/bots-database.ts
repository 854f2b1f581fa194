import pg from 'pg';
import { withBenchPostgres } from './bench-postgres.ts';

const BOTS_USERS = 2_000;
const BOTS_PER_USER = 50;

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
 * Runs `fn` against a bench Postgres (see withBenchPostgres) seeded with the db route's table
 * (100k bots, indexed by user). `suite` prefixes the progress lines.
 */
export function withBotsDatabase<T>(suite: string, fn: (url: string) => Promise<T>): Promise<T> {
  return withBenchPostgres(suite, async (url) => {
    process.stderr.write(`${suite}: seeding ${BOTS_USERS * BOTS_PER_USER} rows\n`);
    await seed(url);
    return fn(url);
  });
}
