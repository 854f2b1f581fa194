import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import type pg from 'pg';
import { latch } from '../support/latch.js';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { adminClient, captureLogger, inRequest, sessionsRunning, timed, waitFor } from './helpers.js';

let testDb: TestDatabase;
let db: Database;
let admin: pg.Client;
const log = captureLogger();

before(async () => {
  testDb = await createTestDatabase();
  admin = await adminClient(testDb.url);
  await admin.query('CREATE TABLE bots (id int PRIMARY KEY, name text NOT NULL, balance int NOT NULL DEFAULT 0)');
  await admin.query(`INSERT INTO bots SELECT g, 'bot ' || g FROM generate_series(1, 20) g`);
  db = createDatabase({ connectionString: testDb.url, max: 4, lockTimeoutMs: 400, logger: log.logger });
});

after(async () => {
  await db.close();
  await admin.end();
  await testDb.drop();
});

async function sessions(state: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state = $2 AND pid <> pg_backend_pid()',
    [testDb.name, state],
  );
  return rows[0]?.n ?? 0;
}

test('a row locked by another session ends the request with phase lock, within its budget', async () => {
  const locker = await adminClient(testDb.url);
  try {
    await locker.query('BEGIN');
    await locker.query('SELECT * FROM bots WHERE id = 1 FOR UPDATE');
    const outcome = await timed(() =>
      inRequest(2000, 'PATCH /bots/:id', () => db.query('UPDATE bots SET balance = balance + 1 WHERE id = $1', [1])),
    );
    const err = outcome.error as { code: string; details: Record<string, unknown> };
    assert.equal(err.code, 'DEPENDENCY_TIMEOUT');
    assert.equal(err.details.phase, 'lock');
    assertTookLessThan(outcome, 2000, 'ended in time');
    assert.ok(outcome.ms >= 350, 'it waited for the lock first');
  } finally {
    await locker.query('ROLLBACK');
    await locker.end();
  }
});

test('a lock wait longer than the request budget still names the lock phase or the deadline', async () => {
  const locker = await adminClient(testDb.url);
  const patient = createDatabase({ connectionString: testDb.url, max: 1, lockTimeoutMs: 10_000, logger: log.logger });
  try {
    await locker.query('BEGIN');
    await locker.query('SELECT * FROM bots WHERE id = 2 FOR UPDATE');
    const outcome = await timed(() =>
      inRequest(500, 'PATCH /bots/:id', () => patient.query('UPDATE bots SET balance = 0 WHERE id = $1', [2])),
    );
    const err = outcome.error as { code: string; details: Record<string, unknown> };
    assert.equal(err.code, 'DEPENDENCY_TIMEOUT');
    assert.equal(err.details.phase, 'lock', 'lock_timeout is capped under the statement budget');
    assertTookLessThan(outcome, 500 + 250, 'ended by the capped lock_timeout');
  } finally {
    await locker.query('ROLLBACK');
    await locker.end();
    await patient.close();
  }
});

test('a transaction that times out leaves no session idle in transaction', async () => {
  const outcome = await timed(() =>
    inRequest(600, 'POST /bots/rebalance', () =>
      db.tx(async (t) => {
        await t.query('UPDATE bots SET balance = balance + 1 WHERE id = 3');
        await t.query('SELECT pg_sleep(5)');
      }),
    ),
  );
  const code = (outcome.error as { code: string }).code;
  assert.ok(code === 'REQUEST_TIMEOUT' || code === 'DEPENDENCY_TIMEOUT', code);
  assertTookLessThan(outcome, 600 + 250, 'ended by the deadline');
  assert.ok((await waitFor(async () => db.stats().inUse === 0, 2000)) >= 0);
  assert.equal(await sessions('idle in transaction'), 0);
  assert.equal(await sessions('idle in transaction (aborted)'), 0);
  const { rows } = await admin.query<{ balance: number }>('SELECT balance FROM bots WHERE id = 3');
  assert.equal(rows[0]?.balance, 0, 'the update was rolled back');
});

test('a transaction body that ignores the deadline is still ended and rolled back', async () => {
  const lateQueryTried = latch();
  const outcome = await timed(() =>
    inRequest(300, 'POST /bots/slow-body', () =>
      db.tx(async (t) => {
        await t.query('UPDATE bots SET balance = 99 WHERE id = 4');
        await new Promise((r) => setTimeout(r, 800));
        try {
          await t.query('UPDATE bots SET balance = 100 WHERE id = 4');
        } finally {
          lateQueryTried.open();
        }
      }),
    ),
  );
  assert.equal((outcome.error as { code: string }).code, 'REQUEST_TIMEOUT');
  assertTookLessThan(outcome, 300 + 250, 'ended by the deadline');
  await waitFor(async () => db.stats().inUse === 0, 2000);
  assert.equal(await sessions('idle in transaction'), 0);
  const { rows } = await admin.query<{ balance: number }>('SELECT balance FROM bots WHERE id = 4');
  assert.equal(rows[0]?.balance, 0);
  // The late query of the abandoned body is refused, never run on a connection someone else has.
  await lateQueryTried.opened;
  const after = await admin.query<{ balance: number }>('SELECT balance FROM bots WHERE id = 4');
  assert.equal(after.rows[0]?.balance, 0);
});

