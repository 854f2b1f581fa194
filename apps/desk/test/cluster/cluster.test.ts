import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HangproofError, RequestContext, runWithContext } from 'hangproof';
import { createDatabase } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';
import { type ClusterSnapshot, type InstanceExport, mergeExports } from '../../src/cluster/cluster-view.js';
import { type Cluster, findBinary, startCluster } from '../../src/cluster/start-cluster.js';
import { runHangproof } from '../hangproof-cli.js';
import { ADMIN_TOKEN, DEMO_TOKEN, eventually } from '../test-desk.js';

const missing = ['nginx', 'pgbouncer'].filter((b) => findBinary(b) === undefined);
const skip = missing.length > 0 ? `needs ${missing.join(' and ')} (Debian: apt-get install nginx pgbouncer)` : false;

interface Outcome {
  status: number | 'reset' | 'timeout';
  code: string | undefined;
  ms: number;
}

/** One GET through nginx, bounded by a client timeout well above every server limit. */
async function get(cluster: Cluster, path: string, headers: Record<string, string> = {}): Promise<Outcome> {
  const started = performance.now();
  try {
    const res = await fetch(`${cluster.url}${path}`, {
      headers: { authorization: `Bearer ${DEMO_TOKEN}`, ...headers },
      signal: AbortSignal.timeout(8_000),
    });
    const text = await res.text();
    let code: string | undefined;
    if (res.status >= 400) {
      try {
        code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
      } catch {
        code = undefined;
      }
    }
    return { status: res.status, code, ms: performance.now() - started };
  } catch (err) {
    const timedOut = err instanceof Error && err.name === 'TimeoutError';
    return { status: timedOut ? 'timeout' : 'reset', code: undefined, ms: performance.now() - started };
  }
}

/** `workers` loops of GET /api/bots until `untilMs` (performance.now()), every outcome kept. */
async function load(cluster: Cluster, workers: number, untilMs: number): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = 0; i < 10_000 && performance.now() < untilMs; i++) {
        outcomes.push(await get(cluster, '/api/bots?limit=5'));
      }
    }),
  );
  return outcomes;
}

