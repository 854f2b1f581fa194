import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDatabase } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { adminClient, captureLogger, inRequest, sessionsNamed, timed, waitFor } from './helpers.js';

// A released connection stays checked out of pg's pool, on the guard's idle stack, until the next
// query takes it or it has sat there for half of idleTimeoutMs (at most 1 s). These tests show
// what a user relies on around it: idle connections still close, a raw checkout still gets one,
// and a connection the server ended while it sat there is never handed to a query.

let testDb: TestDatabase;
const log = captureLogger();

before(async () => {
  testDb = await createTestDatabase();
});

after(async () => {
  await testDb.drop();
});

test('the next query runs on the connection the last one released, and an idle one still closes by idleTimeoutMs', async () => {
  const db = createDatabase({
    connectionString: testDb.url,
    max: 3,
    idleTimeoutMs: 300,
    applicationName: 'idle-stack-a',
    logger: log.logger,
  });
  try {
    const pids = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const { rows } = await inRequest(2_000, 'GET /pid', () =>
        db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'),
      );
      pids.add(rows[0]?.pid as number);
    }
    assert.equal(pids.size, 1, 'five queries in a row took one connection');
    assert.equal(db.stats().total, 1);
    assert.equal(db.stats().idle, 1, 'the kept connection is counted as idle');
    // Back to pg's pool after 150 ms on the stack, closed 300 ms later: well within 3 s.
    const admin = await adminClient(testDb.url);
    try {
      const tookMs = await waitFor(async () => (await sessionsNamed(admin, 'idle-stack-a')) === 0, 3_000);
      assert.ok(tookMs >= 0, 'the idle connection was closed');
      assert.equal(db.stats().total, 0);
    } finally {
      await admin.end();
    }
  } finally {
    await db.close();
  }
});

test('a raw checkout on a pool whose only connection sits on the idle stack gets that connection at once', async () => {
  const db = createDatabase({
    connectionString: testDb.url,
    max: 1,
    acquireTimeoutMs: 500,
    idleTimeoutMs: 60_000,
    logger: log.logger,
  });
  try {
    const { rows } = await inRequest(2_000, 'GET /pid', () =>
      db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'),
    );
    const raw = await timed(() => inRequest(2_000, 'GET /export', () => db.dangerouslyRawPool.connect()));
    assert.equal(raw.error, undefined, String(raw.error));
    const client = raw.value;
    assert.ok(client !== undefined);
    try {
      assertTookLessThan(raw, 250, 'the raw checkout did not wait');
      const again = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      assert.equal(again.rows[0]?.pid, rows[0]?.pid, 'the same connection, no new one past max');
    } finally {
      client.release();
    }
  } finally {
    await db.close();
  }
});

test('a connection the server ended while it sat on the idle stack is not given to the next query', async () => {
  const db = createDatabase({
    connectionString: testDb.url,
    max: 1,
    idleTimeoutMs: 60_000,
    logger: log.logger,
  });
  const admin = await adminClient(testDb.url);
  try {
    const { rows } = await inRequest(2_000, 'GET /pid', () =>
      db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'),
    );
    const pid = rows[0]?.pid as number;
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    // The client learns of it from its socket (its error is logged): the next query must not be
    // sent on it.
    const noticed = await waitFor(async () => log.records().some((r) => r.msg === 'postgres connection error'), 3_000);
    assert.ok(noticed >= 0, 'the client saw its session end');
    const next = await timed(() =>
      inRequest(2_000, 'GET /pid', () => db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')),
    );
    assert.equal(next.error, undefined, `the query failed: ${String(next.error)}`);
    assert.notEqual(next.value?.rows[0]?.pid, pid, 'it ran on a new connection');
  } finally {
    await admin.end();
    await db.close();
  }
});
