import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isHangproofError, step } from 'hangproof';
import { createDatabase, type Database, LOCK_WAIT_EVENT, type LockWait } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';
import { isEndOfKnownWait, type KnownWait, lockWaitMessage } from '../../src/pg/lock-evidence.js';
import { captureLogger, inRequest, sessionsNamed, waitFor } from './helpers.js';

let testDb: TestDatabase;
let db: Database;
const log = captureLogger();

before(async () => {
  testDb = await createTestDatabase();
  db = createDatabase({
    connectionString: testDb.url,
    max: 3,
    statementTimeoutMs: 3_000,
    lockTimeoutMs: 1_200,
    idleInTransactionTimeoutMs: 20_000,
    lockEvidence: { waitThresholdMs: 150, minIntervalMs: 100 },
    logger: log.logger,
  });
  await db.query('CREATE TABLE orders (id int PRIMARY KEY, bot_id int NOT NULL)');
  await db.query('CREATE TABLE bots (id int PRIMARY KEY, name text NOT NULL, paused boolean NOT NULL DEFAULT false)');
  await db.query("INSERT INTO bots SELECT g, 'bot-' || g FROM generate_series(1, 20) g");
  await db.query('INSERT INTO orders SELECT g, 1 + g % 20 FROM generate_series(1, 100) g');
});

after(async () => {
  await db.close();
  await testDb.drop();
});

/** A session outside the service, as an operator's psql running a migration by hand. */
async function migrationSession(): Promise<{ client: pg.Client; pid: number; lockedAt: number }> {
  const client = new pg.Client({
    connectionString: testDb.url,
    application_name: 'hand-run migration',
    connectionTimeoutMillis: 5_000,
    query_timeout: 10_000,
  });
  client.on('error', () => {});
  await client.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
  return { client, pid, lockedAt: 0 };
}

/** The lock_timeout line of the evidence module for `route`, once it has been written (bounded poll). */
async function lockTimeoutLine(route: string): Promise<Record<string, unknown>> {
  const find = (): Record<string, unknown> | undefined =>
    log.records().find((r) => r.event === LOCK_WAIT_EVENT && r.outcome === 'lock_timeout' && r.route === route);
  const took = await waitFor(async () => find() !== undefined, 5_000);
  assert.ok(took >= 0, `no ${LOCK_WAIT_EVENT} line for ${route}: ${log.lines.slice(-5).join('')}`);
  return find() as Record<string, unknown>;
}

test('a statement stopped by lock_timeout behind a hand-run migration is logged with the relation, the blocker idle in its transaction and its age', async () => {
  const migration = await migrationSession();
  try {
    await migration.client.query('BEGIN');
    await migration.client.query('LOCK TABLE bots IN ACCESS EXCLUSIVE MODE');
    const lockedAt = performance.now();

    const before = db.stats().lockWaits;
    await assert.rejects(
      inRequest(5_000, 'GET /bots', () => db.query('SELECT count(*) FROM bots WHERE NOT paused')),
      (err: unknown) => isHangproofError(err) && err.code === 'DEPENDENCY_TIMEOUT' && err.details.phase === 'lock',
    );

    const line = await lockTimeoutLine('GET /bots');
    assert.equal(line.level, 40, 'a warn line');
    assert.equal(line.relation, 'bots');
    assert.equal(line.pool, 'postgres');
    assert.equal(line.sql, 'SELECT count(*) FROM bots WHERE NOT paused');
    const blockers = line.blockers as Record<string, unknown>[];
    assert.equal(blockers.length, 1);
    const blocker = blockers[0] as Record<string, unknown>;
    assert.equal(blocker.pid, migration.pid);
    assert.equal(blocker.applicationName, 'hand-run migration');
    assert.equal(blocker.state, 'idle in transaction');
    assert.equal(blocker.query, 'LOCK TABLE bots IN ACCESS EXCLUSIVE MODE');
    // The capture ran while the statement waited, at least the threshold after the lock was taken.
    const openMs = performance.now() - lockedAt;
    assert.ok(
      (blocker.xactAgeMs as number) >= 150 && (blocker.xactAgeMs as number) <= openMs + 1_000,
      `transaction age ${blocker.xactAgeMs} ms (lock held for ${Math.round(openMs)} ms)`,
    );
    assert.match(String(line.msg), /lock wait on bots, blocked by pid \d+ \(hand-run migration, idle in transaction\)/);

    const after = db.stats().lockWaits;
    assert.equal(after.lockTimeouts, before.lockTimeouts + 1);
    assert.ok(after.captured > before.captured, 'the wait was captured while it lasted');
    assert.equal(after.recent[0]?.relation, 'bots');
    assert.equal(after.recent[0]?.route, 'GET /bots');
  } finally {
    await migration.client.query('ROLLBACK').catch(() => {});
    await migration.client.end();
  }
});

