import { hostname } from 'node:os';
import { isHangproofError, runWithBudget, sleep } from 'hangproof';
import type { Dependencies } from 'hangproof/deps';
import type { Database } from 'hangproof/pg';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import { JOB_BODIES, JOB_NAMES, type JobName } from './job-definitions.js';

/** Receives one beat per job run; observe's Heartbeats fits. */
export interface HeartbeatSink {
  report(job: string, report: { ok: boolean; durationMs?: number; detail?: string; expectedEveryMs?: number }): void;
}

/** Schedule and budget of one loop. */
export interface JobSchedule {
  /** Time between runs, in ms (one run per interval across all desk instances). */
  readonly everyMs: number;
  /** Deadline of one run, in ms; its queries get what is left of it. */
  readonly budgetMs: number;
}

/** Default schedules: summaries every 15-60 s, provider health every 5 s. */
export const JOB_SCHEDULES: Readonly<Record<JobName, JobSchedule>> = Object.freeze({
  'metrics-aggregation': { everyMs: 15_000, budgetMs: 10_000 },
  'equity-curves': { everyMs: 30_000, budgetMs: 10_000 },
  'strategy-scoring': { everyMs: 60_000, budgetMs: 5_000 },
  'tournament-ranking': { everyMs: 60_000, budgetMs: 5_000 },
  'provider-health': { everyMs: 5_000, budgetMs: 3_000 },
});

export interface JobRunnerOptions {
  readonly databaseUrl: string;
  readonly db: Database;
  readonly deps: Dependencies;
  readonly logger: Logger;
  readonly heartbeats?: HeartbeatSink | undefined;
  /** Overrides of JOB_SCHEDULES (tests run the loops every second). */
  readonly schedules?: Partial<Record<JobName, JobSchedule>>;
  /** Name of this instance in autonomy_heartbeats. @default hostname:pid */
  readonly instance?: string;
}

export interface JobRunner {
  schedule(job: JobName): JobSchedule;
  /** Runs one job now in this process (tests, first start), outside the queue. */
  runNow(job: JobName): Promise<void>;
  /** Stops scheduling, lets running jobs finish (bounded), closes pg-boss's pool. */
  stop(): Promise<void>;
}

/** Bound of pg-boss's graceful stop: running jobs have their own budgets, this is the backstop. */
const STOP_TIMEOUT_MS = 10_000;

/** What a run may take beyond its budget: the heartbeat write (2 s bound) and a little slack. */
const EXPIRY_MARGIN_MS = 3_000;

/** pg-boss expires an active job whose run outlived this (a killed instance's job, for one). */
export function expirySeconds(s: JobSchedule): number {
  return Math.ceil((s.budgetMs + EXPIRY_MARGIN_MS) / 1000);
}

/**
 * How often pg-boss's maintenance (which expires jobs) runs: as often as the shortest expiry, so
 * a job left active by a killed instance is freed within two expiries, not pg-boss's default
 * minute. Only one instance runs it per interval (pg-boss keeps the time in the database).
 */
export function maintenanceSeconds(schedules: Readonly<Record<string, JobSchedule>>): number {
  const shortest = Math.min(...Object.values(schedules).map(expirySeconds));
  return Math.max(1, Math.min(60, shortest));
}

/**
 * The background loops on pg-boss 10. Why pg-boss: it needs only Postgres (no Redis), its jobs
 * survive restarts, and its singleton slots make a schedule run once per interval however many
 * desk instances tick it. Each instance calls `sendThrottled(name, ..., intervalSec)` on a local
 * timer; pg-boss turns every send of the same slot into one job (a `singletonKey` + `singletonOn`
 * unique index), and the `stately` queue policy keeps at most one queued and one active job per
 * loop, so a slow run is never stacked behind itself. pg-boss's own cron (`schedule`) has minute
 * granularity, too coarse for provider health.
 *
 * Each run executes under `runWithBudget` (its deadline bounds every query it makes), writes a
 * beat to autonomy_heartbeats and to the heartbeat sink, and pg-boss expires a job that somehow
 * outlives budget + margin (a run on an instance that was killed): the loop resumes on another
 * instance within `expirySeconds + maintenanceSeconds`.
 */
