import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDatabase, type Database, SLOW_PLAN_EVENT } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import { adminClient, captureLogger, inRequest, sessionsNamed, waitFor } from './helpers.js';

let testDb: TestDatabase;
let db: Database;
/** Schema changes go through a pool without plan capture, so no capture of theirs is in flight. */
let admin: Database;
const log = captureLogger();
const SECRET = 'acct-7f3e9d';

/** Reads a bot's orders: two tables, the first named being `bots`. */
const BOT_ORDERS =
  'SELECT o.id, o.total, b.name FROM bots b JOIN orders o ON o.bot_id = b.id WHERE b.id = $1 AND o.note <> $2';

before(async () => {
  testDb = await createTestDatabase();
  db = createDatabase({
    connectionString: testDb.url,
    max: 2,
    // Every statement is "slow" here, so the capture's own rules (one per fingerprint) are what is tested.
    slowQueryMs: 1,
    planEvidence: { minIntervalMs: 0 },
    logger: log.logger,
  });
  admin = createDatabase({ connectionString: testDb.url, max: 1, planEvidence: false, logger: log.logger });
  await admin.query('CREATE TABLE bots (id int PRIMARY KEY, name text NOT NULL)');
  await admin.query(
    'CREATE TABLE orders (id int PRIMARY KEY, bot_id int NOT NULL, total numeric NOT NULL, note text NOT NULL)',
  );
  await admin.query("INSERT INTO bots SELECT g, 'bot-' || g FROM generate_series(1, 500) g");
  await admin.query("INSERT INTO orders SELECT g, 1 + g % 500, g % 97, 'n' FROM generate_series(1, 200000) g");
  await admin.query('CREATE INDEX orders_bot_id ON orders (bot_id)');
  await admin.query('ANALYZE bots');
  await admin.query('ANALYZE orders');
});

after(async () => {
  await db.close();
  await admin.close();
  await testDb.drop();
});

/** The plan line for `fingerprintPart`, once written (bounded poll). */
async function planLine(fingerprintPart: string, after = 0, from = log): Promise<Record<string, unknown>> {
  const find = (): Record<string, unknown> | undefined =>
    from
      .records()
      .slice(after)
      .find((r) => r.event === SLOW_PLAN_EVENT && String(r.fingerprint).includes(fingerprintPart));
  const took = await waitFor(async () => find() !== undefined, 5_000);
  assert.ok(took >= 0, `no ${SLOW_PLAN_EVENT} line for ${fingerprintPart}`);
  return find() as Record<string, unknown>;
}

test('with its index dropped, a slow two-table statement is blamed on a Seq Scan of the table that lost it, with the index to create', async () => {
  await admin.query('DROP INDEX orders_bot_id');
  await inRequest(5_000, 'GET /bots/:id/orders', () => db.query(BOT_ORDERS, [42, SECRET]));
  const line = await planLine('FROM bots b JOIN orders o');
  const dominant = line.dominant as Record<string, unknown>;
  assert.equal(dominant.nodeType, 'Seq Scan');
  assert.equal(dominant.relation, 'orders', 'the scanned table, not the first one named');
  assert.ok((dominant.planRows as number) > 0);
  assert.ok((dominant.costShare as number) > 0.5, `cost share ${dominant.costShare}`);
  assert.equal(line.planKind, 'generic');
  assert.match(String(line.suggestion), /^CREATE INDEX CONCURRENTLY ON orders \(bot_id/);
  assert.match(String(line.msg), /Seq Scan on orders dominates its plan; consider CREATE INDEX/);
  assert.equal(db.stats().plans.recent[0]?.dominant.relation, 'orders');
  for (const l of log.lines) assert.ok(!l.includes(SECRET), `a bound value leaked: ${l}`);
});

test('a slow statement over a table too small for an index to matter is not blamed on its Seq Scan', async () => {
  const mark = log.lines.length;
  // Slow for another reason (a sleep) while scanning the 500 rows of bots, which has no index on name.
  const small = 'SELECT pg_sleep(0.02), b.id FROM bots b WHERE b.name = $1';
  await db.query(small, ['bot-7']);
  const line = await planLine('FROM bots b WHERE b.name', mark);
  const dominant = line.dominant as Record<string, unknown>;
  assert.equal(dominant.nodeType, 'Seq Scan');
  assert.ok((dominant.ownCost as number) < 100, `own cost ${dominant.ownCost}`);
  assert.equal(line.suggestion, null, 'no index suggested for a 500-row table');
  assert.doesNotMatch(String(line.msg), /consider/);
});

test('a fingerprint is explained once per perFingerprintMs, and with the index back the plan suggests nothing', async () => {
  const before = db.stats().plans;
  await db.query(BOT_ORDERS, [7, 'x']);
  assert.equal(db.stats().plans.captured, before.captured, 'the same fingerprint again: no new capture');

  await admin.query('CREATE INDEX orders_bot_id ON orders (bot_id)');
  const mark = log.lines.length;
  // Slow for another reason than its plan (a sleep), so it crosses slowQueryMs with the index in use.
  const indexed = 'SELECT pg_sleep(0.02), o.id FROM orders o WHERE o.bot_id = $1 LIMIT 1';
  await db.query(indexed, [9]);
  const line = await planLine('FROM orders o WHERE o.bot_id', mark);
  assert.notEqual((line.dominant as Record<string, unknown>).nodeType, 'Seq Scan');
  assert.equal(line.suggestion, null);
});

test('the captures of one incident share one connection of their own, which closes with the pool', async () => {
  const incidentLog = captureLogger();
  const own = createDatabase({
    connectionString: testDb.url,
    max: 1,
    slowQueryMs: 1,
    applicationName: 'one-plan',
    planEvidence: { minIntervalMs: 0 },
    logger: incidentLog.logger,
  });
  const observer = await adminClient(testDb.url);
  const sideSessions = (): Promise<number> => sessionsNamed(observer, 'one-plan plan-evidence');
  try {
    try {
      // Two slow statements of their own fingerprints, one after the other: two captures.
      await own.query('SELECT pg_sleep(0.01), b.id FROM bots b WHERE b.id = $1', [1]);
      await planLine('FROM bots b WHERE b.id', 0, incidentLog);
      await own.query('SELECT pg_sleep(0.01), o.id FROM orders o WHERE o.id = $1', [1]);
      await planLine('FROM orders o WHERE o.id', 0, incidentLog);
      const stats = own.stats().plans;
      assert.equal(stats.captured, 2);
      assert.equal(stats.connectionsOpened, 1, 'one connection for both captures');
      assert.equal(await sideSessions(), 1, 'it stays open between captures');
    } finally {
      await own.close();
    }
    const gone = await waitFor(async () => (await sideSessions()) === 0, 2_000);
    assert.ok(gone >= 0, 'the capture connection is gone once the pool is closed');
  } finally {
    await observer.end();
  }
});
