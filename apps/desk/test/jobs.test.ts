import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDependencies } from 'hangproof/deps';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import PgBoss from 'pg-boss';
import { pino } from 'pino';
import { migrate } from '../src/db/migrate.js';
import { seedDatabase } from '../src/db/seed.js';
import { JOB_NAMES } from '../src/jobs/job-definitions.js';
import { expirySeconds, type JobRunner, maintenanceSeconds, startJobRunner } from '../src/jobs/job-runner.js';
import { DEMO_TOKEN, eventually } from './test-desk.js';

let database: TestDatabase;
let db: Database;
const logger = pino({ level: 'silent' });
const deps = createDependencies();

before(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  await seedDatabase(database.url, { size: 'small', demoUserToken: DEMO_TOKEN });
  db = createDatabase({ connectionString: database.url, max: 4, logger });
});
after(async () => {
  await db?.close();
  await deps.close();
  await database?.drop();
});

test('every loop runs under its budget, writes its summaries and records a heartbeat', async () => {
  const beats: { job: string; ok: boolean }[] = [];
  const runner = await startJobRunner({
    databaseUrl: database.url,
    db,
    deps,
    logger,
    heartbeats: { report: (job, r) => void beats.push({ job, ok: r.ok }) },
    // Long intervals: only the explicit runs below happen during the test.
    schedules: Object.fromEntries(JOB_NAMES.map((j) => [j, { everyMs: 600_000, budgetMs: 5_000 }])),
  });
  try {
    await db.query('DELETE FROM tournament_ranking');
    for (const job of JOB_NAMES) await runner.runNow(job);
    for (const job of JOB_NAMES)
      assert.ok(
        beats.some((b) => b.job === job && b.ok),
        `${job} reported an ok beat`,
      );
    const { rows } = await db.query<{ loop: string; last_error_code: string | null }>(
      'SELECT loop, last_error_code FROM autonomy_heartbeats ORDER BY loop',
    );
    assert.deepEqual(rows.map((r) => r.loop).sort(), [...JOB_NAMES].sort());
    assert.ok(rows.every((r) => r.last_error_code === null));
    const ranking = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM tournament_ranking');
    assert.equal(ranking.rows[0]?.n, 100);
    const curves = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM equity_curves');
    assert.ok((curves.rows[0]?.n ?? 0) > 0);
  } finally {
    await runner.stop();
  }
});

test('a loop that outlives its budget is cut at the deadline and reported as failing', async () => {
  const beats: { job: string; ok: boolean; detail?: string | undefined }[] = [];
  const runner = await startJobRunner({
    databaseUrl: database.url,
    db,
    deps,
    logger,
    heartbeats: { report: (job, r) => void beats.push({ job, ok: r.ok, detail: r.detail }) },
    // A 1 ms budget: the first query cannot fit.
    schedules: Object.fromEntries(JOB_NAMES.map((j) => [j, { everyMs: 600_000, budgetMs: 1 }])),
  });
  try {
    const started = performance.now();
    await assert.rejects(runner.runNow('strategy-scoring'));
    assert.ok(performance.now() - started < 2_500);
    const beat = beats.find((b) => b.job === 'strategy-scoring');
    assert.equal(beat?.ok, false);
  } finally {
    await runner.stop();
  }
});

test('two desk instances run each schedule once per interval, not once each', async () => {
  const runners: JobRunner[] = [];
  const everyMs = 2_000;
  const schedules = Object.fromEntries(JOB_NAMES.map((j) => [j, { everyMs: 600_000, budgetMs: 5_000 }]));
  schedules['strategy-scoring'] = { everyMs, budgetMs: 1_500 };
  await db.query("DELETE FROM autonomy_heartbeats WHERE loop = 'strategy-scoring'");
  const started = performance.now();
  for (const instance of ['a', 'b']) {
    runners.push(await startJobRunner({ databaseUrl: database.url, db, deps, logger, schedules, instance }));
  }
  const runsSoFar = async (): Promise<number> =>
    (
      await db.query<{ runs: number }>(
        "SELECT runs::int AS runs FROM autonomy_heartbeats WHERE loop = 'strategy-scoring'",
      )
    ).rows[0]?.runs ?? 0;
  // A window of several intervals, so that two instances each running the schedule would show as
  // about twice the slots; then, on a loaded machine, until two runs are in (bounded).
  await new Promise((r) => setTimeout(r, 7_000));
  await eventually(async () => (await runsSoFar()) >= 2, 20_000, 200);
  await Promise.all(runners.map((r) => r.stop()));
  const elapsedMs = performance.now() - started;
  const runs = await runsSoFar();
  const slots = Math.ceil(elapsedMs / everyMs) + 1;
  assert.ok(runs >= 2, `ran ${runs} times in ${Math.round(elapsedMs)} ms`);
  assert.ok(runs <= slots, `ran ${runs} times in ${slots} slots with two instances ticking`);
});

