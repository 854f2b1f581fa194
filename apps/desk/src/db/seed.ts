import { createHash } from 'node:crypto';
import pg from 'pg';
import type { SeedSize } from '../config.js';

/** Row counts of one seed volume. */
export interface SeedVolume {
  readonly users: number;
  readonly bots: number;
  readonly instances: number;
  readonly sessions: number;
  readonly audits: number;
}

/** `default` is the volume the issue names; `small` is 1/100 of it (tests), `large` 3x. */
export const SEED_VOLUMES: Readonly<Record<SeedSize, SeedVolume>> = Object.freeze({
  small: { users: 10, bots: 200, instances: 400, sessions: 2_000, audits: 20_000 },
  default: { users: 1_000, bots: 20_000, instances: 40_000, sessions: 200_000, audits: 2_000_000 },
  large: { users: 3_000, bots: 60_000, instances: 120_000, sessions: 600_000, audits: 6_000_000 },
});

export const STAGES = ['draft', 'backtest', 'paper', 'live', 'paused', 'retired'] as const;
export type Stage = (typeof STAGES)[number];
export const STRATEGIES = [
  'momentum',
  'mean_reversion',
  'breakout',
  'pairs',
  'market_making',
  'trend',
  'scalper',
  'carry',
];
export const SYMBOLS = ['ES', 'NQ', 'CL', 'GC', 'ZB', '6E', 'BTC', 'ETH', 'AAPL', 'MSFT', 'TSLA', 'SPY'];

/** The seeded user whose token is DEMO_USER_TOKEN; owns bots in every stage. */
export const DEMO_USER_EMAIL = 'demo@desk.local';

/** A seed never runs unbounded: each statement gets this long (the default volume needs a few s). */
const SEED_STATEMENT_TIMEOUT_MS = 300_000;
const CONNECT_TIMEOUT_MS = 5_000;

/** SHA-256 of a bearer token, as stored in users.token_hash. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export interface SeedResult {
  /** False when the database already held data (a warm start): nothing was inserted. */
  readonly seeded: boolean;
  readonly durationMs: number;
  readonly volume: SeedVolume;
}

/**
 * Fills an empty database with realistic volume, generated inside Postgres (INSERT ... SELECT
 * generate_series), so no row crosses the network. Everything runs in one transaction: an
 * interrupted seed leaves an empty database and the next start seeds again. The summary tables
 * are filled at the end so the pages have data before the first job runs. On a database that
 * already has users it only refreshes the demo user's token.
 */
export async function seedDatabase(
  databaseUrl: string,
  options: { size: SeedSize; demoUserToken: string; progress?: (line: string) => void },
): Promise<SeedResult> {
  const volume = SEED_VOLUMES[options.size];
  const progress = options.progress ?? (() => {});
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: SEED_STATEMENT_TIMEOUT_MS,
    application_name: 'desk:seed',
  });
  client.on('error', () => {});
  await client.connect();
  const started = performance.now();
  try {
    // Two desks starting together on an empty database must not both seed it.
    await client.query('BEGIN');
    await client.query("SELECT pg_advisory_xact_lock(hashtext('desk:seed'))");
    const { rows } = await client.query<{ has: boolean }>('SELECT EXISTS (SELECT 1 FROM users) AS has');
    if (rows[0]?.has === true) {
      await setDemoToken(client, options.demoUserToken);
      await client.query('COMMIT');
      return { seeded: false, durationMs: performance.now() - started, volume };
    }
    await client.query('SELECT setseed(0.42)');
    const steps = seedSteps(volume);
    for (const [i, s] of steps.entries()) {
      const t = performance.now();
      await client.query(s.sql);
      progress(`seed ${i + 1}/${steps.length}: ${s.label} (${Math.round(performance.now() - t)} ms)`);
    }
    await setDemoToken(client, options.demoUserToken);
    await client.query('COMMIT');
    // Fresh statistics so the first queries get good plans.
    await client.query('ANALYZE');
    return { seeded: true, durationMs: performance.now() - started, volume };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end().catch(() => {});
  }
}

async function setDemoToken(client: pg.Client, token: string): Promise<void> {
  await client.query('UPDATE users SET token_hash = $1 WHERE email = $2', [hashToken(token), DEMO_USER_EMAIL]);
}

const sqlList = (values: readonly string[]): string => `ARRAY[${values.map((v) => `'${v}'`).join(',')}]`;

