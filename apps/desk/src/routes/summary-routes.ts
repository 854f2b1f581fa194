import type { FastifyInstance } from 'fastify';
import type { DeskContext } from '../desk-context.js';
import { JOB_NAMES } from '../jobs/job-definitions.js';
import { applyRouteFaults } from './route-faults.js';

/** Rows shown in each overview list. */
const BEST_PERFORMERS = 5;
const RECENT_AUDITS = 20;
const LEADERBOARD = 10;

/**
 * Pages built only from summary tables (written by the jobs): each is one statement of small
 * index lookups, so its cost does not grow with the big tables and no provider is ever called.
 */
export async function summaryRoutes(app: FastifyInstance, desk: DeskContext): Promise<void> {
  const { db, authenticate } = desk;

  app.get('/api/bots/overview', async (request) => {
    const { userId } = await authenticate(request);
    await applyRouteFaults(desk, 'overview');
    const { rows } = await db.query(
      `SELECT
        (SELECT coalesce(json_object_agg(stage, bot_count), '{}') FROM user_stage_counts WHERE user_id = $1) AS counts_by_stage,
        (SELECT coalesce(json_agg(t), '[]') FROM (
           SELECT p.bot_id::text AS bot_id, b.name, p.strategy, b.stage, p.total_pnl::float8 AS total_pnl, p.avg_sharpe::float8 AS avg_sharpe,
                  p.score::float8 AS score
           FROM bot_performance p JOIN bots b ON b.id = p.bot_id
           WHERE p.user_id = $1 ORDER BY p.total_pnl DESC LIMIT ${BEST_PERFORMERS}) t) AS best_performers,
        (SELECT coalesce(json_agg(t), '[]') FROM (
           SELECT audit_id::text AS audit_id, bot_id::text AS bot_id, bot_name, checked_at, kind, ok, latency_ms
           FROM recent_audits WHERE user_id = $1 ORDER BY checked_at DESC LIMIT ${RECENT_AUDITS}) t) AS recent_audits,
        (SELECT max(computed_at) FROM (SELECT computed_at FROM bot_performance WHERE user_id = $1 ORDER BY total_pnl DESC LIMIT ${BEST_PERFORMERS}) t) AS computed_at`,
      [userId],
    );
    const row = rows[0] as Record<string, unknown>;
    const counts = row.counts_by_stage as Record<string, number>;
    return {
      countsByStage: counts,
      totalBots: Object.values(counts).reduce((a, b) => a + b, 0),
      bestPerformers: row.best_performers,
      recentAudits: row.recent_audits,
      computedAt: row.computed_at,
    };
  });

  app.get('/api/metrics/summary', async (request) => {
    const { userId } = await authenticate(request);
    await applyRouteFaults(desk, 'metrics');
    const { rows } = await db.query(
      `SELECT
        (SELECT coalesce(json_object_agg(stage, bot_count), '{}') FROM user_stage_counts WHERE user_id = $1) AS my_counts_by_stage,
        (SELECT row_to_json(t) FROM (
           SELECT count(*)::int AS bots, coalesce(sum(total_pnl), 0)::float8 AS total_pnl,
                  coalesce(avg(avg_sharpe), 0)::float8 AS avg_sharpe, max(computed_at) AS computed_at
           FROM bot_performance WHERE user_id = $1) t) AS my_performance,
        (SELECT coalesce(json_object_agg(key, value), '{}') FROM (SELECT key, value FROM metrics_summary ORDER BY key LIMIT 50) m) AS global,
        (SELECT coalesce(json_agg(t ORDER BY t.score DESC), '[]') FROM (
           SELECT strategy, bots, avg_sharpe::float8 AS avg_sharpe, avg_pnl::float8 AS avg_pnl, score::float8 AS score, computed_at
           FROM strategy_scores ORDER BY score DESC LIMIT 50) t) AS strategies,
        (SELECT coalesce(json_agg(t ORDER BY t.rank), '[]') FROM (
           SELECT rank, bot_id::text AS bot_id, user_id::text AS user_id, bot_name, strategy, score::float8 AS score FROM tournament_ranking
           ORDER BY rank LIMIT ${LEADERBOARD}) t) AS leaderboard`,
      [userId],
    );
    const row = rows[0] as Record<string, unknown>;
    return {
      mine: { countsByStage: row.my_counts_by_stage, performance: row.my_performance },
      global: row.global,
      strategies: row.strategies,
      leaderboard: row.leaderboard,
    };
  });

  app.get('/api/autonomy/status', async (request) => {
    await authenticate(request);
    const { rows } = await db.query<
      { loop: string; last_beat_at: Date; last_ok_at: Date | null } & Record<string, unknown>
    >(
      `SELECT loop, last_beat_at, last_ok_at, last_duration_ms, last_error_code, runs::int AS runs, instance
       FROM autonomy_heartbeats WHERE loop = ANY($1) ORDER BY loop`,
      [JOB_NAMES],
    );
    const byLoop = new Map(rows.map((r) => [r.loop, r]));
    const now = Date.now();
    return {
      loops: JOB_NAMES.map((loop) => {
        const r = byLoop.get(loop);
        if (r === undefined) return { loop, status: 'never_ran', lastBeatAt: null };
        const ageMs = now - r.last_beat_at.getTime();
        const everyMs = desk.jobIntervalMs(loop);
        const status = ageMs > 3 * everyMs ? 'stale' : r.last_error_code === null ? 'ok' : 'failing';
        return {
          loop,
          status,
          lastBeatAt: r.last_beat_at,
          lastOkAt: r.last_ok_at,
          ageMs,
          expectedEveryMs: everyMs,
          lastDurationMs: r.last_duration_ms,
          lastErrorCode: r.last_error_code,
          runs: r.runs,
          instance: r.instance,
        };
      }),
    };
  });

  // From the health cache the background probes keep: never a call to a provider inline.
  app.get('/api/providers/health', async (request) => {
    await authenticate(request);
    const status = desk.deps.status();
    return {
      source: 'health-cache',
      providers: status.dependencies.map((d) => ({
        name: d.name,
        status: d.health?.state ?? 'unknown',
        lastProbeAt: d.health?.lastProbeAt ?? null,
        lastUpAt: d.health?.lastUpAt ?? null,
        lastErrorCode: d.health?.lastErrorCode ?? null,
        lastError: d.health?.lastError ?? null,
        lastProbeMs: d.health?.lastDurationMs ?? null,
        breaker: d.breaker.state,
        latencyMs: d.latencyMs,
      })),
    };
  });
}
