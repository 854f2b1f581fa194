/**
 * What the service and its database look like after the run: connections still checked out of
 * the pool (from /status.json) and sessions left idle in a transaction (from pg_stat_activity).
 */
import { fetchJson } from '../http/fetch-json.js';
import { asStatusJson, listOf } from '../http/status-json.js';
import { CliError } from '../output/cli-error.js';
import { CLI_APPLICATION_NAME, withSession } from '../pg/connect.js';

/** Connections checked out of every pool the service lists on /status.json. */
export interface PoolUse {
  readonly inUse: number;
  readonly pools: readonly { readonly name: string; readonly inUse: number; readonly waiting: number }[];
}

/** Reads `pools[].stats.inUse` from /status.json; undefined when the service lists no pool. */
export async function readPoolUse(
  statusUrl: string,
  adminToken: string,
  timeoutMs = 2_000,
): Promise<PoolUse | undefined> {
  const doc = asStatusJson(await fetchJson(statusUrl, { 'x-admin-token': adminToken }, timeoutMs));
  const pools: PoolUse['pools'][number][] = [];
  for (const p of listOf(doc?.pools)) {
    const inUse = p.stats?.inUse;
    if (typeof inUse !== 'number') continue;
    const waiting = p.stats?.waiting;
    pools.push({ name: String(p.name), inUse, waiting: typeof waiting === 'number' ? waiting : 0 });
  }
  if (pools.length === 0) return undefined;
  return { inUse: pools.reduce((a, p) => a + p.inUse, 0), pools };
}

export interface SettleResult<T> {
  readonly settled: boolean;
  /** ms after the check started when it settled (or when it gave up). */
  readonly afterMs: number;
  readonly last: T;
}

/**
 * Polls `read` every `everyMs` until `ok(value)` or `boundMs` passes. Each read is bounded by the
 * reader itself; the loop by `boundMs` plus one read.
 */
export async function settle<T>(
  read: () => Promise<T>,
  ok: (v: T) => boolean,
  boundMs: number,
  everyMs = 100,
): Promise<SettleResult<T>> {
  const started = performance.now();
  for (;;) {
    const last = await read();
    const afterMs = Math.round(performance.now() - started);
    if (ok(last)) return { settled: true, afterMs, last };
    if (afterMs >= boundMs) return { settled: false, afterMs, last };
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface IdleInTransaction {
  readonly count: number;
  readonly sessions: readonly { readonly pid: number; readonly applicationName: string; readonly ageMs: number }[];
}

/**
 * Sessions of the database that are idle inside a transaction (also after an error in it). The
 * CLI's own sessions (the lock fault sits idle in a transaction on purpose) are left out.
 */
export async function readIdleInTransaction(databaseUrl: string): Promise<IdleInTransaction> {
  return withSession(databaseUrl, async (c) => {
    const { rows } = await c.query<{ pid: number; application_name: string; age_ms: number }>(
      `SELECT pid, application_name, (extract(epoch FROM now() - state_change) * 1000)::float8 AS age_ms
         FROM pg_stat_activity
        WHERE datname = current_database()
          AND state IN ('idle in transaction', 'idle in transaction (aborted)')
          AND application_name <> $1
          AND pid <> pg_backend_pid()
        ORDER BY state_change
        LIMIT 20`,
      [CLI_APPLICATION_NAME],
    );
    return {
      count: rows.length,
      sessions: rows.map((r) => ({ pid: r.pid, applicationName: r.application_name, ageMs: Math.round(r.age_ms) })),
    };
  });
}

/** True when /status.json is simply absent (a service without hangproof/observe), not refused. */
export function isMissingStatus(err: unknown): boolean {
  return err instanceof CliError && (err.code === 'HTTP_ERROR' || err.code === 'BAD_RESPONSE');
}