test('when a statement reads several tables and only the second is locked, the evidence names the locked one', async () => {
  const migration = await migrationSession();
  try {
    await migration.client.query('BEGIN');
    await migration.client.query('LOCK TABLE bots IN ACCESS EXCLUSIVE MODE');
    await assert.rejects(
      inRequest(5_000, 'GET /orders', () =>
        db.query('SELECT o.id, b.name FROM orders o JOIN bots b ON b.id = o.bot_id WHERE o.id <= $1', [10]),
      ),
      (err: unknown) => isHangproofError(err) && err.details.phase === 'lock',
    );
    const line = await lockTimeoutLine('GET /orders');
    assert.equal(line.relation, 'bots', 'not orders, the first table of the statement');
    assert.equal((line.blockers as Record<string, unknown>[])[0]?.pid, migration.pid);
  } finally {
    await migration.client.query('ROLLBACK').catch(() => {});
    await migration.client.end();
  }
});

test('the captures of one incident share one connection of their own, which closes with the pool', async () => {
  const incidentLog = captureLogger();
  const own = createDatabase({
    connectionString: testDb.url,
    max: 2,
    lockTimeoutMs: 1_000,
    applicationName: 'one-side',
    lockEvidence: { waitThresholdMs: 100, minIntervalMs: 100 },
    logger: incidentLog.logger,
  });
  const migration = await migrationSession();
  const sideSessions = (): Promise<number> => sessionsNamed(migration.client, 'one-side lock-evidence');
  try {
    await migration.client.query('BEGIN');
    await migration.client.query('LOCK TABLE bots IN ACCESS EXCLUSIVE MODE');
    for (const route of ['GET /bots/1', 'GET /bots/2']) {
      await assert.rejects(
        inRequest(5_000, route, () => own.query('SELECT name FROM bots WHERE id = $1', [1])),
        (err: unknown) => isHangproofError(err) && err.details.phase === 'lock',
      );
    }
    const stats = own.stats().lockWaits;
    assert.ok(stats.captured >= 2, `each wait captured while it lasted (${stats.captured} captured)`);
    assert.equal(stats.connectionsOpened, 1, 'one connection for every capture of the incident');
    assert.equal(await sideSessions(), 1, 'it stays open between captures');
    const lines = incidentLog.records().filter((r) => r.event === LOCK_WAIT_EVENT && r.outcome === 'lock_timeout');
    assert.deepEqual(
      lines.map((r) => [r.route, r.relation]),
      [
        ['GET /bots/1', 'bots'],
        ['GET /bots/2', 'bots'],
      ],
    );
  } finally {
    await migration.client.query('ROLLBACK').catch(() => {});
    await own.close();
  }
  try {
    const gone = await waitFor(async () => (await sideSessions()) === 0, 2_000);
    assert.ok(gone >= 0, 'the capture connection is gone once the pool is closed');
  } finally {
    await migration.client.end();
  }
});