test('a thrown error rolls the transaction back and the connection returns to the pool', async () => {
  await assert.rejects(
    db.tx(async (t) => {
      await t.query('UPDATE bots SET name = $1 WHERE id = 5', ['renamed']);
      throw new Error('business rule failed');
    }),
    /business rule failed/,
  );
  const { rows } = await db.query<{ name: string }>('SELECT name FROM bots WHERE id = 5');
  assert.equal(rows[0]?.name, 'bot 5');
  assert.equal(await sessions('idle in transaction'), 0);
  const committed = await db.tx(async (t) => {
    await t.query('UPDATE bots SET name = $1 WHERE id = 5', ['renamed']);
    return (await t.query<{ name: string }>('SELECT name FROM bots WHERE id = 5')).rows[0]?.name;
  });
  assert.equal(committed, 'renamed');
});

test('a retryable transaction is run again after a serialization failure; a non-retryable one answers CONFLICT', async () => {
  let attempts = 0;
  const result = await inRequest(3000, 'POST /transfer', () =>
    db.tx(
      async (t) => {
        attempts++;
        if (attempts === 1) {
          // A real serialization failure: raised by the server with SQLSTATE 40001.
          await t.query(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`);
        }
        return (await t.query<{ n: number }>('SELECT 42 AS n')).rows[0]?.n;
      },
      { retryable: true, isolation: 'serializable' },
    ),
  );
  assert.equal(result, 42);
  assert.equal(attempts, 2);
  await assert.rejects(
    db.tx(async (t) => {
      await t.query(`DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$`);
    }),
    { code: 'CONFLICT' },
  );
  assert.ok(db.stats().retriedTransactions >= 1);
});

test('application_name names the route and request id while a query runs', async () => {
  const seen = await inRequest(3000, 'GET /bots/:id', async (ctx) => {
    const running = db.query('SELECT pg_sleep(0.3)');
    let name = '';
    await waitFor(async () => {
      name = (await sessionsRunning(admin, testDb.name, 'SELECT pg_sleep(0.3)'))[0]?.applicationName ?? '';
      return name !== '';
    }, 1000);
    await running;
    return { name, requestId: ctx.requestId };
  });
  assert.ok(seen.name.startsWith('hangproof GET /bots/:id '), seen.name);
  assert.ok(seen.requestId.startsWith(seen.name.split(' ').at(-1) ?? 'x'));
});

test('a server-side cursor read in batches inside tx() gets every row, each FETCH under the guard', async () => {
  const batches = await inRequest(5_000, 'cursor-read', () =>
    db.tx(async (t) => {
      await t.query('DECLARE bots_cur NO SCROLL CURSOR FOR SELECT id FROM bots WHERE id > $1 ORDER BY id', [5]);
      const sizes: number[] = [];
      for (;;) {
        const { rows } = await t.query<{ id: number }>('FETCH FORWARD 4 FROM bots_cur');
        if (rows.length === 0) break;
        sizes.push(rows.length);
      }
      return sizes;
    }),
  );
  assert.deepEqual(batches, [4, 4, 4, 3]);
});

test('a cursor whose batches outlast the deadline ends by it: the FETCH is cancelled and nothing stays open', async () => {
  const outcome = await timed(() =>
    inRequest(800, 'cursor-slow', () =>
      db.tx(async (t) => {
        // Each row takes 50 ms to produce: a batch of 10 takes about 500 ms.
        await t.query('DECLARE slow_cur NO SCROLL CURSOR FOR SELECT g, pg_sleep(0.05) FROM generate_series(1, 100) g');
        let read = 0;
        for (;;) {
          const { rows } = await t.query('FETCH FORWARD 10 FROM slow_cur');
          if (rows.length === 0) return read;
          read += rows.length;
        }
      }),
    ),
  );
  assert.ok(outcome.error !== undefined, 'the read did not end in an error');
  assert.match(String((outcome.error as { code?: string }).code), /^(REQUEST_TIMEOUT|DEPENDENCY_TIMEOUT)$/);
  assertTookLessThan(outcome, 800 + 250, 'ended in time');
  const cleared = await waitFor(
    async () => (await sessions('active')) === 0 && (await sessions('idle in transaction')) === 0,
    1_000,
  );
  assert.ok(cleared >= 0, 'a FETCH or its transaction was still open on the server 1 s later');
});
