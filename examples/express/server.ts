import { createServer } from 'node:http';
import express from 'express';
import { step } from 'hangproof';
import { hangproofExpress, installShutdown } from 'hangproof/express';
import { createObservatory } from 'hangproof/observe';
import { createDatabase } from 'hangproof/pg';

const db = createDatabase({
  connectionString: process.env.DATABASE_URL ?? 'postgres://localhost/app',
  statementTimeoutMs: 1_500,
});
// /metrics and /status (admin token), shedding over 100 requests in flight, loop stall reports.
const observatory = await createObservatory({ maxInFlight: 100, pools: { main: db } });
const hp = hangproofExpress({ deadlineMs: 2_000, adminToken: process.env.ADMIN_TOKEN, observe: observatory });
hp.edge.addReadinessCheck('postgres', (signal) => db.readinessCheck(signal));

const app = express();
app.use(hp.middleware); // first: ids, deadline, refusals, /healthz and /readyz
app.get('/bots/:userId', async (req, res) => {
  const bots = await step('load-bots', () =>
    db.query('SELECT id, name, stage FROM bots WHERE user_id = $1 ORDER BY id LIMIT 50', [req.params.userId]),
  );
  res.json({ bots: bots.rows });
});
app.get('/hang', () => new Promise(() => {})); // never answers: the deadline does, with a 504
app.use(hp.notFound);
app.use(hp.errorHandler); // last: every error in the error shape

const server = createServer(app);
installShutdown({ server, edge: hp.edge }).onShutdown('postgres', () => db.close());
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const address = server.address();
  console.log(`http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : ''}`);
});
