import Fastify, { type FastifyInstance } from 'fastify';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { type ObserveOptions, observe } from 'hangproof/observe';
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
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url };
}

export const admin = { 'x-admin-token': ADMIN_TOKEN };

/** Blocks the event loop for `ms` (a synchronous busy loop). */
export function busyLoop(ms: number): number {
  const until = performance.now() + ms;
  let spins = 0;
  while (performance.now() < until) spins++;
  return spins;
}
