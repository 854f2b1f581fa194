import { randomUUID } from 'node:crypto';
import { HangproofError, RequestContext, runWithContext } from 'hangproof';
import pg from 'pg';
import pino from 'pino';
import { measuringOutcome } from '../support/loop-stall.ts';

/** A real pino logger whose lines are kept in memory, for asserting on what the guard logs. */
export function captureLogger(): { logger: pino.Logger; lines: string[]; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { logger, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** Runs `fn` inside a request context with `budgetMs`, as the edge plugin would. */
export async function inRequest<T>(
  budgetMs: number,
  name: string,
  fn: (ctx: RequestContext) => Promise<T>,
): Promise<T> {
  const ctx = new RequestContext({ requestId: randomUUID(), budgetMs, name });
  try {
    return await runWithContext(ctx, () => fn(ctx));
  } finally {
    ctx.end();
  }
}

/** Runs `fn` and returns its outcome, how long it took and the loop stall meanwhile, never throwing. */
export const timed = measuringOutcome;

/**
 * Runs `query` in a request whose client goes away once `running` reports the statement running on
 * the server (the context aborts with CLIENT_CLOSED_REQUEST); returns its outcome and the moment
 * of the abort (performance.now()). Throws if the statement is not seen running within 5 s.
 */
export async function queryAbandonedWhenRunning<T>(
  running: () => Promise<boolean>,
  query: () => Promise<T>,
): Promise<{ outcome: Awaited<ReturnType<typeof timed<T>>>; abortedAt: number }> {
  let abortedAt = 0;
  const outcome = await timed(() =>
    inRequest(30_000, 'GET /client-leaves', async (ctx) => {
      const pending = query();
      pending.catch(() => {});
      if ((await waitFor(running, 5_000)) < 0) throw new Error('the statement never ran on the server');
      abortedAt = performance.now();
      ctx.abort(new HangproofError('CLIENT_CLOSED_REQUEST'));
      return pending;
    }),
  );
  if (abortedAt === 0) throw outcome.error;
  return { outcome, abortedAt };
}

/** An unguarded admin client on `url` for looking at pg_stat_activity and holding locks. */
export async function adminClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, query_timeout: 10_000 });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/**
 * Sessions of `database` running `statement` now, seen through `client`. The text is matched from
 * its start on purpose: for a slow statement hangproof's plan evidence runs `EXPLAIN ...
 * <statement>` on a session of its own, and that must not pass for the statement itself.
 */
export async function sessionsRunning(
  client: pg.Client,
  database: string,
  statement: string,
): Promise<{ pid: number; applicationName: string }[]> {
  const { rows } = await client.query<{ pid: number; application_name: string }>(
    `SELECT pid, application_name FROM pg_stat_activity
     WHERE datname = $1 AND state = 'active' AND left(query, length($2)) = $2 AND pid <> pg_backend_pid()`,
    [database, statement],
  );
  return rows.map((r) => ({ pid: r.pid, applicationName: r.application_name }));
}

/** Sessions on the server named `applicationName` now (a side connection's, say), seen through `client`. */
export async function sessionsNamed(client: pg.Client, applicationName: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
    [applicationName],
  );
  return rows[0]?.n ?? -1;
}

/** Polls `check` every 10 ms until it is true or `withinMs` passed; returns the time it took or -1. */
export async function waitFor(check: () => Promise<boolean>, withinMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < withinMs) {
    if (await check()) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 10));
  }
  return -1;
}
