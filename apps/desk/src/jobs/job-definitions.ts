import type { Dependencies } from 'hangproof/deps';
import type { Database, Transaction } from 'hangproof/pg';

/** The autonomy loops: each writes summary tables the pages read. */
export const JOB_NAMES = [
  'metrics-aggregation',
  'equity-curves',
  'strategy-scoring',
  'tournament-ranking',
  'provider-health',
] as const;
export type JobName = (typeof JOB_NAMES)[number];

/** What one run tells its heartbeat: a short, client-safe note. */
export type JobBody = (env: JobEnv) => Promise<string>;

export interface JobEnv {
  readonly db: Database;
  readonly deps: Dependencies;
}

/** Rows each batched job handles per run; the next run resumes where this one stopped. */
export const BATCH = Object.freeze({ users: 100, bots: 1_000, equityBots: 500 });

/**
 * Advances the cursor of `job` over `table`'s ids: returns the first and last id of the next
 * batch of `size`, wrapping to the start after the last one. Bounded by the LIMIT.
 */
async function nextBatch(
  t: Transaction,
  job: string,
  table: 'users' | 'bots',
  size: number,
): Promise<[string, string] | undefined> {
  const cur = await t.query<{ last_id: string }>('SELECT last_id FROM job_cursors WHERE job = $1 FOR UPDATE', [job]);
  const after = cur.rows[0]?.last_id ?? '0';
  let range = await t.query<{ lo: string | null; hi: string | null; n: number }>(
    `SELECT min(id) AS lo, max(id) AS hi, count(*)::int AS n FROM (SELECT id FROM ${table} WHERE id > $1 ORDER BY id LIMIT ${size}) s`,
    [after],
  );
  if (range.rows[0]?.n === 0 && after !== '0') {
    range = await t.query(
      `SELECT min(id) AS lo, max(id) AS hi, count(*)::int AS n FROM (SELECT id FROM ${table} ORDER BY id LIMIT ${size}) s`,
    );
  }
  const r = range.rows[0];
  if (r === undefined || r.lo === null || r.hi === null) return undefined;
  await t.query(
    `INSERT INTO job_cursors (job, last_id) VALUES ($1, $2)
     ON CONFLICT (job) DO UPDATE SET last_id = excluded.last_id, updated_at = now()`,
    [job, r.hi],
  );
  return [r.lo, r.hi];
}

/**
 * Counts by stage, bot performance and recent audits for the next batch of users (and their
 * bots), then the global figures from the summary tables. A full pass over 1,000 users takes
 * ten runs; a write to a bot keeps its own count up to date in between.
 */
const metricsAggregation: JobBody = async ({ db }) =>
  db.tx(async (t) => {
    const batch = await nextBatch(t, 'metrics-aggregation', 'users', BATCH.users);
    if (batch === undefined) return 'no users';
    const [lo, hi] = batch;
    await t.query('DELETE FROM user_stage_counts WHERE user_id BETWEEN $1 AND $2', batch);
    await t.query(
      `INSERT INTO user_stage_counts (user_id, stage, bot_count)
       SELECT user_id, stage, count(*) FROM bots WHERE user_id BETWEEN $1 AND $2 GROUP BY user_id, stage`,
      batch,
    );
    const perf = await t.query(
      `INSERT INTO bot_performance (bot_id, user_id, strategy, sessions, total_pnl, avg_sharpe, best_sharpe, last_backtest_at, score, computed_at)
       SELECT b.id, b.user_id, b.strategy, count(s.id), coalesce(sum(s.pnl), 0), coalesce(avg(s.sharpe), 0), coalesce(max(s.sharpe), 0),
              max(s.created_at), round((coalesce(avg(s.sharpe), 0) * ln(2 + count(s.id)) + coalesce(sum(s.pnl), 0) / 100000)::numeric, 4), now()
       FROM bots b LEFT JOIN backtest_sessions s ON s.bot_id = b.id
       WHERE b.user_id BETWEEN $1 AND $2 GROUP BY b.id
       ON CONFLICT (bot_id) DO UPDATE SET sessions = excluded.sessions, total_pnl = excluded.total_pnl, avg_sharpe = excluded.avg_sharpe,
         best_sharpe = excluded.best_sharpe, last_backtest_at = excluded.last_backtest_at, score = excluded.score, computed_at = now()`,
      batch,
    );
    await t.query('DELETE FROM recent_audits WHERE user_id BETWEEN $1 AND $2', batch);
    await t.query(
      `INSERT INTO recent_audits (user_id, audit_id, bot_id, bot_name, checked_at, kind, ok, latency_ms)
       SELECT r.user_id, r.id, r.bot_id, r.name, r.checked_at, r.kind, r.ok, r.latency_ms FROM (
         SELECT b.user_id, b.name, a.*, row_number() OVER (PARTITION BY b.user_id ORDER BY a.checked_at DESC) AS rn
         FROM bots b CROSS JOIN LATERAL (
           SELECT id, bot_id, checked_at, kind, ok, latency_ms FROM execution_audits e
           WHERE e.bot_id = b.id ORDER BY e.checked_at DESC LIMIT 3) a
         WHERE b.user_id BETWEEN $1 AND $2) r
       WHERE r.rn <= 20`,
      batch,
    );
    await t.query(
      `INSERT INTO metrics_summary (key, value, computed_at)
       SELECT 'bots_by_stage', coalesce(json_object_agg(stage, n), '{}')::jsonb, now()
       FROM (SELECT stage, sum(bot_count)::int AS n FROM user_stage_counts GROUP BY stage) s
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, computed_at = now()`,
    );
    await t.query(
      `INSERT INTO metrics_summary (key, value, computed_at)
       SELECT 'performance', json_build_object('bots', count(*), 'total_pnl', round(sum(total_pnl), 2),
              'avg_sharpe', round(avg(avg_sharpe), 3))::jsonb, now()
       FROM bot_performance
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, computed_at = now()`,
    );
    return `users ${lo}-${hi}, ${perf.rowCount ?? 0} bots`;
  });

