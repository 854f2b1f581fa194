import type pg from 'pg';
import { CliError } from '../output/cli-error.js';
import { within } from '../output/within.js';
import { openSession, pgReason } from '../pg/connect.js';
import type { Fault, FaultContext } from './fault.js';
import type { LockFaultSpec } from './scenario.js';

/** Longest wait to take the lock: a table already locked by someone else fails the run instead of queueing. */
const LOCK_WAIT_MS = 2_000;

/**
 * A held table lock: one session runs `BEGIN; LOCK TABLE t IN <mode> MODE` and sits idle in that
 * transaction for the hold, then rolls back. The server ends the session by itself shortly after
 * the hold (`idle_in_transaction_session_timeout`), so a killed CLI cannot leave the lock behind.
 */
export function lockFault(spec: LockFaultSpec, ctx: FaultContext): Fault {
  const url = ctx.databaseUrl;
  if (url === undefined) throw new CliError('USAGE', 'a lock fault needs --database-url (or DATABASE_URL)');
  const mode = spec.lockMode ?? 'ACCESS EXCLUSIVE';
  let client: pg.Client | undefined;
  let pid: number | undefined;
  let held = false;
  return {
    kind: 'lock',
    label: `LOCK TABLE ${spec.table} IN ${mode} MODE for the hold`,
    async prepare() {
      client = await openSession(url, { statementTimeoutMs: LOCK_WAIT_MS + 1_000 });
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      pid = rows[0]?.pid;
    },
    async inject() {
      const c = client as pg.Client;
      const table = spec.table
        .split('.')
        .map((p) => c.escapeIdentifier(p))
        .join('.');
      try {
        await c.query('BEGIN');
        await c.query(`SET LOCAL lock_timeout = ${LOCK_WAIT_MS}`);
        await c.query(`SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(ctx.holdMs + 5_000)}`);
        await c.query(`LOCK TABLE ${table} IN ${mode} MODE`);
        held = true;
      } catch (err) {
        throw new CliError('FAULT_FAILED', `LOCK TABLE ${spec.table} failed: ${pgReason(err)}`);
      }
    },
    async remove() {
      if (!held) return;
      held = false;
      await within(client?.query('ROLLBACK').catch(() => {}) ?? Promise.resolve(), 2_000);
    },
    async dispose() {
      // Ending the session releases the lock even when ROLLBACK could not be sent.
      await within(client?.end().catch(() => {}) ?? Promise.resolve(), 2_000);
      client = undefined;
    },
    detail: () => ({ table: spec.table, lockMode: mode, pid: pid ?? null }),
  };
}
