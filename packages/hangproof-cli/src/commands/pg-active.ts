/** `hangproof pg active`: sessions that are running or idle in a transaction, oldest first. */
import type pg from 'pg';
import { EXIT } from '../output/cli-error.js';
import { type CliIo, painter, printJson, println } from '../output/cli-io.js';
import { formatMs } from '../output/duration.js';
import { renderTable } from '../output/table.js';
import { parseApplicationName } from '../pg/application-name.js';
import { withSession } from '../pg/connect.js';

export interface PgActiveOptions {
  readonly databaseUrl: string;
  /** Include idle sessions too. @default false */
  readonly all?: boolean;
  /** Sessions of every database, not only the connected one. @default false */
  readonly allDatabases?: boolean;
  /** Rows shown, 1..500. @default 50 */
  readonly limit?: number;
  readonly json?: boolean;
}

export interface ActiveSession {
  readonly pid: number;
  readonly user: string | null;
  readonly database: string | null;
  readonly applicationName: string;
  /** Route and request id when the session belongs to a hangproof request. */
  readonly route: string | null;
  readonly requestId: string | null;
  readonly clientAddr: string | null;
  readonly state: string | null;
  readonly waitEventType: string | null;
  readonly waitEvent: string | null;
  /** Age of the open transaction, in ms (null outside one). */
  readonly xactAgeMs: number | null;
  /** Time since the current or last statement started, in ms. */
  readonly queryAgeMs: number | null;
  /** Time in the current state, in ms. */
  readonly stateAgeMs: number | null;
  readonly blockedBy: number[];
  readonly query: string;
}

/**
 * Reads pg_stat_activity with pg_blocking_pids. The docs warn that pg_blocking_pids is not free,
 * so this runs once per invocation, never in a loop.
 */
export async function readActive(c: pg.Client, o: Omit<PgActiveOptions, 'databaseUrl'> = {}): Promise<ActiveSession[]> {
  const { rows } = await c.query(
    `SELECT pid, usename, datname, application_name, client_addr::text AS client_addr, state,
            wait_event_type, wait_event,
            (extract(epoch FROM now() - xact_start) * 1000)::float8 AS xact_ms,
            (extract(epoch FROM now() - query_start) * 1000)::float8 AS query_ms,
            (extract(epoch FROM now() - state_change) * 1000)::float8 AS state_ms,
            pg_blocking_pids(pid) AS blocked_by,
            left(regexp_replace(query, '\\s+', ' ', 'g'), 300) AS query
       FROM pg_stat_activity
      WHERE backend_type = 'client backend'
        AND pid <> pg_backend_pid()
        AND ($1 OR state IS DISTINCT FROM 'idle')
        AND ($2 OR datname = current_database())
      ORDER BY coalesce(xact_start, query_start, backend_start) ASC NULLS LAST
      LIMIT $3`,
    [o.all === true, o.allDatabases === true, o.limit ?? 50],
  );
  return rows.map((r) => {
    const parsed = parseApplicationName(r.application_name);
    return {
      pid: r.pid,
      user: r.usename,
      database: r.datname,
      applicationName: r.application_name ?? '',
      route: parsed?.route ?? null,
      requestId: parsed?.requestId ?? null,
      clientAddr: r.client_addr,
      state: r.state,
      waitEventType: r.wait_event_type,
      waitEvent: r.wait_event,
      xactAgeMs: r.xact_ms,
      queryAgeMs: r.query_ms,
      stateAgeMs: r.state_ms,
      blockedBy: r.blocked_by ?? [],
      query: r.query ?? '',
    };
  });
}

export async function pgActive(o: PgActiveOptions, io: CliIo): Promise<number> {
  const sessions = await withSession(o.databaseUrl, (c) => readActive(c, o));
  if (o.json) {
    printJson(io, { sessions });
    return EXIT.OK;
  }
  if (sessions.length === 0) {
    println(io, 'No running or idle-in-transaction sessions.');
    return EXIT.OK;
  }
  const paint = painter(io);
  const stateCell = (s: ActiveSession): string => {
    const st = s.state ?? '?';
    return st.startsWith('idle in transaction') ? paint('yellow', st) : st;
  };
  println(
    io,
    renderTable(
      io,
      ['pid', 'state', 'xact age', 'query age', 'wait', 'blocked by', 'application / request', 'query'],
      sessions.map((s) => [
        String(s.pid),
        stateCell(s),
        s.xactAgeMs === null ? '' : formatMs(s.xactAgeMs),
        s.queryAgeMs === null ? '' : formatMs(s.queryAgeMs),
        s.waitEventType ? `${s.waitEventType}:${s.waitEvent ?? ''}` : '',
        s.blockedBy.length > 0 ? paint('red', s.blockedBy.join(',')) : '',
        s.route ? `${s.route} ${s.requestId}` : s.applicationName,
        s.query.length > 60 ? `${s.query.slice(0, 57)}...` : s.query,
      ]),
    ),
  );
  const blocked = sessions.filter((s) => s.blockedBy.length > 0);
  if (blocked.length > 0) {
    const roots = new Set(blocked.flatMap((s) => s.blockedBy).filter((p) => !blocked.some((b) => b.pid === p)));
    println(
      io,
      paint('bold', `${blocked.length} session(s) blocked; blocking root(s): ${[...roots].join(', ') || 'a cycle'}`),
    );
    println(
      io,
      paint('dim', 'cancel a blocker: hangproof pg cancel <pid>   (or --terminate to end an idle-in-transaction one)'),
    );
  }
  return EXIT.OK;
}
