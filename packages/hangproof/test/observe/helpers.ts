import Fastify, { type FastifyInstance } from 'fastify';
import { HangproofError } from 'hangproof';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { type ObserveOptions, observe } from 'hangproof/observe';
import { createDatabase, type Database } from 'hangproof/pg';
import { type Logger, pino } from 'pino';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** A pino logger that keeps its lines in memory, so tests can assert on what was logged. */
export function memoryLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write(chunk: string) {
        lines.push(JSON.parse(chunk) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines };
}

/** Fastify + hangproof + observe on 127.0.0.1:0, with `routes` added before listening. */
export async function startService(
  observeOptions: ObserveOptions,
  routes: (app: FastifyInstance) => void,
  deadlineMs = 2000,
): Promise<{ app: FastifyInstance; url: string }> {
  const silent = pino({ level: 'silent' });
  const app = Fastify(serverOptions({ maxDeadlineMs: deadlineMs }));
  await app.register(hangproof, { deadlineMs, logger: silent, adminToken: ADMIN_TOKEN });
  await app.register(observe, { logger: silent, defaultMetrics: false, ...observeOptions });
  routes(app);
  try {
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { app, url };
  } catch (err) {
    // An app that failed to start still holds what its plugins started (timers, threads).
    await app.close();
    throw err;
  }
}

export const admin = { 'x-admin-token': ADMIN_TOKEN };

/** Blocks the event loop for `ms` (a synchronous busy loop). */
export function busyLoop(ms: number): number {
  const until = performance.now() + ms;
  let spins = 0;
  while (performance.now() < until) spins++;
  return spins;
}

/** A guarded pool named `main` on `url` with a `bots` table of 200 rows, for the status-page tests. */
export async function botsDatabase(url: string): Promise<Database> {
  const db = createDatabase({ connectionString: url, name: 'main', max: 4 });
  await db.query('CREATE TABLE bots (id int PRIMARY KEY, name text NOT NULL)');
  await db.query("INSERT INTO bots SELECT g, 'bot-' || g FROM generate_series(1, 200) g");
  return db;
}

/** `GET /api/bots` (a list query) and `GET /api/bots/:id` (one row, NOT_FOUND past 200) on `db`. */
export function botRoutes(app: FastifyInstance, db: Database): void {
  app.get('/api/bots', async () => {
    const r = await db.query('SELECT id, name FROM bots WHERE id <= $1 ORDER BY id', [50]);
    return { count: r.rows.length };
  });
  app.get('/api/bots/:id', async (req) => {
    const r = await db.query('SELECT id, name FROM bots WHERE id = $1', [Number((req.params as { id: string }).id)]);
    if (r.rows.length === 0) throw new HangproofError('NOT_FOUND');
    return r.rows[0];
  });
}
