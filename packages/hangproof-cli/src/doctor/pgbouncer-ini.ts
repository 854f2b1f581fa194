/**
 * Reads the timeout and sizing keys of a pgbouncer.ini. PgBouncer's times are seconds (fractions
 * allowed); recent versions also accept a unit suffix, which parseDurationMs handles.
 */
import { parseDurationMs } from '../output/duration.js';

export interface PgBouncerSettings {
  /** Wait for a server connection, in ms; 0 waits forever. @default 120 s */
  readonly queryWaitTimeoutMs: number;
  /** Client-side query limit, in ms; 0 disables. @default 0 */
  readonly queryTimeoutMs: number;
  readonly serverIdleTimeoutMs: number;
  readonly serverLifetimeMs: number;
  readonly poolMode: string;
  readonly defaultPoolSize: number;
  readonly maxClientConn: number;
  /** Which keys came from the file (the others are PgBouncer defaults). */
  readonly explicit: ReadonlySet<string>;
}

/** PgBouncer's documented defaults (doc/config.md). */
export const PGBOUNCER_DEFAULTS = Object.freeze({
  query_wait_timeout: '120',
  query_timeout: '0',
  server_idle_timeout: '600',
  server_lifetime: '3600',
  pool_mode: 'session',
  default_pool_size: '20',
  max_client_conn: '100',
});

type Key = keyof typeof PGBOUNCER_DEFAULTS;

/** Parses the `[pgbouncer]` section; throws SyntaxError naming the line of a bad value. */
export function parsePgBouncerIni(text: string): PgBouncerSettings {
  const found = new Map<string, { value: string; line: number }>();
  let section = '';
  text.split(/\r?\n/).forEach((raw, idx) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = (sec[1] as string).trim().toLowerCase();
      return;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || section !== 'pgbouncer') return;
    found.set(line.slice(0, eq).trim().toLowerCase(), { value: line.slice(eq + 1).trim(), line: idx + 1 });
  });
  const raw = (k: Key) => found.get(k) ?? { value: PGBOUNCER_DEFAULTS[k], line: 0 };
  const time = (k: Key): number => {
    const { value, line } = raw(k);
    const ms = parseDurationMs(value, 's');
    if (ms === undefined) throw new SyntaxError(`${k} on line ${line} is not a duration: ${value}`);
    return ms;
  };
  const int = (k: Key): number => {
    const { value, line } = raw(k);
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new SyntaxError(`${k} on line ${line} is not a count: ${value}`);
    return n;
  };
  return {
    queryWaitTimeoutMs: time('query_wait_timeout'),
    queryTimeoutMs: time('query_timeout'),
    serverIdleTimeoutMs: time('server_idle_timeout'),
    serverLifetimeMs: time('server_lifetime'),
    poolMode: raw('pool_mode').value,
    defaultPoolSize: int('default_pool_size'),
    maxClientConn: int('max_client_conn'),
    explicit: new Set([...found.keys()].filter((k) => k in PGBOUNCER_DEFAULTS)),
  };
}