async function clusterView(base: string): Promise<ClusterSnapshot> {
  const res = await fetch(`${base}/status.json`, {
    headers: { 'x-admin-token': ADMIN_TOKEN },
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { cluster: ClusterSnapshot }).cluster;
}

describe('a desk cluster behind nginx and PgBouncer', { skip, concurrency: false }, () => {
  let database: TestDatabase;
  let cluster: Cluster;
  let admin: pg.Client;

  before(async () => {
    database = await createTestDatabase();
    cluster = await startCluster({
      instances: 2,
      databaseUrl: database.url,
      seed: 'small',
      adminToken: ADMIN_TOKEN,
      demoUserToken: DEMO_TOKEN,
      poolMaxPerInstance: 4,
      // One server connection: whatever a request set on it, the next request would see.
      pgbouncerPoolSize: 1,
      instanceEnv: { DESK_JOB_EVERY_MS: '1000', LOG_LEVEL: process.env.DESK_TEST_LOG ?? 'silent' },
      ...(process.env.DESK_TEST_LOG === undefined ? {} : { log: (l: string) => process.stdout.write(`${l}\n`) }),
    });
    admin = new pg.Client({ connectionString: database.url, connectionTimeoutMillis: 5_000, query_timeout: 5_000 });
    admin.on('error', () => {});
    await admin.connect();
  });

  after(async () => {
    await admin?.end().catch(() => {});
    await cluster?.stop();
    await database?.drop();
  });

  test('the generated nginx and PgBouncer files and the running service pass hangproof doctor', async () => {
    const run = await runHangproof(
      [
        'doctor',
        '--nginx',
        cluster.nginxConfPath,
        '--pgbouncer',
        cluster.pgbouncerIniPath ?? '',
        '--service',
        cluster.url,
        '--admin-token',
        ADMIN_TOKEN,
      ],
      { timeoutMs: 30_000 },
    );
    assert.equal(run.code, 0, run.stdout + run.stderr);
  });

  test('a request against a locked table ends by its deadline and its statement is gone within 1 s', async () => {
    // The lock is held by a client of its own: a session reads pg_stat_activity once per
    // transaction (only wait_event is live), so the admin inside the lock's transaction would see
    // a statement that ended long ago as still active.
    const migration = new pg.Client({ connectionString: database.url, connectionTimeoutMillis: 5_000 });
    migration.on('error', () => {});
    await migration.connect();
    try {
      await migration.query('BEGIN');
      // bot_instances, read by the bot page and by no background job: a job waiting on the lock
      // would hold PgBouncer's one server connection and queue the request in front of Postgres.
      await migration.query('LOCK TABLE bot_instances IN ACCESS EXCLUSIVE MODE');
      const answered = get(cluster, '/api/bots/1', { 'x-request-timeout-ms': '700' });
      // The request's statements, by the route in their application_name (nginx gives each request
      // an id of its own): no other request of this file asks for a bot page.
      const running = async () =>
        (
          await admin.query<{ application_name: string; state: string; wait_event_type: string | null }>(
            `SELECT application_name, state, wait_event_type FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE 'desk /api/bots/:id %'`,
          )
        ).rows;
      // Seen waiting first, so the check after the answer cannot pass by looking for the wrong name.
      assert.ok(
        await eventually(async () => (await running()).some((r) => r.wait_event_type === 'Lock'), 600),
        `the request's statement was never seen waiting on the lock: ${JSON.stringify(await running())}`,
      );
      const res = await answered;
      assert.ok(res.status === 503 || res.status === 504, `status ${res.status}`);
      assert.ok(res.code === 'REQUEST_TIMEOUT' || res.code === 'DEPENDENCY_TIMEOUT', String(res.code));
      assert.ok(res.ms < 700 + 500, `answered in ${Math.round(res.ms)} ms`);
      const gone = await eventually(async () => (await running()).length === 0, 1_000);
      assert.ok(gone, `the request's statement still runs 1 s after the answer: ${JSON.stringify(await running())}`);
    } finally {
      await migration.end().catch(() => {});
    }
  });

  test('a cancel sent through PgBouncer stops the statement on the server', async () => {
    const db = createDatabase({ connectionString: cluster.pooledUrl, statementTimeoutMs: 10_000, max: 1 });
    try {
      const ctx = new RequestContext({ requestId: 'cancel-through-pgbouncer', budgetMs: 10_000, name: 'test' });
      setTimeout(() => ctx.abort(new HangproofError('CLIENT_CLOSED_REQUEST')), 300).unref();
      const started = performance.now();
      await assert.rejects(
        runWithContext(ctx, () => db.query("SELECT pg_sleep(5), 'cancel-probe'")),
        (err: unknown) => err instanceof HangproofError && err.code === 'CLIENT_CLOSED_REQUEST',
      );
      assert.ok(performance.now() - started < 1_000);
      ctx.end();
      const gone = await eventually(async () => {
        const { rows } = await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE state = 'active' AND query LIKE '%cancel-probe%' AND pid <> pg_backend_pid()`,
        );
        return rows[0].n === 0;
      }, 1_000);
      assert.ok(gone, 'pg_sleep still runs 1 s after the cancel');
      assert.ok(
        await eventually(async () => db.stats().cancelsConfirmed === 1, 1_000),
        'PgBouncer closed the cancel socket',
      );
    } finally {
      await db.close();
    }
  });

  test('no timeout set by one request leaks to the next on the same server connection', async () => {
    const db = createDatabase({ connectionString: cluster.pooledUrl, max: 1 });
    const raw = new pg.Client({ connectionString: cluster.pooledUrl, connectionTimeoutMillis: 3_000 });
    raw.on('error', () => {});
    try {
      const ctx = new RequestContext({ requestId: 'short-deadline', budgetMs: 150, name: 'test' });
      await assert.rejects(runWithContext(ctx, () => db.query('SELECT pg_sleep(1)')));
      ctx.end();
      await raw.connect();
      // default_pool_size = 1: this runs on the server connection the short request used.
      const shown = await raw.query('SHOW statement_timeout');
      assert.equal(shown.rows[0].statement_timeout, '0');
      const lock = await raw.query('SHOW lock_timeout');
      assert.equal(lock.rows[0].lock_timeout, '0');
      await raw.query('SELECT pg_sleep(0.4)');
      const res = await get(cluster, '/api/bots?limit=5');
      assert.equal(res.status, 200);
    } finally {
      await raw.end().catch(() => {});
      await db.close();
    }
  });

  test('each background loop runs once per interval across the instances', async () => {
    const read = async () =>
      (await admin.query('SELECT loop, runs FROM autonomy_heartbeats')).rows as { loop: string; runs: number }[];
    await eventually(async () => (await read()).length === 5, 10_000);
    const firstReadAt = performance.now();
    const first = new Map((await read()).map((r) => [r.loop, r.runs]));
    await sleep(5_000);
    const last = await read();
    // The slots in the time that really passed between the reads, not the 5 s asked of the timer.
    const windowMs = performance.now() - firstReadAt;
    for (const r of last) {
      const ran = r.runs - (first.get(r.loop) ?? 0);
      // Every 1 s with two instances ticking: at most one run per 1 s slot (+1 for the edges).
      assert.ok(ran <= Math.ceil(windowMs / 1000) + 1, `${r.loop} ran ${ran} times in ${Math.round(windowMs)} ms`);
      assert.ok(ran >= 1, `${r.loop} did not run`);
    }
  });

  test('merged percentiles cover every request of every instance', async () => {
    await load(cluster, 4, performance.now() + 1_500);
    const exports: InstanceExport[] = [];
    for (const inst of cluster.instances) {
      const res = await fetch(`${inst.url}/cluster/windows.json`, {
        headers: { 'x-admin-token': ADMIN_TOKEN },
        signal: AbortSignal.timeout(2_000),
      });
      exports.push((await res.json()) as InstanceExport);
    }
    const counts = exports.map((e) => e.windows['1m'].routes.find((r) => r.route === '/api/bots') !== undefined);
    assert.deepEqual(counts, [true, true], 'nginx spread the load over both instances');
    const merged = mergeExports(exports).endpoints.find((e) => e.route === '/api/bots');
    const view = await clusterView(cluster.url);
    assert.equal(view.instancesUp, 2);
    const fromStatus = view.endpoints.find((e) => e.route === '/api/bots');
    assert.ok(merged !== undefined && fromStatus !== undefined);
    assert.ok(fromStatus.windows['1m'].count >= merged.windows['1m'].count - 5);
  });

  test('a rolling restart under load answers every request with a success or a fast 503', async () => {
    const until = performance.now() + 60_000;
    let done = false;
    const outcomes: Outcome[] = [];
    const running = Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 10_000 && !done && performance.now() < until; i++) {
          outcomes.push(await get(cluster, '/api/bots?limit=5'));
        }
      }),
    );
    try {
      for (let i = 0; i < cluster.instances.length; i++) await cluster.restartInstance(i);
      await sleep(300);
    } finally {
      done = true;
      await running;
    }
    const bad = outcomes.filter((o) => !(o.status === 200 || (o.status === 503 && o.ms < 1_000)));
    assert.deepEqual(bad, [], `${bad.length} of ${outcomes.length} answers were neither 200 nor a fast 503`);
    assert.ok(outcomes.length > 20, `only ${outcomes.length} requests ran`);
    const retryable = outcomes.filter((o) => o.status === 503);
    assert.ok(
      retryable.every((o) => o.code === 'SHUTTING_DOWN' || o.code === 'OVERLOADED'),
      JSON.stringify(retryable.slice(0, 5)),
    );
    process.stdout.write(`# rolling restart: ${outcomes.length} requests, ${retryable.length} fast 503\n`);
  });

  test('an instance killed with SIGKILL under load is routed around, shown down, and its jobs still run', async () => {
    const victim = cluster.instances[1];
    assert.ok(victim !== undefined);
    const until = performance.now() + 4_000;
    const running = load(cluster, 4, until);
    await sleep(1_000);
    const killedAt = new Date();
    await victim.process.kill();
    const outcomes = await running;
    const bad = outcomes.filter((o) => o.status !== 200 && !(o.status === 503 && o.ms < 1_000));
    assert.deepEqual(bad, [], `${bad.length} of ${outcomes.length} requests failed or hung`);
    assert.ok(outcomes.every((o) => o.ms < cluster.timeouts.deadlineMs + 1_000));

    const survivor = cluster.instances[0]?.url as string;
    const shownDown = await eventually(async () => {
      const view = await clusterView(survivor);
      return view.instances.some((m) => m.id === victim.id && !m.up) && view.instancesUp === 1;
    }, 5_000);
    assert.ok(shownDown, 'the cluster view still shows the killed instance up');

    // A job active on the victim is freed after its expiry (4 s here) by maintenance (every 4 s).
    const allBeat = await eventually(async () => {
      const { rows } = await admin.query('SELECT count(*)::int AS n FROM autonomy_heartbeats WHERE last_beat_at > $1', [
        killedAt,
      ]);
      return rows[0].n === 5;
    }, 20_000);
    const { rows: beats } = await admin.query('SELECT loop, last_beat_at, instance FROM autonomy_heartbeats');
    assert.ok(allBeat, `a loop did not run after the kill at ${killedAt.toISOString()}: ${JSON.stringify(beats)}`);
  });
});