/** The seed as ordered statements; numbers are inlined (they come from SEED_VOLUMES, not input). */
function seedSteps(v: SeedVolume): { label: string; sql: string }[] {
  const botsPerUser = Math.max(1, Math.floor(v.bots / v.users));
  const instancesPerBot = Math.max(1, Math.floor(v.instances / v.bots));
  const sessionsPerBot = Math.max(1, Math.floor(v.sessions / v.bots));
  const auditsPerBot = Math.max(1, Math.floor(v.audits / v.bots));
  return [
    {
      label: `${v.users} users`,
      // Tokens of the other users are random and unknown: only the demo user can sign in.
      sql: `INSERT INTO users (id, name, email, token_hash, created_at)
        SELECT g, CASE WHEN g = 1 THEN 'Demo Trader' ELSE 'Trader ' || g END,
               CASE WHEN g = 1 THEN '${DEMO_USER_EMAIL}' ELSE 'trader' || g || '@desk.local' END,
               sha256(convert_to(gen_random_uuid()::text, 'UTF8')),
               now() - (random() * 365) * interval '1 day'
        FROM generate_series(1, ${v.users}) g;
        SELECT setval('users_id_seq', ${v.users})`,
    },
    {
      label: `${v.bots} bots`,
      // Contiguous blocks per user, stages cycling inside a block: every user (the demo user
      // included) owns bots in every stage.
      sql: `INSERT INTO bots (id, user_id, name, strategy, symbol, stage, capital, created_at, updated_at)
        SELECT g, LEAST(${v.users}, (g - 1) / ${botsPerUser} + 1),
               (${sqlList(STRATEGIES)})[1 + (g % ${STRATEGIES.length})] || '-' || g,
               (${sqlList(STRATEGIES)})[1 + (g % ${STRATEGIES.length})],
               (${sqlList(SYMBOLS)})[1 + (g * 7 % ${SYMBOLS.length})],
               (${sqlList(STAGES)})[1 + ((g - 1) % ${STAGES.length})],
               round((1000 + random() * 99000)::numeric, 2),
               c, c + random() * (now() - c)
        FROM (SELECT g, now() - (30 + random() * 300) * interval '1 day' AS c FROM generate_series(1, ${v.bots}) g) s;
        SELECT setval('bots_id_seq', ${v.bots})`,
    },
    {
      label: `${v.bots * instancesPerBot} bot instances`,
      sql: `INSERT INTO bot_instances (bot_id, is_primary_runner, status, host, started_at, last_tick_at, position, unrealized_pnl)
        SELECT b.id, i = 1,
               CASE WHEN b.stage IN ('paper', 'live') AND i = 1 THEN 'running' ELSE 'stopped' END,
               'runner-' || (b.id % 16), now() - random() * interval '20 days',
               CASE WHEN b.stage IN ('paper', 'live') THEN now() - random() * interval '5 minutes'
                    ELSE now() - (1 + random() * 30) * interval '1 day' END,
               round((random() * 20 - 10)::numeric, 4), round((random() * 2000 - 1000)::numeric, 2)
        FROM bots b CROSS JOIN generate_series(1, ${instancesPerBot}) i`,
    },
    {
      // Bulk-load pattern: checking 2M foreign keys row by row and maintaining a B-tree on every
      // insert is most of the cost, so the big tables lose their FK and secondary index for the
      // load (inside this transaction, on an empty database) and get them back right after:
      // one sorted index build and one set-based FK validation are several times faster.
      label: 'bulk load: detach indexes and foreign keys of the big tables',
      sql: `ALTER TABLE backtest_sessions DROP CONSTRAINT backtest_sessions_bot_id_fkey;
        ALTER TABLE execution_audits DROP CONSTRAINT execution_audits_bot_id_fkey;
        DROP INDEX backtest_sessions_bot_created;
        DROP INDEX execution_audits_bot_checked`,
    },
    {
      label: `${v.bots * sessionsPerBot} backtest sessions`,
      sql: `INSERT INTO backtest_sessions (bot_id, created_at, period_days, trades, pnl, sharpe, max_drawdown)
        SELECT b, now() - random() * interval '180 days', 30 + (random() * 335)::int, (random() * 500)::int,
               round(((random() - 0.45) * 20000)::numeric, 2), round(((random() - 0.3) * 4)::numeric, 3),
               round((random() * 0.5)::numeric, 4)
        FROM generate_series(1, ${v.bots}) b CROSS JOIN generate_series(1, ${sessionsPerBot}) s`,
    },
    {
      label: `${v.bots * auditsPerBot} execution audits`,
      sql: `INSERT INTO execution_audits (bot_id, checked_at, kind, ok, latency_ms, detail)
        SELECT b, now() - random() * interval '30 days',
               (ARRAY['order_ack','fill_check','risk_limit','position_sync','heartbeat'])[1 + (a % 5)],
               random() > 0.03, (random() * random() * 2000)::int, NULL
        FROM generate_series(1, ${v.bots}) b CROSS JOIN generate_series(1, ${auditsPerBot}) a`,
    },
    {
      label: 'bulk load: rebuild indexes and foreign keys',
      // The same definitions as the migration (a test compares the schema with a migrated one).
      sql: `CREATE INDEX backtest_sessions_bot_created ON backtest_sessions (bot_id, created_at DESC);
        CREATE INDEX execution_audits_bot_checked ON execution_audits (bot_id, checked_at DESC);
        ALTER TABLE backtest_sessions ADD CONSTRAINT backtest_sessions_bot_id_fkey FOREIGN KEY (bot_id) REFERENCES bots (id);
        ALTER TABLE execution_audits ADD CONSTRAINT execution_audits_bot_id_fkey FOREIGN KEY (bot_id) REFERENCES bots (id)`,
    },
    { label: 'summaries: counts by stage', sql: SUMMARY_SQL.stageCounts },
    { label: 'summaries: bot performance', sql: SUMMARY_SQL.botPerformance },
    { label: 'summaries: recent audits', sql: SUMMARY_SQL.recentAudits },
    {
      label: 'summaries: strategy scores and ranking',
      sql: `${SUMMARY_SQL.strategyScores}; ${SUMMARY_SQL.tournament}`,
    },
  ];
}

