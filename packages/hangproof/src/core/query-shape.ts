import { createHash } from 'node:crypto';

/**
 * One distinct statement text as the request path sees it: its fingerprint (literals replaced by
 * `?`), a short stable id and a label a reader recognises. The Postgres guard interns one per SQL
 * text, so a query span is recorded as a reference to it plus numbers, and the fingerprint is
 * written out only where someone reads it (a slow or failed request, /status, the slow-query line).
 */
export interface QueryShape {
  /** The statement with its values replaced by `?` (never contains bound values). */
  readonly fingerprint: string;
  /** 12 hex characters derived from the fingerprint: stable across processes and restarts. */
  readonly id: string;
  /** The statement's verb and first table, e.g. `SELECT bots`: what a span is named. */
  readonly label: string;
}

/** A short, stable id for a query fingerprint, usable as a Prometheus label and in log lines. */
export function queryId(fingerprint: string): string {
  return createHash('sha1').update(fingerprint).digest('hex').slice(0, 12);
}
