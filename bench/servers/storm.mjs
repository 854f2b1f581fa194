// Benchmark server for the storm suite: GET /api/bots reads one user's 50 latest bots from
// Postgres (10 pooled connections), as the desk's list route does, plus GET /healthz.
// BENCH_SCENARIO: `hangproof` (hangproof + observe with the desk's overload settings, and the
// probe listener on PROBE_PORT), `hangproof-defaults` (observe's default overload settings) or
// `fastify` (bare Fastify and pg with a similar limit-and-503 handler: 200 in flight, then 503
// with Retry-After). DATABASE_URL points at the seeded Postgres.
import Fastify from 'fastify';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { observe } from 'hangproof/observe';
import { createDatabase } from 'hangproof/pg';
import pg from 'pg';
import { pino } from 'pino';
import { serveBenchProtocol } from './protocol.mjs';

const scenario = process.env.BENCH_SCENARIO ?? 'hangproof';
const url = process.env.DATABASE_URL;
if (url === undefined) throw new Error('DATABASE_URL is required');
const POOL_MAX = 10;
const DEADLINE_MS = 2_000;
const LIMIT = 200;
const USERS = 2_000;
const SQL = 'SELECT id, name, stage, updated_at FROM bots WHERE user_id = $1 ORDER BY updated_at DESC LIMIT 50';
const silent = pino({ level: 'silent' });
/** The desk's overload settings (apps/desk/src/build-desk.ts). */
const DESK_OVERLOAD = { adaptiveLimit: true, maxQueued: 0 };
const userId = () => Math.floor(Math.random() * USERS);

/**
 * Where a probe's request waits: for GET /healthz on the main port, the epoch times (ms) of the
 * connection's accept ('connection' event), the 'request' event (headers parsed), the first
 * onRequest hook and the response's 'finish', keyed by the client's port; sent over IPC on
 * `{ cmd: 'probe-trace' }`. The listeners are prepended and the hook comes first, so they see each
 * step before the framework's own work. At most MAX_TRACED connections are remembered.
 */
function traceProbes(app) {
  const MAX_TRACED = 20_000;
  const acceptedAt = new Map();
  const traces = [];
  const now = () => performance.timeOrigin + performance.now();
  app.server.prependListener('connection', (socket) => {
    if (acceptedAt.size < MAX_TRACED) acceptedAt.set(socket.remotePort, now());
  });
  app.server.prependListener('request', (req, res) => {
    if (req.url !== '/healthz') return;
    const port = req.socket.remotePort;
    const trace = { port, acceptAt: acceptedAt.get(port), requestAt: now(), hookAt: 0, finishAt: 0 };
    req.trace = trace;
    res.once('finish', () => {
      trace.finishAt = now();
      if (traces.length < MAX_TRACED) traces.push(trace);
    });
  });
  process.on('message', (m) => {
    if (m.cmd === 'probe-trace') process.send?.({ type: 'probe-trace', traces });
  });
  return (request) => {
    if (request.raw.trace !== undefined) request.raw.trace.hookAt = now();
  };
}

const stamp = { hook: () => {} };
let app;
if (scenario.startsWith('hangproof')) {
  const db = createDatabase({ connectionString: url, max: POOL_MAX, logger: silent });
  app = Fastify(serverOptions({ maxDeadlineMs: DEADLINE_MS }));
  app.addHook('onRequest', (request, _reply, done) => {
    stamp.hook(request);
    done();
  });
  await app.register(hangproof, { logger: silent, deadlineMs: DEADLINE_MS });
  await app.register(observe, {
    logger: silent,
    probePort: Number(process.env.PROBE_PORT ?? 0),
    probeHost: '127.0.0.1',
    // `hangproof` runs the desk's overload settings; `hangproof-defaults` observe's defaults.
    ...(scenario === 'hangproof' ? DESK_OVERLOAD : {}),
    // BENCH_STORM_OBSERVE: observe options as JSON, for comparing overload settings.
    ...JSON.parse(process.env.BENCH_STORM_OBSERVE ?? '{}'),
  });
  app.get('/api/bots', async () => (await db.query(SQL, [userId()])).rows);
} else if (scenario === 'fastify') {
  const pool = new pg.Pool({ connectionString: url, max: POOL_MAX });
  app = Fastify();
  app.addHook('onRequest', (request, _reply, done) => {
    stamp.hook(request);
    done();
  });
  let inFlight = 0;
  app.addHook('onRequest', (request, reply, done) => {
    if (request.url === '/healthz') return done();
    if (inFlight >= LIMIT) {
      reply
        .code(503)
        .header('retry-after', '2')
        .send({ error: { code: 'OVERLOADED' } });
      return;
    }
    inFlight++;
    reply.raw.once('close', () => inFlight--);
    done();
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/api/bots', async () => (await pool.query(SQL, [userId()])).rows);
} else {
  throw new Error(`unknown scenario '${scenario}'`);
}
stamp.hook = traceProbes(app);
const address = await app.listen({ port: 0, host: '127.0.0.1' });
serveBenchProtocol(`${address}/api/bots`);