test('a run left active by a killed instance is expired and the loop resumes on another instance', async () => {
  const schedules = Object.fromEntries(JOB_NAMES.map((j) => [j, { everyMs: 600_000, budgetMs: 5_000 }]));
  schedules['strategy-scoring'] = { everyMs: 1_000, budgetMs: 800 };
  assert.equal(expirySeconds({ everyMs: 1_000, budgetMs: 800 }), 4);
  assert.equal(maintenanceSeconds(schedules), 4);
  // A first start brings the queue's expiry to today's schedule.
  await (await startJobRunner({ databaseUrl: database.url, db, deps, logger, schedules, instance: 'setup' })).stop();

  // Earlier runners can leave this loop's job queued or active (one stopped between its fetch and
  // its completion): pg-boss then refuses a second active job for the key, and the dead instance's
  // fetch would come back empty. The dead instance must be the one holding the job.
  await db.query("DELETE FROM pgboss.job WHERE name = 'strategy-scoring'");

  // The "killed" instance: it took the loop's job and never finished it.
  const dead = new PgBoss({ connectionString: database.url, max: 1, supervise: false, schedule: false });
  await dead.start();
  await dead.send('strategy-scoring', {}, { singletonKey: 'strategy-scoring' });
  const taken = await dead.fetch('strategy-scoring');
  assert.equal(taken?.length, 1, 'the dead instance holds the active job');
  await dead.stop({ graceful: false, wait: true, timeout: 2_000 });

  await db.query("DELETE FROM autonomy_heartbeats WHERE loop = 'strategy-scoring'");
  const started = performance.now();
  const survivor = await startJobRunner({
    databaseUrl: database.url,
    db,
    deps,
    logger,
    schedules,
    instance: 'survivor',
  });
  try {
    const ran = await eventually(async () => {
      const { rows } = await db.query("SELECT 1 FROM autonomy_heartbeats WHERE loop = 'strategy-scoring'");
      return rows.length === 1;
    }, 15_000);
    // Expiry (4 s) plus one maintenance interval (4 s), with room for a loaded machine.
    assert.ok(ran, 'the loop never ran again: the dead instance still blocks it');
    process.stdout.write(`# loop resumed ${Math.round(performance.now() - started)} ms after the survivor started\n`);
  } finally {
    await survivor.stop();
  }
});

test('instances that start together on a fresh database all start: concurrent queue creation deadlocks are retried', async () => {
  const schedules = Object.fromEntries(JOB_NAMES.map((j) => [j, { everyMs: 600_000, budgetMs: 5_000 }]));
  // Each round drops pg-boss's schema, so three runners create every queue at the same moment, as
  // instances of a new cluster do. Without the retry most rounds lose one runner to 40P01.
  for (let round = 1; round <= 3; round++) {
    await db.query('DROP SCHEMA IF EXISTS pgboss CASCADE');
    const started = await Promise.allSettled(
      ['x', 'y', 'z'].map((instance) =>
        startJobRunner({ databaseUrl: database.url, db, deps, logger, schedules, instance: `${instance}${round}` }),
      ),
    );
    await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.stop() : undefined)));
    const failed = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    assert.deepEqual(
      failed.map((f) => (f.reason as Error).message),
      [],
      `round ${round}: every runner started`,
    );
  }
});
