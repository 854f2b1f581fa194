/**
 * The capacity rows (pool size, instances, connection limits) and POOL_EXCEEDS_MAX_CONNECTIONS:
 * the pools of all instances must fit what PgBouncer or Postgres accepts.
 */
import { type Finding, finding } from '../findings.js';
import type { AuditInput } from './ladder-rows.js';

export interface CapacityRow {
  readonly id: string;
  readonly setting: string;
  readonly value: number;
  readonly source: string;
}

/** Postgres's default `superuser_reserved_connections`. */
const DEFAULT_RESERVED = 3;

export function capacityRows(input: AuditInput): CapacityRow[] {
  const { layers: l, pgbouncer: pgb } = input;
  const src = (part: string): string => input.sourceOf[part] ?? 'config';
  const rows: CapacityRow[] = [];
  if (l.pg?.max !== undefined)
    rows.push({ id: 'pg.max', setting: 'pool max per instance', value: l.pg.max, source: src('pg') });
  if (l.instances !== undefined)
    rows.push({ id: 'instances', setting: 'instances', value: l.instances, source: src('instances') });
  const maxConn = l.postgres?.maxConnections;
  if (maxConn !== undefined)
    rows.push({ id: 'postgres.max_connections', setting: 'max_connections', value: maxConn, source: src('postgres') });
  if (pgb) {
    rows.push({
      id: 'pgbouncer.max_client_conn',
      setting: 'pgbouncer max_client_conn',
      value: pgb.maxClientConn,
      source: src('pgbouncer'),
    });
    rows.push({
      id: 'pgbouncer.default_pool_size',
      setting: 'pgbouncer default_pool_size',
      value: pgb.defaultPoolSize,
      source: src('pgbouncer'),
    });
  }
  return rows;
}

export function poolExceedsMaxConnections(input: AuditInput): Finding[] {
  const { layers: l, pgbouncer: pgb } = input;
  const instances = l.instances ?? 1;
  const maxConn = l.postgres?.maxConnections;
  const reserved = l.postgres?.superuserReservedConnections ?? DEFAULT_RESERVED;
  const out: Finding[] = [];
  if (l.pg?.max !== undefined) {
    const total = l.pg.max * instances;
    if (pgb && total > pgb.maxClientConn) {
      out.push(
        finding(
          'POOL_EXCEEDS_MAX_CONNECTIONS',
          ['pg.max', 'pgbouncer.max_client_conn'],
          `${instances} instance(s) x pool max ${l.pg.max} = ${total} client connections, above PgBouncer max_client_conn ${pgb.maxClientConn}`,
          `set pool max to at most ${Math.floor(pgb.maxClientConn / instances)} per instance, or raise max_client_conn`,
        ),
      );
    } else if (!pgb && maxConn !== undefined && total > maxConn - reserved) {
      out.push(
        finding(
          'POOL_EXCEEDS_MAX_CONNECTIONS',
          ['pg.max', 'postgres.max_connections'],
          `${instances} instance(s) x pool max ${l.pg.max} = ${total} connections, above max_connections ${maxConn} - ${reserved} reserved`,
          `set pool max to at most ${Math.max(1, Math.floor((maxConn - reserved) / instances))} per instance (leave room for migrations and psql), or put PgBouncer in transaction mode in front`,
        ),
      );
    }
  }
  if (pgb && maxConn !== undefined && pgb.defaultPoolSize > maxConn - reserved) {
    out.push(
      finding(
        'POOL_EXCEEDS_MAX_CONNECTIONS',
        ['pgbouncer.default_pool_size', 'postgres.max_connections'],
        `PgBouncer default_pool_size ${pgb.defaultPoolSize} is above max_connections ${maxConn} - ${reserved} reserved`,
        `set default_pool_size to at most ${maxConn - reserved}`,
      ),
    );
  }
  return out;
}