test('a row lock held by another request of the service names that request route and step as the blocker', async () => {
  let letGo: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  let locked: () => void = () => {};
  const rowLocked = new Promise<void>((resolve) => {
    locked = resolve;
  });
  // The blocker: a request that updates a row, then waits inside its transaction (a slow call
  // made while holding the row, say).
  const blocker = inRequest(10_000, 'POST /bots/:id/pause', () =>
    db.tx(async (t) => {
      await t.query('UPDATE bots SET paused = true WHERE id = $1', [7]);
      locked();
      await step('notify broker', () => held);
    }),
  );
  try {
    await rowLocked;
    await assert.rejects(
      inRequest(5_000, 'PUT /bots/:id', () => db.query('UPDATE bots SET name = $2 WHERE id = $1', [7, 'renamed'])),
      (err: unknown) => isHangproofError(err) && err.details.phase === 'lock',
    );
    const line = await lockTimeoutLine('PUT /bots/:id');
    const seen = `the line: ${JSON.stringify(line)}; stats: ${JSON.stringify(db.stats().lockWaits)}; log: ${log.lines.filter((l) => l.includes('lock')).join('')}`;
    assert.equal(line.relation, 'bots', seen);
    const b = (line.blockers as Record<string, unknown>[])[0] as Record<string, unknown>;
    assert.ok(b !== undefined, seen);
    assert.equal(b.route, 'POST /bots/:id/pause');
    assert.equal(b.step, 'notify broker');
    assert.equal(b.state, 'idle in transaction');
    assert.equal(b.query, 'UPDATE bots SET paused=true WHERE id=?');
  } finally {
    letGo();
    await blocker;
  }
});

test('no bound value of the waiting or the blocking statement appears in the evidence', () => {
  for (const line of log.lines.filter((l) => l.includes(LOCK_WAIT_EVENT))) {
    assert.ok(!line.includes('renamed'), `leaked in: ${line}`);
  }
});

test("a capture that finds a statement's wait ending keeps the blockers an earlier capture of that statement saw", () => {
  const blocked: LockWait = {
    at: '2026-12-06T10:00:00.000Z',
    pid: 42,
    relation: 'bots',
    lockType: 'transactionid',
    mode: 'ShareLock',
    runningMs: 300,
    route: 'PUT /bots/:id',
    requestId: 'r1',
    step: undefined,
    blockers: [
      {
        pid: 7,
        applicationName: 'hangproof POST /bots/:id/pause r0',
        route: 'POST /bots/:id/pause',
        requestId: 'r0',
        step: 'notify broker',
        state: 'idle in transaction',
        query: 'UPDATE bots SET paused=true WHERE id=?',
        xactAgeMs: 400,
        waitEventType: 'Client',
      },
    ],
  };
  const start = '2026-12-06 10:00:00.1+00';
  const earlier: KnownWait = { wait: blocked, atMs: 0, statementStart: start };
  assert.equal(isEndOfKnownWait(0, start, earlier), true, 'the same statement, its blockers gone: keep the earlier');
  assert.equal(isEndOfKnownWait(1, start, earlier), false, 'a capture that names a blocker is news');
  assert.equal(isEndOfKnownWait(0, '2026-12-06 10:00:01.5+00', earlier), false, 'a later statement of the backend');
  assert.equal(isEndOfKnownWait(0, start, undefined), false, 'nothing seen before');
  assert.equal(isEndOfKnownWait(0, null, { ...earlier, statementStart: null }), false, 'no statement start to match');
  assert.equal(
    isEndOfKnownWait(0, start, { ...earlier, wait: { ...blocked, blockers: [] } }),
    false,
    'the earlier capture knew no blocker either',
  );
});

test('a wait no capture saw is logged as not seen, never as a lock of some other kind', () => {
  const wait: LockWait = {
    at: '2026-12-07T10:00:00.000Z',
    pid: 42,
    relation: null,
    lockType: null,
    mode: null,
    runningMs: null,
    route: 'GET /bots/:id',
    requestId: 'r1',
    step: undefined,
    blockers: [],
  };
  assert.equal(lockWaitMessage(wait), 'postgres lock wait, ended before a capture could see what it waited for');
  assert.equal(
    lockWaitMessage({ ...wait, lockType: 'advisory', mode: 'ExclusiveLock' }),
    'postgres lock wait on a lock of type advisory',
  );
  assert.equal(
    lockWaitMessage({ ...wait, lockType: 'relation', relation: 'bots', mode: 'AccessShareLock' }),
    'postgres lock wait on bots',
  );
});
