import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HangproofError, sleep, step } from 'hangproof';
import { heartbeats } from 'hangproof/observe';
import { createTestDatabase } from 'hangproof/testing';
import { waitUntil } from '../support/latch.js';
import { ADMIN_TOKEN, admin, botsDatabase, startService } from './helpers.js';

test('GET /metrics needs the admin token and then serves route histograms in Prometheus format', async (t) => {
  const { app, url } = await startService({}, (app) => {
    app.get('/bots/:id', async () => ({ ok: true }));
    app.get('/boom', async () => {
      throw new HangproofError('CONFLICT');
    });
  });
  t.after(() => app.close());

  for (let i = 0; i < 5; i++) assert.equal((await fetch(`${url}/bots/${i}`)).status, 200);
  assert.equal((await fetch(`${url}/boom`)).status, 409);

  const denied = await fetch(`${url}/metrics`);
  assert.equal(denied.status, 401);
  assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  assert.equal((await fetch(`${url}/metrics`, { headers: { 'x-admin-token': `${ADMIN_TOKEN}x` } })).status, 401);

  const res = await fetch(`${url}/metrics`, { headers: admin });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  assert.match(text, /# TYPE hangproof_http_request_duration_seconds histogram/);
  assert.match(
    text,
    /hangproof_http_request_duration_seconds_bucket\{method="GET",route="\/bots\/:id",le="0.005"\} \d+/,
  );
  assert.match(text, /hangproof_http_request_duration_seconds_bucket\{method="GET",route="\/bots\/:id",le="30"\} 5/);
  assert.match(text, /hangproof_http_request_duration_seconds_count\{method="GET",route="\/bots\/:id"\} 5/);
  assert.match(text, /hangproof_http_request_errors_total\{method="GET",route="\/boom",code="CONFLICT"\} 1/);
});

test('GET /metrics takes the admin token as a bearer token, as a Prometheus scrape config sends it', async (t) => {
  const { app, url } = await startService({}, () => {});
  t.after(() => app.close());
  const scrape = (authorization: string): Promise<Response> => fetch(`${url}/metrics`, { headers: { authorization } });
  assert.equal((await scrape(`Bearer ${ADMIN_TOKEN}`)).status, 200);
  assert.equal((await scrape(`bearer ${ADMIN_TOKEN}`)).status, 200, 'the scheme is case-insensitive');
  assert.equal((await scrape(`Bearer ${ADMIN_TOKEN}x`)).status, 401);
  assert.equal((await scrape(`Basic ${Buffer.from(`x:${ADMIN_TOKEN}`).toString('base64')}`)).status, 401);
  assert.equal((await scrape('Bearer ')).status, 401);
  // Only /metrics: the status page keeps its own login.
  assert.equal(
    (await fetch(`${url}/status.json`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status,
    401,
  );
});

test('GET /metrics follows Prometheus conventions: one quantity per metric, its unit in the name, no quantile label on a gauge', async (t) => {
  const testDb = await createTestDatabase();
  const db = await botsDatabase(testDb.url);
  t.after(async () => {
    await db.close();
    await testDb.drop();
  });
  const { app, url } = await startService({ pools: { main: db } }, (app) => {
    app.get('/bots', async () => (await db.query('SELECT count(*) AS n FROM bots')).rows[0]);
  });
  t.after(() => app.close());
  assert.equal((await fetch(`${url}/bots`)).status, 200);
  // The loop monitor reports after its first sample interval; the gauges exist from then on.
  let text = '';
  await waitUntil(
    'the event-loop gauges have a first sample',
    async () => {
      text = await (await fetch(`${url}/metrics`, { headers: admin })).text();
      return /^hangproof_event_loop_delay_p99_seconds \d/m.test(text);
    },
    10_000,
  );

  assert.doesNotMatch(text, /quantile=/);
  assert.doesNotMatch(text, /hangproof_pool_stat/);
  assert.match(
    text,
    /# TYPE hangproof_event_loop_delay_p99_seconds gauge\n(?:.*\n)?hangproof_event_loop_delay_p99_seconds \d/,
  );
  assert.match(text, /hangproof_event_loop_delay_max_seconds \d/);
  assert.match(text, /# TYPE hangproof_pg_pool_connections gauge/);
  assert.match(text, /hangproof_pg_pool_connections\{pool="main",state="idle"\} [1-4]\n/);
  assert.match(text, /hangproof_pg_pool_connections\{pool="main",state="in_use"\} 0\n/);
  assert.match(text, /hangproof_pg_pool_max_connections\{pool="main"\} 4\n/);
  assert.match(text, /hangproof_pg_pool_waiting_requests\{pool="main"\} 0\n/);
  assert.match(
    text,
    /# TYPE hangproof_pg_queries_total counter\n(?:.*\n)?hangproof_pg_queries_total\{pool="main"\} [3-9]\n/,
  );
  assert.match(text, /hangproof_pg_timeouts_total\{pool="main",phase="acquire"\} 0\n/);
  // Every metric hangproof exports says its unit, or counts (`_total`), or is a plain ratio/state.
  const names = new Set([...text.matchAll(/^# TYPE (hangproof_\w+) (\w+)$/gm)].map((m) => `${m[1]} ${m[2]}`));
  for (const entry of names) {
    const [name, type] = entry.split(' ') as [string, string];
    if (type === 'counter') assert.match(name, /_total$/, name);
    else if (type === 'histogram') assert.match(name, /_seconds$/, name);
  }
});

test('an allow rule grants access without the token', async (t) => {
  const { app, url } = await startService({ allow: (req) => req.headers['x-internal'] === 'yes' }, () => {});
  t.after(() => app.close());
  assert.equal((await fetch(`${url}/metrics`)).status, 401);
  assert.equal((await fetch(`${url}/metrics`, { headers: { 'x-internal': 'yes' } })).status, 200);
  assert.equal((await fetch(`${url}/status.json`, { headers: { 'x-internal': 'yes' } })).status, 200);
});

test('status.json reports per-route percentiles, errors by code, timeouts with their step, jobs and settings', async (t) => {
  const settings = { deadlineMs: 300, statementTimeoutMs: 250 };
  const { app, url } = await startService({ settings, slowRequestMs: 50 }, (app) => {
    app.get('/fast', async () => 'ok');
    app.get('/slow', async () => {
      await step('load', () => sleep(80));
      return 'ok';
    });
    app.get('/hang', { config: { hangproof: { deadlineMs: 150 } } }, async (req) => {
      await step('auth', () => sleep(5));
      await step('fetch-prices', () => sleep(5000, req.hangproof?.signal));
      return 'unreachable';
    });
  });
  t.after(() => app.close());
  heartbeats.clear();
  heartbeats.report('sync-prices', { ok: true, durationMs: 42, detail: '50 rows', expectedEveryMs: 60_000 });
  heartbeats.report('sweep', { ok: false, durationMs: 7, detail: 'DEPENDENCY_TIMEOUT' });

  for (let i = 0; i < 20; i++) await fetch(`${url}/fast`);
  await fetch(`${url}/slow`);
  const hung = await fetch(`${url}/hang`);
  assert.equal(hung.status, 504);
  // The request is recorded when it ends, a moment after its 504 is written.
  await waitUntil('the timed-out request to be recorded', async () => {
    const r = await fetch(`${url}/status.json`, { headers: admin });
    return ((await r.json()) as StatusJson).timeouts.length > 0;
  });

  assert.equal((await fetch(`${url}/status.json`)).status, 401);
  const res = await fetch(`${url}/status.json`, { headers: admin });
  assert.equal(res.status, 200);
  const s = (await res.json()) as StatusJson;

  const fast = s.endpoints.find((e) => e.route === '/fast');
  assert.ok(fast, 'the /fast route is listed');
  assert.equal(fast.windows['1m'].count, 20);
  assert.ok(fast.windows['1m'].p50Ms > 0 && fast.windows['1m'].p99Ms >= fast.windows['1m'].p50Ms);
  assert.ok(fast.windows['1m'].ratePerSec > 0);
  assert.equal(fast.windows['60m'].count, 20, 'the 60-minute window includes the current slot');

  const hang = s.endpoints.find((e) => e.route === '/hang');
  assert.equal(hang?.windows['1m'].errors.REQUEST_TIMEOUT, 1);
  assert.equal(hang?.timeouts, 1);

  const timeout = s.timeouts[0];
  assert.equal(timeout?.route, '/hang');
  assert.equal(timeout?.lastCompletedStep, 'auth');
  assert.equal(timeout?.stepInFlight, 'fetch-prices');

  const slow = s.slowRequests.find((r) => r.route === '/slow');
  assert.ok(slow, 'the slow request is kept');
  assert.ok(slow.spans.some((sp) => sp.name === 'load' && sp.durationMs >= 70));

  assert.deepEqual(s.settings, settings);
  const jobs = Object.fromEntries(s.jobs.map((j) => [j.job, j]));
  assert.equal(jobs['sync-prices']?.status, 'ok');
  assert.equal(jobs.sweep?.status, 'failing');
  assert.ok(typeof s.eventLoop.minute.p99Ms === 'number');
});

interface WindowJson {
  count: number;
  ratePerSec: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: Record<string, number>;
}
interface RequestJson {
  route: string;
  spans: { name: string; durationMs: number }[];
  lastCompletedStep?: string;
  stepInFlight?: string;
}
interface StatusJson {
  endpoints: { route: string; timeouts: number; windows: Record<'1m' | '5m' | '60m', WindowJson> }[];
  timeouts: RequestJson[];
  slowRequests: RequestJson[];
  settings: unknown;
  jobs: { job: string; status: string }[];
  eventLoop: { minute: { p99Ms: number } };
}
