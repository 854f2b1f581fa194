import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HangproofError } from 'hangproof';
import { createDependencies, PgSnapshotStore } from 'hangproof/deps';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';
import { waitUntil } from '../support/latch.js';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { inRequest, settle } from './helpers.js';
import { startTestServer, type TestServer } from './servers.js';

let db: TestDatabase;
let pool: pg.Pool;
let server: TestServer;
const deps = createDependencies();

before(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4, connectionTimeoutMillis: 2000 });
  server = await startTestServer();
});

after(async () => {
  await deps.close();
  await server.close();
  await pool.end();
  await db.drop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const unavailable = () => new HangproofError('DEPENDENCY_UNAVAILABLE', { details: { dependency: 'market-data' } });

test('200 concurrent reads of a cold key cause exactly one load', async () => {
  let loads = 0;
  const load = async () => {
    loads++;
    await sleep(50);
    return { price: 42 };
  };
  const results = await Promise.all(
    Array.from({ length: 200 }, () => deps.snapshot('cold-1', load, { freshMs: 10_000, maxStaleMs: 60_000 })),
  );
  assert.equal(loads, 1);
  assert.ok(results.every((r) => r.value.price === 42 && r.warnings.length === 0 && !r.stale));
});

test('a fresh value is served without loading; a stale one is served at once while one refresh runs', async () => {
  let loads = 0;
  let release: () => void = () => {};
  const load = async () => {
    loads++;
    if (loads > 1) await new Promise<void>((r) => (release = r));
    return loads;
  };
  const opts = { freshMs: 300, maxStaleMs: 60_000 };
  assert.equal((await deps.snapshot('swr', load, opts)).value, 1);
  assert.equal((await deps.snapshot('swr', load, opts)).value, 1);
  assert.equal(loads, 1, 'fresh: no load');
  await sleep(300 + 50);
  const started = performance.now();
  const stale = await Promise.all(Array.from({ length: 50 }, () => deps.snapshot('swr', load, opts)));
  // The refresh never ends before release(): a read that waited for it would not be answered at all.
  assert.ok(performance.now() - started < 250, 'stale reads do not wait for the refresh');
  assert.ok(stale.every((r) => r.value === 1 && r.stale && r.warnings.length === 0));
  assert.equal(loads, 2, 'one background refresh for 50 stale reads');
  release();
  // The refresh stores the new value in the promise callbacks that follow the load, all of which
  // run before the next turn of the event loop: wait for that turn, not for a guessed time.
  await new Promise((r) => setImmediate(r));
  const after = await deps.snapshot('swr', load, opts);
  assert.equal(after.value, 2);
  assert.equal(after.stale, false);
});

test('a failing load serves the last good value with a warning naming the dependency', async () => {
  let fail = false;
  const load = async () => {
    if (fail) throw unavailable();
    return 'good';
  };
  const opts = { freshMs: 10, maxStaleMs: 20 };
  assert.equal((await deps.snapshot('fail-1', load, opts)).value, 'good');
  const loadedBy = Date.now();
  fail = true;
  await sleep(30);
  // A timer may fire a millisecond early by the wall clock the age is measured on: bound the age by
  // the wall-clock time that really passed since the good value was stored, not by the timer's 30.
  const askedAt = Date.now();
  const r = await deps.snapshot('fail-1', load, opts);
  assert.equal(r.value, 'good');
  assert.equal(r.stale, true);
  assert.equal(r.warnings.length, 1);
  assert.equal(r.warnings[0]?.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(r.warnings[0]?.dependency, 'market-data');
  assert.ok((r.warnings[0]?.ageMs ?? 0) >= askedAt - loadedBy);
  assert.ok(askedAt - loadedBy >= opts.maxStaleMs, 'the value was past its stale limit when asked');
});

test('a slow load serves the last good value after a bounded wait', async () => {
  let slow = false;
  const load = async (signal: AbortSignal) => {
    if (slow) await sleep(2_000).then(() => signal.throwIfAborted());
    return 'v1';
  };
  const opts = { freshMs: 10, maxStaleMs: 20, waitMs: 100, dependency: 'quotes' };
  await deps.snapshot('slow-1', load, opts);
  slow = true;
  await sleep(30);
  const r = await settle(deps.snapshot('slow-1', load, opts));
  assertTookLessThan(r, 100 + 250, 'answered without waiting for the 2 s load');
  assert.equal(r.value?.value, 'v1');
  assert.deepEqual(
    r.value?.warnings.map((w) => [w.code, w.dependency]),
    [['DEPENDENCY_TIMEOUT', 'quotes']],
  );
});

test('with no usable value a read fails with the dependency code', async () => {
  const failing = await settle(
    deps.snapshot('cold-fail', async () => Promise.reject(unavailable()), { freshMs: 1000, maxStaleMs: 1000 }),
  );
  assert.equal(failing.error?.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(failing.error?.details?.dependency, 'market-data');

  const slow = await settle(
    inRequest(1000, () =>
      deps.snapshot('cold-slow', () => sleep(2_000), {
        freshMs: 1000,
        maxStaleMs: 1000,
        waitMs: 5_000,
        reserveMs: 500,
        dependency: 'reports',
      }),
    ),
  );
  assert.equal(slow.error?.code, 'DEPENDENCY_TIMEOUT');
  assert.equal(slow.error?.details?.dependency, 'reports');
  // It may wait 500 ms (the 1000 ms budget less the 500 ms reserve): the bound stays below the budget.
  assert.ok(
    slow.ms < 1000 - 500 + 250 + slow.stallMs,
    `a cold read waits within the request budget minus the reserve (${slow.ms.toFixed(1)} ms)`,
  );
});

test('a load started by one request keeps running after that request ends, and the next read gets its value', async () => {
  let loads = 0;
  let loaded: () => void = () => {};
  const loadDone = new Promise<void>((r) => (loaded = r));
  const load = async () => {
    loads++;
    await sleep(200);
    loaded();
    return 'late';
  };
  const first = await settle(
    inRequest(150, () => deps.snapshot('detached', load, { freshMs: 10_000, maxStaleMs: 60_000 })),
  );
  assert.equal(first.error?.code, 'DEPENDENCY_TIMEOUT');
  await loadDone;
  await new Promise((r) => setImmediate(r));
  const second = await deps.snapshot('detached', load, { freshMs: 10_000, maxStaleMs: 60_000 });
  assert.equal(second.value, 'late');
  assert.equal(loads, 1);
});

test('loads that call a declared dependency get its code when it fails', async () => {
  const market = deps.http('snap-market', { baseUrl: server.url, timeoutMs: 300, retry: { maxAttempts: 1 } });
  const r = await settle(
    deps.snapshot('quotes:503', async () => (await market.get('/status/503')).json(), {
      freshMs: 1000,
      maxStaleMs: 1000,
    }),
  );
  assert.equal(r.error?.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(r.error?.details?.dependency, 'snap-market');
});

test('the cache is bounded and evicts the least recently used key', async () => {
  const small = createDependencies({ snapshots: { maxEntries: 2 } });
  const loads: string[] = [];
  const read = (key: string) =>
    small.snapshot(
      key,
      async () => {
        loads.push(key);
        return key;
      },
      { freshMs: 60_000, maxStaleMs: 60_000 },
    );
  await read('a');
  await read('b');
  await read('a');
  await read('c'); // evicts b, the least recently used
  await read('a');
  await read('b');
  assert.deepEqual(loads, ['a', 'b', 'c', 'b']);
  assert.equal(small.status().snapshots.keys, 2);
  await small.close();
});

test('with a Postgres store, a restarted process starts warm from the summary table', async () => {
  const store = new PgSnapshotStore({ pool });
  await store.ensureTable();
  const first = createDependencies({ snapshots: { store } });
  const v1 = await first.snapshot('bots:overview', async () => ({ bots: 50 }), {
    freshMs: 60_000,
    maxStaleMs: 600_000,
  });
  assert.deepEqual(v1.value, { bots: 50 });
  // The save runs in the background: wait (bounded) for its row.
  await waitUntil(
    'the snapshot to be saved',
    async () => (await pool.query('SELECT 1 FROM hangproof_snapshots')).rowCount === 1,
  );
  const { rows } = await pool.query('SELECT key, value FROM hangproof_snapshots');
  assert.deepEqual(rows, [{ key: 'bots:overview', value: { bots: 50 } }]);
  await first.close();

  // A new process: its load would fail, yet it serves the saved value at once.
  const second = createDependencies({ snapshots: { store } });
  let loads = 0;
  const r = await second.snapshot(
    'bots:overview',
    async () => {
      loads++;
      throw unavailable();
    },
    { freshMs: 60_000, maxStaleMs: 600_000 },
  );
  assert.deepEqual(r.value, { bots: 50 });
  assert.equal(loads, 0, 'fresh enough: no load at all');
  await second.close();
});

test('a Postgres store never moves a key back in time', async () => {
  const store = new PgSnapshotStore({ pool });
  await store.ensureTable();
  const signal = AbortSignal.timeout(2000);
  await store.save('k', { v: 2 }, new Date(2_000_000), signal);
  await store.save('k', { v: 1 }, new Date(1_000_000), signal);
  const saved = await store.load('k', signal);
  assert.deepEqual(saved?.value, { v: 2 });
});