/** Daily equity of the next batch of bots over the last 90 days, from their backtests. */
const equityCurves: JobBody = async ({ db }) =>
  db.tx(async (t) => {
    const batch = await nextBatch(t, 'equity-curves', 'bots', BATCH.equityBots);
    if (batch === undefined) return 'no bots';
    await t.query('DELETE FROM equity_curves WHERE bot_id BETWEEN $1 AND $2 AND day < current_date - 90', batch);
    const r = await t.query(
      `INSERT INTO equity_curves (bot_id, day, equity, computed_at)
       SELECT bot_id, day, b.capital + sum(pnl) OVER (PARTITION BY bot_id ORDER BY day), now()
       FROM (SELECT s.bot_id, s.created_at::date AS day, sum(s.pnl) AS pnl
             FROM backtest_sessions s
             WHERE s.bot_id BETWEEN $1 AND $2 AND s.created_at > now() - interval '90 days'
             GROUP BY s.bot_id, s.created_at::date) d
       JOIN bots b ON b.id = d.bot_id
       ON CONFLICT (bot_id, day) DO UPDATE SET equity = excluded.equity, computed_at = now()`,
      batch,
    );
    return `bots ${batch[0]}-${batch[1]}, ${r.rowCount ?? 0} points`;
  });

/** Per-strategy scores from the (bounded) bot performance summary. */
const strategyScoring: JobBody = async ({ db }) => {
  const r = await db.query(
    `INSERT INTO strategy_scores (strategy, bots, avg_sharpe, avg_pnl, score, computed_at)
     SELECT strategy, count(*), round(avg(avg_sharpe), 3), round(avg(total_pnl), 2), round(avg(score), 4), now()
     FROM (SELECT strategy, avg_sharpe, total_pnl, score FROM bot_performance ORDER BY bot_id LIMIT 200000) p
     GROUP BY strategy
     ON CONFLICT (strategy) DO UPDATE SET bots = excluded.bots, avg_sharpe = excluded.avg_sharpe, avg_pnl = excluded.avg_pnl,
       score = excluded.score, computed_at = now()`,
  );
  return `${r.rowCount ?? 0} strategies`;
};

/** The top 100 bots by score (an index scan of bot_performance_score), replaced atomically. */
const tournamentRanking: JobBody = async ({ db }) =>
  db.tx(async (t) => {
    await t.query('DELETE FROM tournament_ranking');
    const r = await t.query(
      `INSERT INTO tournament_ranking (rank, bot_id, user_id, bot_name, strategy, score, computed_at)
       SELECT row_number() OVER (ORDER BY p.score DESC, p.bot_id), p.bot_id, p.user_id, b.name, p.strategy, p.score, now()
       FROM (SELECT bot_id, user_id, strategy, score FROM bot_performance ORDER BY score DESC, bot_id LIMIT 100) p
       JOIN bots b ON b.id = p.bot_id`,
    );
    return `${r.rowCount ?? 0} ranked`;
  });

/**
 * Probes every provider now (each probe bounded by its health timeout) and records the result in
 * provider_health, so every desk instance and the status history share it.
 */
const providerHealth: JobBody = async ({ db, deps }) => {
  await deps.probeAll();
  const rows = deps.status().dependencies.filter((d) => d.health !== null);
  for (const d of rows) {
    const h = d.health;
    if (h === null) continue;
    await db.query(
      `INSERT INTO provider_health (provider, status, latency_ms, error_code, checked_at, last_up_at)
       VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()), $6)
       ON CONFLICT (provider) DO UPDATE SET status = excluded.status, latency_ms = excluded.latency_ms,
         error_code = excluded.error_code, checked_at = excluded.checked_at, last_up_at = coalesce(excluded.last_up_at, provider_health.last_up_at)`,
      [
        d.name,
        h.state === 'up' ? 'up' : 'down',
        h.lastDurationMs === null ? null : Math.round(h.lastDurationMs),
        h.lastErrorCode,
        h.lastProbeAt,
        h.lastUpAt,
      ],
    );
  }
  return rows.map((d) => `${d.name}:${d.health?.state ?? 'unknown'}`).join(' ');
};

export const JOB_BODIES: Readonly<Record<JobName, JobBody>> = Object.freeze({
  'metrics-aggregation': metricsAggregation,
  'equity-curves': equityCurves,
  'strategy-scoring': strategyScoring,
  'tournament-ranking': tournamentRanking,
  'provider-health': providerHealth,
});
