import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestDatabase, startEmbeddedPostgres, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';
import { closedPort, runCli, startSilentServer } from './run-cli.js';

let db: TestDatabase;
let bare: TestDatabase;
const clients: pg.Client[] = [];

async function session(applicationName = 'cli-test'): Promise<pg.Client> {
  const c = new pg.Client({
    connectionString: db.url,
    application_name: applicationName,
    connectionTimeoutMillis: 3000,
  });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

async function pidOf(c: pg.Client): Promise<number> {
  return (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
}

/** Polls until `pred` holds (bounded), for state that another session changes. */
async function until(pred: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (await pred()) return;
    await sleep(50);
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

before(async () => {
  db = await createTestDatabase();
  bare = await createTestDatabase();
  const c = await session();
  await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await c.query('CREATE TABLE bots (id int PRIMARY KEY, owner int NOT NULL, name text NOT NULL)');
  await c.query('CREATE INDEX bots_name_idx ON bots (name)');
  await c.query(`INSERT INTO bots SELECT g, g % 50, 'bot-' || g FROM generate_series(1, 5000) g`);
  await c.query('ANALYZE bots');
  await c.query('SELECT pg_stat_statements_reset()');
  for (let i = 0; i < 20; i++) await c.query('SELECT count(*) FROM bots WHERE owner = $1', [i]);
  await c.query('SELECT pg_stat_force_next_flush()');
});

after(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  await db.drop();
  await bare.drop();
});

const env = (): NodeJS.ProcessEnv => ({ DATABASE_URL: db.url });

describe('hangproof pg top', () => {
  test('lists fingerprints by total time with calls and rows', async () => {
    const run = await runCli(['pg', 'top', '--json', '--by', 'calls', '--limit', '5'], { env: env() });
    assert.equal(run.code, 0, run.stderr);
    const row = run.json().rows.find((r: { query: string }) => r.query.includes('FROM bots WHERE owner'));
    assert.ok(row, run.stdout);
    assert.equal(row.calls, 20);
    assert.equal(row.rows, 20);
    assert.ok(run.json().rows.length <= 5);
  });

  test('explains a normalised statement with a generic plan, without running it', async () => {
    const top = (await runCli(['pg', 'top', '--json'], { env: env() })).json();
    const row = top.rows.find((r: { query: string }) => r.query.includes('FROM bots WHERE owner'));
    const run = await runCli(['pg', 'top', '--explain', row.queryid, '--json'], { env: env() });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json().generic, true);
    assert.ok(
      run.json().plan.some((l: string) => /Scan on bots/.test(l)),
      run.stdout,
    );
  });

  test('an unknown queryid is a usage error', async () => {
    const run = await runCli(['pg', 'top', '--explain', '12345', '--json'], { env: env() });
    assert.equal(run.code, 2);
    assert.equal(run.json().error.code, 'NOT_FOUND');
  });

  test('with the library preloaded but the extension not created it names that one step and exits 2', async () => {
    const run = await runCli(['pg', 'top', '--json', '--database-url', bare.url]);
    assert.equal(run.code, 2);
    assert.equal(run.json().error.code, 'PG_STAT_STATEMENTS_MISSING');
    assert.match(run.stderr, new RegExp(`not created in database ${bare.name}`));
    assert.match(run.stderr, /CREATE EXTENSION pg_stat_statements;/);
    assert.doesNotMatch(run.stderr, /postgresql\.conf|restart Postgres/);
  });

  test('on a server that does not preload the library it says to edit postgresql.conf and restart', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'hangproof-pg-no-preload-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const server = await startEmbeddedPostgres({ dataDir, settings: { shared_preload_libraries: '' } });
    t.after(() => server.stop());
    const run = await runCli(['pg', 'top', '--json', '--database-url', server.url]);
    assert.equal(run.code, 2);
    assert.equal(run.json().error.code, 'PG_STAT_STATEMENTS_MISSING');
    assert.match(run.stderr, /shared_preload_libraries/);
    assert.match(run.stderr, /restart Postgres/);
  });
});

