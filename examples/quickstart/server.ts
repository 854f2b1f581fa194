import Fastify from 'fastify';
import { step } from 'hangproof';
import { hangproof, installShutdown, serverOptions } from 'hangproof/fastify';
import { createDatabase } from 'hangproof/pg';

const app = Fastify(serverOptions({ maxDeadlineMs: 5_000 })); // server timeouts nest around deadlines
await app.register(hangproof, { deadlineMs: 2_000, adminToken: process.env.ADMIN_TOKEN });
const db = createDatabase({
  connectionString: process.env.DATABASE_URL ?? 'postgres://localhost/app',
  statementTimeoutMs: 1_500,
});
app.hangproof.addReadinessCheck('postgres', (signal) => db.readinessCheck(signal));

app.get('/bots/:userId', async (req) => {
  const { userId } = req.params as { userId: string };
  // A named step: a span in Server-Timing, and the "step in flight" if the deadline hits.
  const bots = await step('load-bots', () =>
    db.query('SELECT id, name, stage FROM bots WHERE user_id = $1 ORDER BY id LIMIT 50', [userId]),
  );
  return { bots: bots.rows }; // a stuck query ends as a 504 and is cancelled on the server
});

installShutdown(app).onShutdown('postgres', () => db.close()); // drain, close, exit: all bounded
console.log(await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' }));
