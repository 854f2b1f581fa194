import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { captureLogger, inRequest, timed, waitFor } from './helpers.js';

let testDb: TestDatabase;
let db: Database;
const log = captureLogger();

before(async () => {
  testDb = await createTestDatabase();
  db = createDatabase({ connectionString: testDb.url, max: 2, acquireTimeoutMs: 300, logger: log.logger });
});

after(async () => {
  await db.close();
  await testDb.drop();
});

test('an exhausted pool fails further requests fast with phase acquire, logs the holders, and recovers', async () => {
  const slow = [1, 2].map((i) => inRequest(5000, `GET /report/${i}`, () => db.query('SELECT pg_sleep(1.5)')));
  assert.ok((await waitFor(async () => db.stats().inUse === 2, 1000)) >= 0, 'both connections are held');

  const outcome = await timed(() => inRequest(2000, 'GET /bots', () => db.query('SELECT 1')));
  const err = outcome.error as { code: string; details: Record<string, unknown> };
  assert.equal(err.code, 'DEPENDENCY_TIMEOUT');
  assert.equal(err.details.phase, 'acquire');
  assert.equal(err.details.dependency, 'postgres');
  assertTookLessThan(outcome, 300 + 250, 'failed at acquireTimeoutMs, not the 2 s budget');

  const line = log.records().find((r) => r.msg === 'postgres pool acquire timed out');
  assert.ok(line !== undefined, 'the acquire timeout is logged');
  const holders = line.holders as { route: string; heldMs: number; pid: number }[];
  assert.deepEqual(holders.map((h) => h.route).sort(), ['GET /report/1', 'GET /report/2']);
  assert.ok(holders.every((h) => typeof h.pid === 'number' && h.heldMs >= 0));
  assert.equal(line.route, 'GET /bots');

  await Promise.all(slow);
  assert.equal(db.stats().inUse, 0);
  const { rows } = await inRequest(2000, 'GET /bots', () => db.query<{ n: number }>('SELECT 1 AS n'));
  assert.equal(rows[0]?.n, 1);
  const stats = db.stats();
  assert.equal(stats.timeouts.acquire, 1);
  assert.ok(stats.acquireWaitMs.samples >= 3);
});

test('a waiter with less budget than acquireTimeoutMs gives up at its own deadline', async () => {
  // acquireTimeoutMs far above the waiter's budget, so the bound below tells the two apart.
  const patient = createDatabase({ connectionString: testDb.url, max: 2, acquireTimeoutMs: 2_000, logger: log.logger });
  try {
    const slow = inRequest(5000, 'GET /hog', () =>
      Promise.all([patient.query('SELECT pg_sleep(1)'), patient.query('SELECT pg_sleep(1)')]),
    );
    assert.ok((await waitFor(async () => patient.stats().inUse === 2, 1000)) >= 0, 'both connections are held');
    const outcome = await timed(() => inRequest(120, 'GET /short', () => patient.query('SELECT 1')));
    const code = (outcome.error as { code: string }).code;
    assert.ok(code === 'DEPENDENCY_TIMEOUT' || code === 'REQUEST_TIMEOUT', code);
    assertTookLessThan(outcome, 120 + 250, 'gave up in time');
    assert.equal(patient.stats().waiting, 0, 'a waiter that gave up leaves the queue at once');
    await slow;
  } finally {
    await patient.close();
  }
});

test('a connection held past leakDetectionMs is logged with its holder, and its return is logged', async () => {
  const leaky = createDatabase({ connectionString: testDb.url, max: 1, leakDetectionMs: 200, logger: log.logger });
  try {
    await inRequest(3000, 'POST /leaky', async (ctx) => {
      const end = ctx.beginStep('load-bots');
      await leaky.tx(async (t) => {
        await t.query('SELECT pg_sleep(0.6)');
      });
      end(true);
    });
    const warn = log
      .records()
      .find((r) => r.msg === 'postgres connection held longer than the leak detection threshold');
    assert.ok(warn !== undefined);
    const holder = warn.holder as { route: string; step: string };
    assert.equal(holder.route, 'POST /leaky');
    assert.equal(holder.step, 'load-bots');
    assert.ok(log.records().some((r) => r.msg === 'postgres connection returned after a leak warning'));
    assert.equal(leaky.stats().leaksDetected, 1);
  } finally {
    await leaky.close();
  }
});

