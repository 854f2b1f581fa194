import type { LockBlockerRecord, SpanRecord } from './log-events.js';

/** Longest fingerprint shown in a label; the full text is in the query table. */
const MAX_SQL_CHARS = 80;

export function shortSql(sql: string): string {
  const one = sql.replace(/\s+/g, ' ').trim();
  return one.length > MAX_SQL_CHARS ? `${one.slice(0, MAX_SQL_CHARS - 1)}…` : one;
}

/** What a span is, for humans: `query <sql>`, `call <dependency>`, or the step's name. */
export function spanLabel(s: SpanRecord): string {
  if (s.fingerprint !== undefined) return `query ${shortSql(s.fingerprint)}`;
  if (s.kind === 'external') return `call ${s.name}`;
  return s.name;
}

/**
 * The first table a statement names (FROM, JOIN, UPDATE, INTO, TABLE), unquoted. Only a guess at
 * which table a statement waited for: the report prefers the relation a `pg.lock_wait` line names.
 */
export function tableOf(sql: string | undefined): string | undefined {
  if (sql === undefined) return undefined;
  const m = /\b(?:from|join|update|into|table)\s+(?:only\s+)?("?[\w$]+"?(?:\."?[\w$]+"?)?)/i.exec(sql);
  return m?.[1]?.replace(/"/g, '');
}

/** A blocker for humans: `pid 4100 (psql, idle in transaction 48 s)`, with route and step when known. */
export function blockerLabel(b: LockBlockerRecord): string {
  const who =
    b.route !== undefined ? `${b.route}${b.step === undefined ? '' : ` in step ${b.step}`}` : b.applicationName;
  const age = b.xactAgeMs === undefined ? '' : ` ${seconds(b.xactAgeMs)}`;
  return `pid ${b.pid} (${who || 'no application_name'}, ${b.state ?? 'unknown state'}${age})`;
}

/** The blocker's label and its statement: `pid 4100 (psql, idle in transaction 48 s): LOCK TABLE bots …`. */
export function blockerNote(b: LockBlockerRecord): string {
  return b.query === undefined || b.query === '' ? blockerLabel(b) : `${blockerLabel(b)}: ${shortSql(b.query)}`;
}

/** A duration for humans: `0.3 s`, `48 s`. */
export function seconds(ms: number): string {
  return ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 100) / 10} s`;
}
