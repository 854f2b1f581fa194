/** `hangproof pg top`: the heaviest query fingerprints from pg_stat_statements, and their plans. */
import type pg from 'pg';
import { CliError, EXIT } from '../output/cli-error.js';
import { type CliIo, painter, printJson, println } from '../output/cli-io.js';
import { renderTable } from '../output/table.js';
import { withSession } from '../pg/connect.js';

export const TOP_ORDER = Object.freeze({
  total: 'total_exec_time',
  mean: 'mean_exec_time',
  calls: 'calls',
  rows: 'rows',
} as const);

export type TopOrder = keyof typeof TOP_ORDER;

export interface PgTopOptions {
  readonly databaseUrl: string;
  /** Sort key. @default 'total' */
  readonly by?: TopOrder;
  /** Rows shown, 1..100. @default 10 */
  readonly limit?: number;
  /** Show every database's statements, not only the connected one's. @default false */
  readonly allDatabases?: boolean;
  /** Show the plan of this queryid instead of the list. */
  readonly explain?: string;
  readonly json?: boolean;
  readonly statementTimeoutMs?: number;
}

export interface TopRow {
  readonly queryid: string;
  readonly calls: number;
  readonly totalMs: number;
  readonly meanMs: number;
  readonly rows: number;
  /** Share of the listed databases' total execution time, in percent. */
  readonly sharePct: number;
  readonly query: string;
}

const HOW_TO_ENABLE =
  "pg_stat_statements is not enabled here. Add it to shared_preload_libraries in postgresql.conf (shared_preload_libraries = 'pg_stat_statements'), restart Postgres, then run CREATE EXTENSION pg_stat_statements; in this database.";

/** The one step left when the server already loads the library: no restart, no conf edit. */
const howToCreate = (database: string): string =>
  `pg_stat_statements is loaded by the server but not created in database ${database}. Run CREATE EXTENSION pg_stat_statements; in that database (no restart needed).`;

/**
 * Fails with the step that is missing. A preloaded library registers its settings in every
 * session, so `pg_stat_statements.max` in pg_settings says it is loaded; shared_preload_libraries
 * itself is readable only by superusers.
 */
async function ensureExtension(c: pg.Client): Promise<void> {
  const { rows } = await c.query<{ created: boolean; loaded: boolean; database: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS created,
            EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max') AS loaded,
            current_database() AS database`,
  );
  const r = rows[0];
  if (r === undefined || r.created) return;
  throw new CliError('PG_STAT_STATEMENTS_MISSING', r.loaded ? howToCreate(r.database) : HOW_TO_ENABLE);
}

function missingPreload(err: unknown): boolean {
  return (err as { code?: string }).code === '55000';
}

/** Reads the top fingerprints. */
export async function readTop(c: pg.Client, o: PgTopOptions): Promise<TopRow[]> {
  await ensureExtension(c);
  const order = TOP_ORDER[o.by ?? 'total'];
  const limit = o.limit ?? 10;
  const scope = o.allDatabases ? 'true' : 'dbid = (SELECT oid FROM pg_database WHERE datname = current_database())';
  try {
    const { rows } = await c.query<{
      queryid: string;
      calls: string;
      total: number;
      mean: number;
      rows: string;
      share: number | null;
      query: string;
    }>(
      `SELECT queryid::text AS queryid, calls, total_exec_time AS total, mean_exec_time AS mean, rows,
              100 * total_exec_time / NULLIF(sum(total_exec_time) OVER (), 0) AS share,
              left(regexp_replace(query, '\\s+', ' ', 'g'), 500) AS query
         FROM pg_stat_statements
        WHERE ${scope} AND queryid IS NOT NULL
        ORDER BY ${order} DESC
        LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      queryid: r.queryid,
      calls: Number(r.calls),
      totalMs: r.total,
      meanMs: r.mean,
      rows: Number(r.rows),
      sharePct: r.share ?? 0,
      query: r.query,
    }));
  } catch (err) {
    if (missingPreload(err)) throw new CliError('PG_STAT_STATEMENTS_MISSING', HOW_TO_ENABLE);
    throw err;
  }
}

