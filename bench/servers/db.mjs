// Benchmark server for the db suite: one indexed Postgres query per request. BENCH_SCENARIO picks
// what wraps the same route: `bare` (Fastify + pg Pool), `bare-logged` (the same with Fastify's
// request logging), `bare-stack` (bare on a stack of clients instead of pg-pool), `hangproof`
// (edge plugin with its log line, hangproof/pg guard, observe plugin with histograms and
// /metrics), `pg-only` (bare with the hangproof/pg guard alone), `pg-ctx` (the guard inside a
// request context, no plugin), `edge-only`, `als-only` or `otel` (bare, run with
// --import ./otel-preload.mjs). DATABASE_URL points at the seeded database.
import Fastify from 'fastify';
import { pino } from 'pino';
import { serveBenchProtocol } from './protocol.mjs';

const scenario = process.env.BENCH_SCENARIO ?? 'bare';
const url = process.env.DATABASE_URL;
if (url === undefined) throw new Error('DATABASE_URL is required');
const POOL_MAX = 10;
const SQL = 'SELECT id, name, stage, updated_at FROM bots WHERE user_id = $1 ORDER BY updated_at DESC LIMIT 50';
const devNull = () => pino.destination({ dest: '/dev/null', sync: false });
// The request log line goes through hangproof's batching logger, as the docs recommend for busy
// services; BENCH_LOG=line writes each line at once instead (one write call per request).
const requestLogger = (bufferedLogger) =>
  process.env.BENCH_LOG === 'line' ? pino({ level: 'info' }, devNull()) : bufferedLogger({ dest: '/dev/null' });

let app;
if (scenario === 'bare-logged') {
  // The bare route with Fastify's default request logging (an "incoming request" and a "request
  // completed" line), through the same batching logger hangproof's scenarios use.
  const { default: pg } = await import('pg');
  const { bufferedLogger } = await import('hangproof/fastify');
  const pool = new pg.Pool({ connectionString: url, max: POOL_MAX });
  pool.on('error', () => {});
  app = Fastify({ loggerInstance: bufferedLogger({ dest: '/dev/null' }) });
  app.get('/bots/:userId', async (req) => (await pool.query(SQL, [Number(req.params.userId)])).rows);
} else if (scenario === 'bare' || scenario === 'otel') {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: POOL_MAX });
  pool.on('error', () => {});
  app = Fastify();
  app.get('/bots/:userId', async (req) => (await pool.query(SQL, [Number(req.params.userId)])).rows);
} else if (scenario === 'bare-stack') {
  // The bare route on POOL_MAX clients kept on a stack of its own instead of pg-pool: what
  // pg-pool's checkout and release cost a query (hangproof/pg keeps released connections on such
  // a stack). Queries that find no client wait in a FIFO bounded by the load's connections.
  const { default: pg } = await import('pg');
  const idle = [];
  const waiting = [];
  for (let i = 0; i < POOL_MAX; i++) {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => {});
    await client.connect();
    idle.push(client);
  }
  const run = (text, values, done) => {
    const client = idle.pop();
    if (client === undefined) {
      waiting.push([text, values, done]);
      return;
    }
    client.query(text, values, (err, result) => {
      idle.push(client);
      const next = waiting.shift();
      if (next !== undefined) run(...next);
      done(err, result);
    });
  };
  const query = (text, values) =>
    new Promise((resolve, reject) => run(text, values, (err, result) => (err ? reject(err) : resolve(result))));
  app = Fastify();
  app.get('/bots/:userId', async (req) => (await query(SQL, [Number(req.params.userId)])).rows);
} else if (scenario === 'edge-only' || scenario === 'als-only') {
  // The request edge without the guard: plain pg Pool behind the hangproof plugin (`edge-only`),
  // or behind nothing but one AsyncLocalStorage.run per request (`als-only`), which isolates what
  // context propagation itself costs on this Node version.
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: POOL_MAX });
  pool.on('error', () => {});
  if (scenario === 'edge-only') {
    const { bufferedLogger, hangproof, serverOptions } = await import('hangproof/fastify');
    app = Fastify(serverOptions({ maxDeadlineMs: 10_000 }));
    await app.register(hangproof, { logger: requestLogger(bufferedLogger), deadlineMs: 10_000 });
  } else {
    const { AsyncLocalStorage } = await import('node:async_hooks');
    const als = new AsyncLocalStorage();
    app = Fastify();
    app.addHook('onRequest', (_req, _reply, done) => als.run({}, done));
  }
  app.get('/bots/:userId', async (req) => (await pool.query(SQL, [Number(req.params.userId)])).rows);
} else if (scenario === 'pg-only') {
  // The guard alone, outside any request context: its cost without the plugin or observe.
  const { createDatabase } = await import('hangproof/pg');
  const db = createDatabase({ connectionString: url, max: POOL_MAX, logger: pino({ level: 'warn' }, devNull()) });
  app = Fastify();
  app.get('/bots/:userId', async (req) => (await db.query(SQL, [Number(req.params.userId)])).rows);
} else if (scenario === 'pg-ctx') {
  // The guard inside a hangproof request context, without the plugin: what the guard costs when
  // it watches a request (its abort, spans, application_name) and its promises run under
  // AsyncLocalStorage.
  const { createDatabase } = await import('hangproof/pg');
  const { RequestContext, runWithContext } = await import('hangproof');
  const db = createDatabase({ connectionString: url, max: POOL_MAX, logger: pino({ level: 'warn' }, devNull()) });
  app = Fastify();
  app.addHook('onRequest', (req, reply, done) => {
    const ctx = new RequestContext({ requestId: req.id, budgetMs: 10_000, name: '/bots/:userId' });
    reply.raw.once('close', () => ctx.end());
    runWithContext(ctx, done);
  });
  app.get('/bots/:userId', async (req) => (await db.query(SQL, [Number(req.params.userId)])).rows);
} else if (scenario.startsWith('hangproof')) {
  const { bufferedLogger, hangproof, serverOptions } = await import('hangproof/fastify');
  const { createDatabase } = await import('hangproof/pg');
  const adminToken = 'bench-admin-token-0123456789';
  // BENCH_PG_OPTIONS: extra createDatabase options as JSON, for comparing guard settings.
  const extra = JSON.parse(process.env.BENCH_PG_OPTIONS ?? '{}');
  const db = createDatabase({
    connectionString: url,
    max: POOL_MAX,
    logger: pino({ level: 'warn' }, devNull()),
    ...extra,
  });
  app = Fastify(serverOptions({ maxDeadlineMs: 10_000 }));
  await app.register(hangproof, { logger: requestLogger(bufferedLogger), deadlineMs: 10_000, adminToken });
  if (process.env.BENCH_OBSERVE !== '0') {
    const { observe } = await import('hangproof/observe');
    // BENCH_OBSERVE_OPTIONS: extra observe options as JSON, for comparing observe settings.
    const observeExtra = JSON.parse(process.env.BENCH_OBSERVE_OPTIONS ?? '{}');
    await app.register(observe, { pools: { main: db }, logger: pino({ level: 'info' }, devNull()), ...observeExtra });
  }
  app.get('/bots/:userId', async (req) => (await db.query(SQL, [Number(req.params.userId)])).rows);
} else {
  throw new Error(`unknown scenario '${scenario}'`);
}
const address = await app.listen({ port: 0, host: '127.0.0.1' });
serveBenchProtocol(`${address}/bots/42`);
