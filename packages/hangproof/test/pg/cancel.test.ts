import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import type pg from 'pg';
import { assertTookLessThan } from '../support/loop-stall.ts';
import {
  adminClient,
  captureLogger,
  inRequest,
  queryAbandonedWhenRunning,
  sessionsRunning,
  timed,
  waitFor,
} from './helpers.js';

let testDb: TestDatabase;
let db: Database;
let admin: pg.Client;
const log = captureLogger();

before(async () => {
  testDb = await createTestDatabase();
  db = createDatabase({ connectionString: testDb.url, max: 4, logger: log.logger, statementTimeoutMs: 60_000 });
  admin = await adminClient(testDb.url);
});

after(async () => {
  await db.close();
  await admin.end();
  await testDb.drop();
});

async function sleepingBackends(): Promise<number[]> {
  return (await sessionsRunning(admin, testDb.name, 'SELECT pg_sleep(30)')).map((s) => s.pid);
}

test('a 30 s query in a request with a 1 s deadline fails by the deadline and is no longer running on the server', async (t) => {
  // When the deadline fired, from the start: tells a late timer from a late answer if this fails.
  let deadlineFiredMs = Number.NaN;
  const started = performance.now();
  const outcome = await timed(() =>
    inRequest(1000, 'GET /slow', async (ctx) => {
      ctx.watchAbort(() => {
        deadlineFiredMs = performance.now() - started;
      });
      return db.query('SELECT pg_sleep(30)');
    }),
  );
  const code = (outcome.error as { code?: string } | undefined)?.code;
  const deadline = Number.isNaN(deadlineFiredMs)
    ? 'the deadline had not fired'
    : `the deadline fired at ${Math.round(deadlineFiredMs)} ms`;
  // Waited for before any assertion: a failure here must not leave the statement and its cancel
  // to the next test, whose cancel count they would change.
  const goneAfter = await waitFor(async () => (await sleepingBackends()).length === 0, 1000);
  const inUseBackAfter = await waitFor(async () => db.stats().inUse === 0, 2000);
  t.diagnostic(
    `caller answered after ${Math.round(outcome.ms)} ms (${code}; ${deadline}; loop stalled ${Math.round(outcome.stallMs)} ms); backend idle ${Math.round(goneAfter)} ms later`,
  );
  assert.ok(code === 'REQUEST_TIMEOUT' || code === 'DEPENDENCY_TIMEOUT', `code ${code}`);
  assertTookLessThan(outcome, 1250, `answered in time (${code}; ${deadline})`);
  assert.ok(goneAfter >= 0, 'the backend still runs pg_sleep(30) 1 s after the deadline');
  assert.ok(inUseBackAfter >= 0, 'in-use returns to 0');
});

test('when the request aborts mid-query the statement is cancelled on the server and the connection destroyed', async (t) => {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = db.stats();
    const { outcome, abortedAt } = await queryAbandonedWhenRunning(
      async () => (await sleepingBackends()).length > 0,
      () => db.query('SELECT pg_sleep(30)'),
    );
    assert.equal((outcome.error as { code?: string }).code, 'CLIENT_CLOSED_REQUEST');
    const answeredMs = performance.now() - abortedAt;
    assert.ok(answeredMs < 250, `the caller was answered ${Math.round(answeredMs)} ms after the abort, not at once`);
    const ms = await waitFor(async () => (await sleepingBackends()).length === 0, 1000);
    assert.ok(ms >= 0, 'the backend still runs the query 1 s after the abort');
    samples.push(performance.now() - abortedAt);
    // The cancel is counted once the server has closed the cancel's own connection, which can
    // come a moment after the backend stopped: wait for the count, then check it is exactly one.
    await waitFor(async () => {
      const { inUse, cancelsSent } = db.stats();
      return inUse === 0 && cancelsSent > before.cancelsSent;
    }, 2000);
    const now = db.stats();
    assert.equal(now.cancelsSent, before.cancelsSent + 1);
    assert.equal(now.discarded, before.discarded + 1);
  }
  t.diagnostic(
    `abort -> backend no longer running the query (10 ms polling on another connection): ${samples.map((s) => Math.round(s)).join(', ')} ms`,
  );
  const { rows } = await db.query<{ n: number }>('SELECT 1 AS n');
  assert.equal(rows[0]?.n, 1, 'the pool keeps working');
});

test('the server-side statement timeout ends a query outside any request with DEPENDENCY_TIMEOUT phase query', async () => {
  const short = createDatabase({ connectionString: testDb.url, max: 1, statementTimeoutMs: 200, logger: log.logger });
  try {
    const outcome = await timed(() => short.query('SELECT pg_sleep(30)'));
    assert.equal((outcome.error as { code: string }).code, 'DEPENDENCY_TIMEOUT');
    assert.equal((outcome.error as { details: { phase: string } }).details.phase, 'query');
    assertTookLessThan(outcome, 200 + 250 + 200, 'ended in time');
    // A server-side timeout leaves the connection clean: it goes back to the pool and works.
    const { rows } = await short.query<{ n: number }>('SELECT 1 AS n');
    assert.equal(rows[0]?.n, 1);
  } finally {
    await short.close();
  }
});
