import type { SpanRecord } from './log-events.js';

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

/** The first table a statement names (FROM, JOIN, UPDATE, INTO, TABLE), unquoted. */
export function tableOf(sql: string | undefined): string | undefined {
  if (sql === undefined) return undefined;
  const m = /\b(?:from|join|update|into|table)\s+(?:only\s+)?("?[\w$]+"?(?:\."?[\w$]+"?)?)/i.exec(sql);
  return m?.[1]?.replace(/"/g, '');
}
