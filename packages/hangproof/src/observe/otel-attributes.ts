import type { QueryEvent, Span } from '../core/index.js';

/** Attribute values OpenTelemetry accepts from hangproof's records. */
export type OtelAttributes = Record<string, string | number | boolean>;

/** `SELECT bots` → `SELECT`: the operation of a statement label (see QueryShape.label). */
function operationOf(label: string): string {
  const space = label.indexOf(' ');
  return (space < 0 ? label : label.slice(0, space)).toUpperCase();
}

/**
 * Database semantic-convention attributes of one guarded query. `db.query.text` is the
 * fingerprint, values replaced by `?`: bound values never reach a span.
 */
export function queryAttributes(
  fingerprint: string,
  label: string,
  server?: { readonly address: string; readonly port: number },
): OtelAttributes {
  const out: OtelAttributes = {
    'db.system.name': 'postgresql',
    'db.query.text': fingerprint,
    'db.operation.name': operationOf(label),
  };
  if (server !== undefined) {
    out['server.address'] = server.address;
    out['server.port'] = server.port;
  }
  return out;
}

/** A query event's span attributes: the conventions plus hangproof's own (`hangproof.*`). */
export function queryEventAttributes(e: QueryEvent): OtelAttributes {
  const out = queryAttributes(e.fingerprint, e.name, { address: e.serverAddress, port: e.serverPort });
  out['hangproof.kind'] = 'db';
  out['hangproof.query_id'] = e.queryId;
  out['hangproof.pool'] = e.pool;
  out['hangproof.rows'] = e.rowCount;
  if (e.acquireMs > 0) out['hangproof.acquire_ms'] = Math.round(e.acquireMs * 10) / 10;
  if (e.errorCode !== undefined) out['error.type'] = e.errorCode;
  if (e.phase !== undefined) out['hangproof.phase'] = e.phase;
  return out;
}

/** True for a span the Postgres guard recorded (it carries the query's id and fingerprint). */
export function isGuardedQuery(s: Span): boolean {
  return s.kind === 'db' && typeof s.attrs?.queryId === 'string' && typeof s.attrs.fingerprint === 'string';
}

/**
 * A recorded span's attributes: its primitive attrs as `hangproof.<name>`, plus the database
 * conventions for a guarded query (without the server, which the record does not hold).
 */
export function recordedSpanAttributes(s: Span): OtelAttributes {
  const out: OtelAttributes = { 'hangproof.kind': s.kind };
  if (s.attrs !== undefined) {
    for (const [k, v] of Object.entries(s.attrs)) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[`hangproof.${k}`] = v;
    }
  }
  if (isGuardedQuery(s)) Object.assign(out, queryAttributes(s.attrs?.fingerprint as string, s.name));
  return out;
}