describe('hangproof pg active and cancel', () => {
  test('shows a long pg_sleep, an idle transaction holding a lock and the session it blocks', async () => {
    const sleeper = await session('hangproof GET /bots/:id req-abc123');
    const holder = await session('holder');
    const waiter = await session('waiter');
    const sleeperPid = await pidOf(sleeper);
    const holderPid = await pidOf(holder);
    const waiterPid = await pidOf(waiter);
    const sleeping = sleeper.query('SELECT pg_sleep(30)').catch((e) => e);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE bots IN ACCESS EXCLUSIVE MODE');
    const waiting = waiter.query('SELECT count(*) FROM bots').catch((e) => e);

    let sessions: any[] = [];
    await until(async () => {
      const run = await runCli(['pg', 'active', '--json'], { env: env() });
      assert.equal(run.code, 0, run.stderr);
      sessions = run.json().sessions;
      return sessions.find((s) => s.pid === waiterPid)?.blockedBy.includes(holderPid) === true;
    }, 15_000);
    const s = sessions.find((x) => x.pid === sleeperPid);
    assert.equal(s.state, 'active');
    assert.equal(s.route, 'GET /bots/:id');
    assert.equal(s.requestId, 'req-abc123');
    assert.equal(sessions.find((x) => x.pid === holderPid).state, 'idle in transaction');
    assert.equal(sessions.find((x) => x.pid === waiterPid).waitEventType, 'Lock');

    const human = await runCli(['pg', 'active'], { env: env() });
    assert.match(human.stdout, /blocking root\(s\): \d+/);

    // Without a terminal and without --yes nothing is touched.
    const refused = await runCli(['pg', 'cancel', String(sleeperPid), '--json'], { env: env() });
    assert.equal(refused.code, 2);
    assert.equal(refused.json().error.code, 'CONFIRMATION_REQUIRED');

    const cancelled = await runCli(['pg', 'cancel', String(sleeperPid), '--yes', '--json'], { env: env() });
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal((await sleeping).code, '57014', 'the sleeping statement was cancelled');

    // The idle transaction is older than 1 s: --terminate ends it, and the blocked query proceeds.
    await sleep(1100);
    const ended = await runCli(['pg', 'cancel', '--older-than', '1s', '--terminate', '--yes', '--json'], {
      env: env(),
    });
    assert.equal(ended.code, 0, ended.stderr);
    const pids = ended.json().outcomes.map((o: { pid: number }) => o.pid);
    assert.ok(pids.includes(holderPid), ended.stdout);
    const result = await waiting;
    assert.ok(
      !(result instanceof Error) || pids.includes(waiterPid),
      'the waiter was unblocked (or ended with the rest)',
    );
  });

  test('a pid that does not exist is reported and exits 1', async () => {
    const run = await runCli(['pg', 'cancel', '999999', '--yes', '--json'], { env: env() });
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.json().outcomes[0].signalled, false);
  });

  test('bad arguments exit 2', async () => {
    for (const args of [
      ['pg', 'cancel', '--yes'],
      ['pg', 'cancel', 'abc', '--yes'],
      ['pg', 'cancel', '--older-than', 'soon', '--yes'],
      ['pg', 'top', '--by', 'size'],
    ]) {
      const run = await runCli(args, { env: env() });
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    }
  });
});

describe('hangproof pg indexes', () => {
  test('flags a large table read by sequential scans and an index never used', async () => {
    const run = await runCli(['pg', 'indexes', '--json', '--min-rows', '1000'], { env: env() });
    assert.equal(run.code, 1, run.stderr);
    const r = run.json();
    assert.ok(
      r.seqScanTables.some((t: { table: string }) => t.table === 'public.bots'),
      run.stdout,
    );
    assert.ok(
      r.unusedIndexes.some((i: { index: string }) => i.index === 'public.bots_name_idx'),
      run.stdout,
    );
  });
});

describe('pg commands against an unreachable database', () => {
  test('a closed port or a server that never answers ends with one line and exit 2', async (t) => {
    const port = await closedPort();
    const silent = await startSilentServer();
    t.after(() => silent.close());
    const runs = await Promise.all([
      runCli(['pg', 'active', '--database-url', `postgres://u:pw@127.0.0.1:${port}/x`]),
      runCli(['pg', 'top', '--database-url', `postgres://u:pw@127.0.0.1:${silent.port}/x`]),
    ]);
    for (const run of runs) {
      assert.equal(run.code, 2, run.stderr);
      assert.ok(run.durationMs < 8000, `ended in ${Math.round(run.durationMs)} ms`);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    }
  });

  test('no database configured is a usage error', async () => {
    const run = await runCli(['pg', 'active'], { env: { DATABASE_URL: '' } });
    assert.equal(run.code, 2);
  });
});
