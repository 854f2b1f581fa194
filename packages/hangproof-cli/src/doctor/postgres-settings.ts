import type pg from 'pg';
import { parseDurationMs } from '../output/duration.js';
import type { TimeoutLayers } from './timeout-layers.js';

/**
 * Reads the server-side defaults doctor audits. The session is opened without limits as startup
 * options, so `reset_val` is what an application session gets (server, database and role
 * settings); the read itself is bounded with SET LOCAL inside a read-only transaction.
 */
export async function readPostgresLayers(client: pg.Client, statementTimeoutMs: number): Promise<TimeoutLayers> {
  await client.query('BEGIN READ ONLY');
  let rows: { name: string; reset_val: string; unit: string | null }[];
  try {
    await client.query(`SELECT set_config('statement_timeout', $1, true)`, [String(statementTimeoutMs)]);
    ({ rows } = await client.query<{ name: string; reset_val: string; unit: string | null }>(
      `SELECT name, reset_val, unit FROM pg_settings
        WHERE name IN ('statement_timeout','lock_timeout','idle_in_transaction_session_timeout',
                       'max_connections','superuser_reserved_connections')`,
    ));
  } finally {
    await client.query('ROLLBACK');
  }
  const get = (n: string) => rows.find((r) => r.name === n);
  const duration = (n: string): number | null | undefined => {
    const r = get(n);
    if (!r) return undefined;
    const v = parseDurationMs(`${r.reset_val}${r.unit ?? 'ms'}`, 'ms') ?? Number(r.reset_val);
    return v === 0 ? null : v;
  };
  const int = (n: string): number | undefined => {
    const r = get(n);
    return r ? Number(r.reset_val) : undefined;
  };
  const postgres = Object.fromEntries(
    Object.entries({
      statementTimeoutMs: duration('statement_timeout'),
      lockTimeoutMs: duration('lock_timeout'),
      idleInTransactionSessionTimeoutMs: duration('idle_in_transaction_session_timeout'),
      maxConnections: int('max_connections'),
      superuserReservedConnections: int('superuser_reserved_connections'),
    }).filter(([, v]) => v !== undefined),
  );
  return { postgres };
}