test('a client checked out of dangerouslyRawPool is a holder until its release, and is logged as a leak with its route', async () => {
  const leaky = createDatabase({ connectionString: testDb.url, max: 2, leakDetectionMs: 200, logger: log.logger });
  try {
    const client = await inRequest(3000, 'GET /export', async () => leaky.dangerouslyRawPool.connect());
    assert.equal(leaky.stats().holders[0]?.route, 'GET /export');
    const leaked = (): boolean =>
      log
        .records()
        .some(
          (r) =>
            r.msg === 'postgres connection held longer than the leak detection threshold' &&
            (r.holder as { route?: string }).route === 'GET /export',
        );
    await waitFor(async () => leaked(), 3_000);
    assert.ok(leaked(), 'the leak line names the route that took the raw client');
    client.release();
    assert.equal(leaky.stats().holders.length, 0, 'its release ends the holding');
  } finally {
    await leaky.close();
  }
});

test('dangerouslyRawPool.connect() on an exhausted pool fails by the acquire bound, then the late connection goes back', async () => {
  const raw = createDatabase({ connectionString: testDb.url, max: 1, acquireTimeoutMs: 300, logger: log.logger });
  try {
    const held = await raw.dangerouslyRawPool.connect();
    const promised = await timed(() => inRequest(5000, 'GET /export', () => raw.dangerouslyRawPool.connect()));
    const err = promised.error as { code: string; details: Record<string, unknown> };
    assert.equal(err?.code, 'DEPENDENCY_TIMEOUT', String(promised.error));
    assert.equal(err.details.phase, 'acquire');
    assertTookLessThan(promised, 300 + 250, 'waited acquireTimeoutMs, not the 5 s budget');

    // The callback form answers by the same bound.
    const called = await timed(
      () =>
        new Promise((resolve, reject) =>
          raw.dangerouslyRawPool.connect((e, client) => (e ? reject(e) : resolve(client))),
        ),
    );
    assert.equal((called.error as { code?: string })?.code, 'DEPENDENCY_TIMEOUT');
    assertTookLessThan(called, 300 + 250, 'the callback form waited acquireTimeoutMs');

    // The checkouts left behind in pg-pool's queue get the connection and give it straight back.
    held.release();
    const next = await timed(() => raw.dangerouslyRawPool.connect());
    assert.ok(next.value !== undefined, String(next.error));
    next.value.release();
    assert.equal(raw.stats().holders.length, 0);
  } finally {
    await raw.close();
  }
});

test('the readiness check answers quickly and stats describe the pool', async () => {
  await db.readinessCheck();
  const s = db.stats();
  assert.equal(s.max, 2);
  assert.equal(s.inUse, 0);
  assert.ok(s.total >= 1 && s.idle >= 1);
});

test('options are validated when the database is created, naming the value', () => {
  assert.throws(() => createDatabase({ connectionString: testDb.url, max: 0 }), RangeError);
  assert.throws(() => createDatabase({ connectionString: testDb.url, acquireTimeoutMs: Number.NaN }), TypeError);
  assert.throws(() => createDatabase({ connectionString: '' }), TypeError);
});

test('a refused connection is DEPENDENCY_UNAVAILABLE with phase connect', async () => {
  const url = new URL(testDb.url);
  url.port = '1';
  const dead = createDatabase({ connectionString: url.toString(), logger: log.logger });
  try {
    const outcome = await timed(() => inRequest(2000, 'GET /x', () => dead.query('SELECT 1')));
    const err = outcome.error as { code: string; details: Record<string, unknown> };
    assert.equal(err.code, 'DEPENDENCY_UNAVAILABLE');
    assert.equal(err.details.phase, 'connect');
    await assert.rejects(dead.readinessCheck(), { code: 'DEPENDENCY_UNAVAILABLE' });
    const refused = log.records().filter((r) => r.event === 'pg.unavailable' && r.port === 1);
    assert.ok(refused.length >= 1);
    assert.ok(refused.every((r) => r.reason === 'refused' && r.hostname === url.hostname));
  } finally {
    await dead.close();
  }
});
