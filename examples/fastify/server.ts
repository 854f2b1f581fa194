import Fastify from 'fastify';
import { step } from 'hangproof';
import { hangproof, installShutdown, serverOptions } from 'hangproof/fastify';
import { observe } from 'hangproof/observe';
import { createDatabase } from 'hangproof/pg';

const db = createDatabase({
  connectionString: process.env.DATABASE_URL ?? 'postgres://localhost/app',
  statementTimeoutMs: 1_500,
});
const app = Fastify(serverOptions({ maxDeadlineMs: 5_000 })); // server timeouts nest around deadlines
// First: ids, deadline, refusals, /healthz and /readyz, the error shape, for every route after it.
await app.register(hangproof, { deadlineMs: 2_000, adminToken: process.env.ADMIN_TOKEN });
// /metrics and /status (admin token), shedding over 100 requests in flight, loop stall reports.
await app.register(observe, { maxInFlight: 100, pools: { main: db } });
app.hangproof.addReadinessCheck('postgres', (signal) => db.readinessCheck(signal));

app.get('/bots/:userId', async (req) => {
  const { userId } = req.params as { userId: string };
  const bots = await step('load-bots', () =>
    db.query('SELECT id, name, stage FROM bots WHERE user_id = $1 ORDER BY id LIMIT 50', [userId]),
  );
  return { bots: bots.rows };
});
app.get('/hang', () => new Promise(() => {})); // never answers: the deadline does, with a 504

installShutdown(app).onShutdown('postgres', () => db.close());
console.log(await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' }));