export async function startJobRunner(o: JobRunnerOptions): Promise<JobRunner> {
  const instance = o.instance ?? `${hostname()}:${process.pid}`;
  const schedules = { ...JOB_SCHEDULES, ...o.schedules } as Record<JobName, JobSchedule>;
  let stopped = false;
  const boss = new PgBoss({
    connectionString: o.databaseUrl,
    max: 3,
    application_name: 'desk:jobs',
    schedule: false,
    supervise: true,
    maintenanceIntervalSeconds: maintenanceSeconds(schedules),
  });
  // Once stopping, pg-boss's connections may see the server go first: that is no news.
  boss.on('error', (err: Error) =>
    o.logger[stopped ? 'debug' : 'warn']({ err: { message: err.message } }, 'pg-boss error'),
  );
  await boss.start();

  const timers: NodeJS.Timeout[] = [];

  async function run(job: JobName): Promise<void> {
    const { budgetMs, everyMs } = schedules[job];
    const started = performance.now();
    let detail = '';
    let errorCode: string | null = null;
    try {
      detail = await runWithBudget(`job:${job}`, budgetMs, () => JOB_BODIES[job]({ db: o.db, deps: o.deps }));
    } catch (err) {
      errorCode = isHangproofError(err) ? err.code : 'INTERNAL';
      o.logger.warn({ job, error_code: errorCode, err: isHangproofError(err) ? undefined : err }, 'job run failed');
    }
    const durationMs = Math.round(performance.now() - started);
    o.heartbeats?.report(job, {
      ok: errorCode === null,
      durationMs,
      detail: errorCode ?? detail,
      expectedEveryMs: everyMs,
    });
    // The beat has its own small budget: a failing database must not hang the loop here either.
    await runWithBudget(`job:${job}:heartbeat`, 2_000, () =>
      o.db.query(
        `INSERT INTO autonomy_heartbeats (loop, last_beat_at, last_ok_at, last_duration_ms, last_error_code, runs, instance)
         VALUES ($1, now(), CASE WHEN $3::text IS NULL THEN now() END, $2, $3, 1, $4)
         ON CONFLICT (loop) DO UPDATE SET last_beat_at = now(),
           last_ok_at = CASE WHEN $3::text IS NULL THEN now() ELSE autonomy_heartbeats.last_ok_at END,
           last_duration_ms = $2, last_error_code = $3, runs = autonomy_heartbeats.runs + 1, instance = $4`,
        [job, durationMs, errorCode, instance],
      ),
    ).catch((err: unknown) =>
      o.logger.warn({ job, error_code: isHangproofError(err) ? err.code : 'INTERNAL' }, 'heartbeat write failed'),
    );
    if (errorCode !== null) throw new Error(`job ${job} failed with ${errorCode}`);
  }

  for (const job of JOB_NAMES) {
    const { everyMs } = schedules[job];
    const queue = {
      name: job,
      policy: 'stately',
      retryLimit: 0,
      expireInSeconds: expirySeconds(schedules[job]),
      retentionMinutes: 10,
    } as const;
    // createQueue leaves an existing queue as it was: update it so a warm start gets today's limits.
    await retryOnDeadlock(() => boss.createQueue(job, queue));
    await boss.updateQueue(job, queue);
    await boss.work(job, { pollingIntervalSeconds: Math.max(0.5, Math.min(2, everyMs / 2000)) }, async () => run(job));
    const intervalSec = Math.max(1, Math.round(everyMs / 1000));
    const tick = (): void => {
      if (stopped) return;
      boss
        .sendThrottled(job, {}, {}, intervalSec, job)
        .catch((err: Error) => o.logger.warn({ job, err: { message: err.message } }, 'job schedule failed'));
    };
    tick();
    const timer = setInterval(tick, Math.max(500, everyMs / 2));
    timer.unref();
    timers.push(timer);
  }

  return {
    schedule: (job) => schedules[job],
    runNow: (job) => run(job),
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) clearInterval(t);
      await Promise.race([
        boss.stop({ graceful: true, wait: true, timeout: STOP_TIMEOUT_MS }),
        new Promise((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS + 1_000).unref()),
      ]);
    },
  };
}

/** Attempts of a queue creation that Postgres chose as a deadlock victim. */
const DEADLOCK_ATTEMPTS = 5;

/**
 * Runs `create` again when Postgres aborts it as a deadlock victim (40P01), with full-jitter
 * backoff (50 ms doubling), at most 5 attempts. Why: instances that start together on a fresh
 * database create the same pg-boss queues at once, and pg-boss's `create_queue` (insert the queue
 * row, then create its partition with a foreign key to the queue table) deadlocks when two run
 * concurrently. It is idempotent (the insert is ON CONFLICT DO NOTHING), so running it again is
 * safe, and each deadlock is detected within the server's `deadlock_timeout` (1 s by default).
 */
export async function retryOnDeadlock(create: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await create();
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== '40P01' || attempt >= DEADLOCK_ATTEMPTS) throw err;
      await sleep(Math.random() * 50 * 2 ** attempt);
    }
  }
}
