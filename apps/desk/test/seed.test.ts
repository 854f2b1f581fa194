import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import { SEED_VOLUMES, seedDatabase } from '../src/db/seed.js';

const databases: TestDatabase[] = [];
after(async () => {
  for (const d of databases) await d.drop();
});

async function fresh(): Promise<TestDatabase> {
  const d = await createTestDatabase();
  databases.push(d);
  await migrate(d.url);
  return d;
}

async function read<T>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

const SCHEMA_SQL = `SELECT 'index ' || indexdef AS d FROM pg_indexes WHERE schemaname = 'public'
  UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
  WHERE connamespace = 'public'::regnamespace ORDER BY 1`;

test('the small seed fills every table in well under a few seconds and leaves the migrated schema intact', async () => {
  const plain = await fresh();
  const seeded = await fresh();
  const started = performance.now();
  const r = await seedDatabase(seeded.url, { size: 'small', demoUserToken: 'seed-test-token-0123456789' });
  const ms = performance.now() - started;
  assert.equal(r.seeded, true);
  assert.ok(ms < 5_000, `small seed took ${ms.toFixed(0)} ms`);
  const counts = await read<Record<string, number>>(
    seeded.url,
    `SELECT (SELECT count(*)::int FROM users) AS users, (SELECT count(*)::int FROM bots) AS bots,
            (SELECT count(*)::int FROM bot_instances) AS instances, (SELECT count(*)::int FROM backtest_sessions) AS sessions,
            (SELECT count(*)::int FROM execution_audits) AS audits`,
  );
  assert.deepEqual(counts[0], { ...SEED_VOLUMES.small });
  // The bulk load drops and rebuilds indexes and foreign keys: they must come back exactly.
  assert.deepEqual(await read(seeded.url, SCHEMA_SQL), await read(plain.url, SCHEMA_SQL));
});

test('a second seed of the same database inserts nothing and only refreshes the demo token', async () => {
  const d = await fresh();
  await seedDatabase(d.url, { size: 'small', demoUserToken: 'first-token-0123456789' });
  const again = await seedDatabase(d.url, { size: 'small', demoUserToken: 'second-token-0123456789' });
  assert.equal(again.seeded, false);
  const rows = await read<{ n: number }>(d.url, 'SELECT count(*)::int AS n FROM users');
  assert.equal(rows[0]?.n, SEED_VOLUMES.small.users);
  const demo = await read<{ ok: boolean }>(
    d.url,
    "SELECT token_hash = sha256(convert_to('second-token-0123456789', 'UTF8')) AS ok FROM users WHERE id = 1",
  );
  assert.equal(demo[0]?.ok, true);
});