export interface PlanResult {
  readonly queryid: string;
  readonly query: string;
  readonly generic: boolean;
  readonly plan: string[];
}

/**
 * EXPLAIN of a recorded statement, never ANALYZE: nothing is executed. A normalised statement
 * with `$n` placeholders needs EXPLAIN (GENERIC_PLAN), which Postgres has since 16. It runs in a
 * READ ONLY transaction that is rolled back, with its own statement_timeout.
 */
export async function explainQuery(c: pg.Client, queryid: string): Promise<PlanResult> {
  if (!/^-?\d+$/.test(queryid)) throw new CliError('USAGE', `--explain needs a numeric queryid, received ${queryid}`);
  await ensureExtension(c);
  const { rows } = await c.query<{ query: string }>(
    'SELECT query FROM pg_stat_statements WHERE queryid = $1::bigint LIMIT 1',
    [queryid],
  );
  const query = rows[0]?.query;
  if (query === undefined)
    throw new CliError('NOT_FOUND', `no statement with queryid ${queryid} in pg_stat_statements`);
  const generic = /\$\d+/.test(query);
  const version = Number(
    (await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]?.v,
  );
  if (generic && version < 160000) {
    throw new CliError(
      'GENERIC_PLAN_UNSUPPORTED',
      `queryid ${queryid} has $n parameters; EXPLAIN (GENERIC_PLAN) needs Postgres 16+, this is ${version}. Run EXPLAIN with real values by hand.`,
    );
  }
  await c.query('BEGIN READ ONLY');
  try {
    const res = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${generic ? '(GENERIC_PLAN) ' : ''}${query}`);
    return { queryid, query, generic, plan: res.rows.map((r) => r['QUERY PLAN']) };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    throw new CliError(
      'EXPLAIN_FAILED',
      `EXPLAIN of queryid ${queryid} failed: ${e.code ?? ''} ${e.message ?? ''}`.trim(),
    );
  } finally {
    await c.query('ROLLBACK').catch(() => {});
  }
}

const ms = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${n.toFixed(1)} ms`);

export async function pgTop(o: PgTopOptions, io: CliIo): Promise<number> {
  const limit = o.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new CliError('USAGE', `--limit must be 1..100, received ${limit}`);
  const session = o.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: o.statementTimeoutMs };
  if (o.explain !== undefined) {
    const plan = await withSession(o.databaseUrl, (c) => explainQuery(c, o.explain as string), session);
    if (o.json) printJson(io, plan);
    else {
      const paint = painter(io);
      println(io, paint('bold', `queryid ${plan.queryid}${plan.generic ? ' (generic plan: parameters unknown)' : ''}`));
      println(io, paint('dim', plan.query));
      println(io);
      for (const line of plan.plan) println(io, line);
    }
    return EXIT.OK;
  }
  const rows = await withSession(o.databaseUrl, (c) => readTop(c, o), session);
  if (o.json) {
    printJson(io, { by: o.by ?? 'total', rows });
    return EXIT.OK;
  }
  if (rows.length === 0) {
    println(io, 'pg_stat_statements has no statements yet for this database.');
    return EXIT.OK;
  }
  println(
    io,
    renderTable(
      io,
      ['queryid', 'calls', 'total', 'mean', 'rows', '% time', 'query'],
      rows.map((r) => [
        r.queryid,
        String(r.calls),
        ms(r.totalMs),
        ms(r.meanMs),
        String(r.rows),
        `${r.sharePct.toFixed(1)}`,
        r.query.length > 80 ? `${r.query.slice(0, 77)}...` : r.query,
      ]),
    ),
  );
  println(io, painter(io)('dim', `plan of one: hangproof pg top --explain <queryid>`));
  return EXIT.OK;
}