/**
 * Whole-table summary statements, used once by the seed (inside its statement timeout). The jobs
 * compute the same summaries a bounded batch at a time (see jobs/).
 */
const SUMMARY_SQL = {
  stageCounts: `INSERT INTO user_stage_counts (user_id, stage, bot_count)
    SELECT user_id, stage, count(*) FROM bots GROUP BY user_id, stage`,
  botPerformance: `INSERT INTO bot_performance (bot_id, user_id, strategy, sessions, total_pnl, avg_sharpe, best_sharpe, last_backtest_at, score)
    SELECT b.id, b.user_id, b.strategy, count(s.id), coalesce(sum(s.pnl), 0), coalesce(avg(s.sharpe), 0),
           coalesce(max(s.sharpe), 0), max(s.created_at),
           round((coalesce(avg(s.sharpe), 0) * ln(2 + count(s.id)) + coalesce(sum(s.pnl), 0) / 100000)::numeric, 4)
    FROM bots b LEFT JOIN backtest_sessions s ON s.bot_id = b.id GROUP BY b.id`,
  recentAudits: `INSERT INTO recent_audits (user_id, audit_id, bot_id, bot_name, checked_at, kind, ok, latency_ms)
    SELECT r.user_id, r.id, r.bot_id, r.name, r.checked_at, r.kind, r.ok, r.latency_ms FROM (
      SELECT b.user_id, b.name, a.*, row_number() OVER (PARTITION BY b.user_id ORDER BY a.checked_at DESC) AS rn
      FROM bots b CROSS JOIN LATERAL (
        SELECT id, bot_id, checked_at, kind, ok, latency_ms FROM execution_audits e
        WHERE e.bot_id = b.id ORDER BY e.checked_at DESC LIMIT 3) a) r
    WHERE r.rn <= 20`,
  strategyScores: `INSERT INTO strategy_scores (strategy, bots, avg_sharpe, avg_pnl, score)
    SELECT strategy, count(*), round(avg(avg_sharpe), 3), round(avg(total_pnl), 2), round(avg(score), 4)
    FROM bot_performance GROUP BY strategy`,
  tournament: `INSERT INTO tournament_ranking (rank, bot_id, user_id, bot_name, strategy, score)
    SELECT row_number() OVER (ORDER BY p.score DESC, p.bot_id), p.bot_id, p.user_id, b.name, p.strategy, p.score
    FROM (SELECT * FROM bot_performance ORDER BY score DESC, bot_id LIMIT 100) p JOIN bots b ON b.id = p.bot_id`,
} as const;
