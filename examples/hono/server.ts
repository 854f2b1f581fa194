import { serve } from '@hono/node-server';
import { step } from 'hangproof';
import { hangproofHono, installShutdown } from 'hangproof/hono';
import { createObservatory } from 'hangproof/observe';
import { createDatabase } from 'hangproof/pg';
import { Hono } from 'hono';

const db = createDatabase({
  connectionString: process.env.DATABASE_URL ?? 'postgres://localhost/app',
  statementTimeoutMs: 1_500,
});
// /metrics and /status (admin token), shedding over 100 requests in flight, loop stall reports.
const observatory = await createObservatory({ maxInFlight: 100, pools: { main: db } });
const hp = hangproofHono({ deadlineMs: 2_000, adminToken: process.env.ADMIN_TOKEN, observe: observatory });
hp.edge.addReadinessCheck('postgres', (signal) => db.readinessCheck(signal));

const app = new Hono();
app.use('*', hp.middleware); // first: ids, deadline, refusals, /healthz and /readyz
app.get('/bots/:userId', async (c) => {
  const bots = await step('load-bots', () =>
    db.query('SELECT id, name, stage FROM bots WHERE user_id = $1 ORDER BY id LIMIT 50', [c.req.param('userId')]),
  );
  return c.json({ bots: bots.rows });
});
app.get('/hang', () => new Promise<Response>(() => {})); // never answers: the deadline does, with a 504
app.notFound(hp.notFound);
app.onError(hp.onError()); // every error in the error shape; a 504 stays a 504

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' }, (info) =>
  console.log(`http://127.0.0.1:${info.port}`),
);
installShutdown({ server: server as import('node:http').Server, edge: hp.edge }).onShutdown('postgres', () =>
  db.close(),
);
