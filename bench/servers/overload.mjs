// Benchmark server for the overload suite: GET /work holds a pooled Postgres connection for a
// while (`SELECT pg_sleep`), 2 ms normally and SLOW_MS once POST /slow is called, so the route's
// capacity drops tenfold at a known moment. BENCH_SCENARIO: `fixed` (the default limit of 200 in
// flight), `adaptive-long-wait` (the same ceiling with adaptiveLimit, keeping the fixed limit's
// 100 ms queue wait) or `adaptive` (adaptiveLimit with its defaults, a 10 ms queue wait).
// DATABASE_URL points at Postgres.
import Fastify from 'fastify';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { observe } from 'hangproof/observe';
import { createDatabase } from 'hangproof/pg';
import { pino } from 'pino';
import { serveBenchProtocol } from './protocol.mjs';

const scenario = process.env.BENCH_SCENARIO ?? 'fixed';
const LIMITS = {
  fixed: {},
  'adaptive-long-wait': { adaptiveLimit: true, queueWaitMs: 100 },
  adaptive: { adaptiveLimit: true },
};
const limits = LIMITS[scenario];
if (limits === undefined) throw new Error(`unknown scenario '${scenario}'`);
const url = process.env.DATABASE_URL;
if (url === undefined) throw new Error('DATABASE_URL is required');
const POOL_MAX = 10;
const DEADLINE_MS = 2_000;
const slowMs = Number(process.env.SLOW_MS ?? 20);
const silent = pino({ level: 'silent' });
const db = createDatabase({ connectionString: url, max: POOL_MAX, maxWaiting: 1_000, logger: silent });
let delaySec = 0.002;

const app = Fastify(serverOptions({ maxDeadlineMs: DEADLINE_MS }));
await app.register(hangproof, { logger: silent, deadlineMs: DEADLINE_MS });
await app.register(observe, { logger: silent, exemptPaths: ['/slow'], ...limits });
app.get('/work', async () => {
  await db.query('SELECT pg_sleep($1)', [delaySec]);
  return { ok: true };
});
app.post('/slow', async () => {
  delaySec = slowMs / 1000;
  return { delayMs: slowMs };
});
app.get('/limit', async () => app.observe.snapshot().overload);
const address = await app.listen({ port: 0, host: '127.0.0.1' });
serveBenchProtocol(`${address}/work`);
