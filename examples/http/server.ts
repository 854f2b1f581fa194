import { createServer } from 'node:http';
import { HangproofError, step } from 'hangproof';
import { installShutdown, withHangproof } from 'hangproof/http';
import { createObservatory } from 'hangproof/observe';
import { createDatabase } from 'hangproof/pg';

const db = createDatabase({
  connectionString: process.env.DATABASE_URL ?? 'postgres://localhost/app',
  statementTimeoutMs: 1_500,
});
const BOTS = /^\/bots\/(\d+)$/;
// /metrics and /status (admin token), shedding over 100 requests in flight, loop stall reports.
const observatory = await createObservatory({ maxInFlight: 100, pools: { main: db } });

const listener = withHangproof(
  async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const bots = BOTS.exec(path);
    if (bots !== null) {
      const result = await step('load-bots', () =>
        db.query('SELECT id, name, stage FROM bots WHERE user_id = $1 ORDER BY id LIMIT 50', [bots[1]]),
      );
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ bots: result.rows }));
    } else if (path === '/hang') {
      await new Promise(() => {}); // never answers: the deadline does, with a 504
    } else {
      listener.edge.fail(res, new HangproofError('NOT_FOUND'));
    }
  },
  // Name requests by route, never by raw path: routes label logs and metrics.
  {
    deadlineMs: 2_000,
    adminToken: process.env.ADMIN_TOKEN,
    observe: observatory,
    route: (req) => (BOTS.test((req.url ?? '').split('?')[0] ?? '') ? '/bots/:userId' : (req.url ?? '')),
  },
);
listener.edge.addReadinessCheck('postgres', (signal) => db.readinessCheck(signal));

const server = createServer(listener);
installShutdown({ server, edge: listener.edge }).onShutdown('postgres', () => db.close());
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const address = server.address();
  console.log(`http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : ''}`);
});
