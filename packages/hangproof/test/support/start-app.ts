import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { type HangproofOptions, hangproof, serverOptions } from 'hangproof/fastify';
import { pino } from 'pino';

export interface LogCapture {
  readonly lines: Record<string, unknown>[];
  /** Log lines whose `msg` or fields match, newest last. */
  find(pred: (line: Record<string, unknown>) => boolean): Record<string, unknown>[];
  /** Waits (bounded) until a line matching `pred` has been written. */
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** A pino logger that keeps every line in memory, parsed, for assertions. */
export function captureLogs(): { logger: pino.Logger; logs: LogCapture } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  const logs: LogCapture = {
    lines,
    find: (pred) => lines.filter(pred),
    async waitFor(pred, timeoutMs = 3000) {
      const until = performance.now() + timeoutMs;
      while (performance.now() < until) {
        const hit = lines.find(pred);
        if (hit !== undefined) return hit;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no log line matched within ${timeoutMs} ms; saw ${lines.length} lines`);
    },
  };
  return { logger, logs };
}

export interface StartedApp {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly logs: LogCapture;
}

/** A real Fastify server with the hangproof plugin on 127.0.0.1, port 0. */
export async function startApp(
  options: HangproofOptions,
  routes: (app: FastifyInstance) => void | Promise<void>,
): Promise<StartedApp> {
  const { logger, logs } = captureLogs();
  const app = Fastify(serverOptions({ maxDeadlineMs: options.deadlineMs ?? 10_000, bodyLimitBytes: 64 * 1024 }));
  await app.register(hangproof, { logger, ...options });
  await routes(app);
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url, logs };
}

/** The parsed JSON body of a response, loosely typed for assertions. */
export async function json(res: Response): Promise<any> {
  return res.json();
}
