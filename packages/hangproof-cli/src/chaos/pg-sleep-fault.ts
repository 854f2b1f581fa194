import type pg from 'pg';
import { CliError } from '../output/cli-error.js';
import { within } from '../output/within.js';
import { openSession, withSession } from '../pg/connect.js';
import type { Fault, FaultContext } from './fault.js';
import type { PgSleepFaultSpec } from './scenario.js';

/**
 * Sessions that each run `pg_sleep` for the hold: they occupy server connections (toward
 * `max_connections`, or a PgBouncer pool) the way slow queries of another client would. Each sleep
 * is bounded by its own statement_timeout, cancelled (pg_cancel_backend) on remove, and the
 * sessions are closed on dispose.
 */
export function pgSleepFault(spec: PgSleepFaultSpec, ctx: FaultContext): Fault {
  const url = ctx.databaseUrl;
  if (url === undefined) throw new CliError('USAGE', 'a pg-sleep fault needs --database-url (or DATABASE_URL)');
  const n = spec.sessions ?? 5;
  const sleepMs = ctx.holdMs + 1_000;
  const clients: pg.Client[] = [];
  const pids: number[] = [];
  let sleeping: Promise<unknown>[] = [];
  return {
    kind: 'pg-sleep',
    label: `${n} session(s) running pg_sleep for the hold`,
    async prepare() {
      const opened = await Promise.allSettled(
        Array.from({ length: n }, () => openSession(url, { statementTimeoutMs: sleepMs + 1_000 })),
      );
      for (const o of opened) if (o.status === 'fulfilled') clients.push(o.value);
      const failed = opened.find((o) => o.status === 'rejected');
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      for (const c of clients) {
        const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        if (rows[0] !== undefined) pids.push(rows[0].pid);
      }
    },
    async inject() {
      sleeping = clients.map((c) => c.query('SELECT pg_sleep($1::float8 / 1000)', [sleepMs]).catch(() => {}));
    },
    async remove() {
      if (sleeping.length === 0) return;
      await withSession(url, (c) => c.query('SELECT pg_cancel_backend(p) FROM unnest($1::int[]) AS p', [pids])).catch(
        () => {},
      );
      await within(Promise.allSettled(sleeping), 2_000);
      sleeping = [];
    },
    async dispose() {
      await within(Promise.allSettled(clients.map((c) => c.end())), 2_000);
    },
    detail: () => ({ sessions: n, pids }),
  };
}
