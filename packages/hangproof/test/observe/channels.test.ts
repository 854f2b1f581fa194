import assert from 'node:assert/strict';
import { test } from 'node:test';
import { channels } from 'hangproof';
import { admin, startService } from './helpers.js';

// The pg guard and the dependency layer publish these events (their own tests cover that); here
// the events are published directly to check what observe makes of each payload.

test('query, pool, dependency and breaker events show on /status.json and /metrics, with fingerprints bounded', async (t) => {
  const { app, url } = await startService(
    {
      maxQueryFingerprints: 3,
      pools: { main: { stats: () => ({ total: 4, idle: 1, waiting: 2, nested: { x: 1 } }) } },
      dependencies: { status: () => ({ dependencies: [{ name: 'market', breaker: { state: 'open' } }] }) },
    },
    () => {},
  );
  t.after(() => app.close());

  for (let i = 0; i < 10; i++) {
    channels.query.publish({
      ctx: undefined,
      fingerprint: `SELECT * FROM t${i % 5} WHERE id=?`,
      durationMs: 2 + i,
      rowCount: 1,
      errorCode: undefined,
    });
  }
  channels.query.publish({
    ctx: undefined,
    fingerprint: 'SELECT pg_sleep(?)',
    durationMs: 900,
    rowCount: 0,
    errorCode: 'REQUEST_TIMEOUT',
  });
  channels.poolAcquire.publish({ pool: 'main', waitMs: 3, ok: true });
  channels.poolAcquire.publish({ pool: 'main', waitMs: 500, ok: false });
  channels.dependencyCall.publish({ dependency: 'market', durationMs: 40, outcome: 'ok' });
  channels.dependencyCall.publish({ dependency: 'market', durationMs: 1000, outcome: 'DEPENDENCY_TIMEOUT' });
  channels.breakerState.publish({ dependency: 'market', from: 'closed', to: 'open' });

  const s = (await (await fetch(`${url}/status.json`, { headers: admin })).json()) as {
    postgres: {
      total: { '1m': { count: number; errors: Record<string, number> } };
      slowestQueries: { fingerprint: string }[];
    };
    pools: {
      name: string;
      stats: { waiting: number };
      acquire: { '1m': { count: number; errors: Record<string, number> } };
    }[];
    dependencies: {
      measured: { name: string; breaker: { state: string }; windows: { '1m': { count: number } } }[];
      status: unknown;
    };
  };
  assert.equal(s.postgres.total['1m'].count, 11);
  assert.deepEqual(s.postgres.total['1m'].errors, { REQUEST_TIMEOUT: 1 });
  const fps = s.postgres.slowestQueries.map((q) => q.fingerprint);
  assert.ok(fps.length <= 4, 'three fingerprints plus (other)');
  assert.ok(fps.includes('(other)'));
  assert.equal(s.pools[0]?.name, 'main');
  assert.equal(s.pools[0]?.stats.waiting, 2);
  assert.equal(s.pools[0]?.acquire['1m'].count, 2);
  assert.deepEqual(s.pools[0]?.acquire['1m'].errors, { ACQUIRE_FAILED: 1 });
  const market = s.dependencies.measured.find((d) => d.name === 'market');
  assert.equal(market?.breaker.state, 'open');
  assert.equal(market?.windows['1m'].count, 2);
  assert.deepEqual(s.dependencies.status, { dependencies: [{ name: 'market', breaker: { state: 'open' } }] });

  const metrics = await (await fetch(`${url}/metrics`, { headers: admin })).text();
  assert.match(metrics, /hangproof_pg_query_duration_seconds_count 11/);
  assert.match(metrics, /hangproof_pg_query_errors_total\{code="REQUEST_TIMEOUT"\} 1/);
  assert.match(metrics, /hangproof_pg_query_fingerprint_duration_seconds_count\{query_id="[0-9a-f]{12}"\} \d+/);
  assert.match(metrics, /hangproof_pg_pool_acquire_errors_total\{pool="main",code="ACQUIRE_FAILED"\} 1/);
  // A source that is not a hangproof Database exports the quantities it has.
  assert.match(metrics, /hangproof_pg_pool_waiting_requests\{pool="main"\} 2/);
  assert.match(metrics, /hangproof_pg_pool_connections\{pool="main",state="idle"\} 1/);
  assert.doesNotMatch(metrics, /nested/);
  assert.match(metrics, /hangproof_dependency_call_errors_total\{dependency="market",code="DEPENDENCY_TIMEOUT"\} 1/);
  assert.match(metrics, /hangproof_breaker_state\{dependency="market",state="open"\} 1/);
});

test('options are validated at registration, naming the option and the value', async () => {
  await assert.rejects(
    startService({ maxInFlight: -1 }, () => {}),
    { name: 'RangeError', message: /maxInFlight.*-1/ },
  );
  await assert.rejects(
    startService({ adminToken: 'short' }, () => {}),
    { name: 'RangeError', message: /adminToken/ },
  );
  await assert.rejects(
    startService({ bucketsSec: [1, 0.5] }, () => {}),
    { name: 'RangeError', message: /bucketsSec/ },
  );
});
