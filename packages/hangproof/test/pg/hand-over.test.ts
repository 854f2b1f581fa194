/**
 * A connection released while queries wait for one passes straight to the oldest of them, as
 * pg-pool passes one to its own queue, without going back to pg-pool first; and never when that
 * would keep a connection past its lifetime or starve a raw checkout waiting inside pg-pool.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDatabase } from 'hangproof/pg';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { useTestDatabase } from '../support/test-database.js';
import { captureLogger, inRequest, timed, waitFor } from './helpers.js';

const testDb = useTestDatabase();
const log = captureLogger();

for (const maxLifetimeMs of [undefined, 0]) {
  test(`queries that wait for a connection get one passed on by each release, with no new connection (maxLifetimeMs ${maxLifetimeMs ?? 'default'})`, async () => {
    const db = createDatabase({
      connectionString: testDb.url,
      max: 2,
      acquireTimeoutMs: 5_000,
      ...(maxLifetimeMs === undefined ? {} : { maxLifetimeMs }),
      logger: log.logger,
    });
    try {
      // Warm: both connections open, so every checkout below reuses one.
      await inRequest(5_000, 'GET /warm', () => Promise.all([db.query('SELECT 1'), db.query('SELECT 1')]));
      let checkouts = 0;
      db.dangerouslyRawPool.on('acquire', () => checkouts++);
      const pids = await inRequest(10_000, 'GET /burst', () =>
        Promise.all(
          Array.from({ length: 40 }, () =>
            db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, pg_sleep(0.005)').then((r) => r.rows[0]?.pid),
          ),
        ),
      );
      assert.equal(pids.length, 40, 'every query answered');
      assert.ok(new Set(pids).size <= 2, `the 40 queries ran on the pool's 2 connections: ${[...new Set(pids)]}`);
      assert.ok(checkouts < 40, `pg-pool saw ${checkouts} checkouts for 40 queries: the rest were passed on`);
      const stats = db.stats();
      assert.deepEqual(
        {
          total: stats.total,
          idle: stats.idle,
          inUse: stats.inUse,
          waiting: stats.waiting,
          holders: stats.holders.length,
        },
        { total: 2, idle: 2, inUse: 0, waiting: 0, holders: 0 },
        'every connection is back in the pool and nobody holds one',
      );
    } finally {
      await db.close();
    }
  });
}

test('a connection past its lifetime is retired even while queries keep waiting for one', async () => {
  const db = createDatabase({
    connectionString: testDb.url,
    max: 2,
    maxLifetimeMs: 1_000,
    acquireTimeoutMs: 5_000,
    logger: log.logger,
  });
  try {
    const first = new Set<number>();
    const seen = new Set<number>();
    let retired = false;
    const deadline = performance.now() + 5_000;
    // Six workers on two connections: a query always waits, so every release could be passed on.
    const worker = async (): Promise<void> => {
      while (!retired && performance.now() < deadline) {
        const { rows } = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, pg_sleep(0.002)');
        const pid = rows[0]?.pid ?? 0;
        if (first.size < 2 && !seen.has(pid)) first.add(pid);
        seen.add(pid);
        if (!first.has(pid)) retired = true;
      }
    };
    await inRequest(10_000, 'GET /steady', () => Promise.all(Array.from({ length: 6 }, worker)));
    assert.ok(retired, `a connection opened after the first two answered within 5 s (pids seen: ${[...seen]})`);
  } finally {
    await db.close();
  }
});

test('a raw checkout waiting inside pg-pool gets the next released connection, ahead of queued queries', async () => {
  const db = createDatabase({ connectionString: testDb.url, max: 1, acquireTimeoutMs: 5_000, logger: log.logger });
  try {
    await inRequest(5_000, 'GET /warm', () => db.query('SELECT 1'));
    // 20 queries of 60 ms on one connection: the last of them waits more than a second.
    const queued = inRequest(10_000, 'GET /queue', () =>
      Promise.all(Array.from({ length: 20 }, () => db.query('SELECT pg_sleep(0.06)'))),
    );
    assert.ok(
      (await waitFor(async () => db.stats().inUse === 1 && db.stats().waiting >= 15, 2_000)) >= 0,
      'the queries are queued',
    );
    const raw = await timed(() => db.dangerouslyRawPool.connect());
    assert.ok(raw.value !== undefined, `the raw checkout got a connection: ${String(raw.error)}`);
    raw.value.release();
    assertTookLessThan(raw, 400, 'the raw checkout waited for one query, not the whole queue');
    assert.equal((await queued).length, 20, 'the queued queries all answered after it');
  } finally {
    await db.close();
  }
});
