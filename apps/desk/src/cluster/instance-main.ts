/**
 * One desk instance of a cluster (started by `npm run start:cluster`, one process each). Unlike
 * `npm start` it never starts Postgres or the simulated providers and never migrates or seeds: the
 * launcher did that once, directly against Postgres, before any instance started. Its
 * DATABASE_URL points at PgBouncer, where migrations would break (node-pg-migrate's session
 * advisory lock cannot live in transaction pooling).
 *
 * Environment: what `npm start` reads (PORT, HOST, DATABASE_URL required here, MARKET_DATA_URL,
 * BROKER_URL, ADMIN_TOKEN, LOG_LEVEL) plus DESK_INSTANCE_ID, DESK_CLUSTER_PEERS (`id=url,...`),
 * DESK_CLUSTER_SIZE and DESK_POOL_MAX.
 */
import { installShutdown } from 'hangproof/fastify';
import { pino } from 'pino';
import { buildDesk } from '../build-desk.js';
import { ConfigError, parseConfig } from '../config.js';
import { parsePeers } from './parse-peers.js';

const fail = (message: string, code: number): never => {
  process.stderr.write(`desk instance: ${message}\n`);
  process.exit(code);
};

try {
  const config = parseConfig(process.env);
  const { databaseUrl, marketDataUrl, brokerUrl } = config;
  if (databaseUrl === undefined || marketDataUrl === undefined || brokerUrl === undefined) {
    throw new ConfigError('DATABASE_URL', 'a cluster instance needs DATABASE_URL, MARKET_DATA_URL and BROKER_URL');
  }
  const id = process.env.DESK_INSTANCE_ID?.trim() || `desk-${process.pid}`;
  const peers = parsePeers(process.env.DESK_CLUSTER_PEERS ?? '');
  const poolMax = Number(process.env.DESK_POOL_MAX ?? '10');
  if (!Number.isInteger(poolMax) || poolMax < 1) throw new ConfigError('DESK_POOL_MAX', 'must be a positive integer');
  const logger = pino({ name: 'desk', base: { instance: id }, level: process.env.LOG_LEVEL ?? 'info' });
  const desk = await buildDesk({
    databaseUrl,
    marketDataUrl,
    brokerUrl,
    adminToken: config.adminToken,
    logger,
    poolMax,
    // Instances reach Postgres through PgBouncer in transaction mode, which does not pass the
    // session's limits on: every statement sends its own.
    statementLimits: 'always',
    statusSettings: { instances: Number(process.env.DESK_CLUSTER_SIZE ?? peers.length) || 1 },
    cluster: { self: id, peers, adminToken: config.adminToken },
    ...(process.env.DESK_JOB_EVERY_MS === undefined
      ? {}
      : { jobSchedules: fastSchedules(process.env.DESK_JOB_EVERY_MS) }),
  });
  await desk.app.listen({ port: config.port, host: config.host });
  const shutdown = installShutdown(desk.app, { logger });
  shutdown.onShutdown('desk', () => desk.release());
  logger.info({ event: 'instance_ready', port: config.port, pid: process.pid }, `desk instance ${id} ready`);
} catch (err) {
  if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`, 2);
  fail(`could not start: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`, 1);
}

/** Test hook: every loop every N ms (budgets capped below it), to see jobs run within seconds. */
function fastSchedules(raw: string) {
  const everyMs = Number(raw);
  if (!Number.isInteger(everyMs) || everyMs < 1000) throw new ConfigError('DESK_JOB_EVERY_MS', 'must be >= 1000');
  const s = { everyMs, budgetMs: Math.min(3_000, everyMs - 200) };
  return {
    'metrics-aggregation': s,
    'equity-curves': s,
    'strategy-scoring': s,
    'tournament-ranking': s,
    'provider-health': s,
  };
}
