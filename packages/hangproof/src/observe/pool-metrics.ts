import type { PoolStatsSource } from './options.js';

/** One Prometheus sample: a value and its labels. */
export interface PoolSample {
  readonly value: number;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * One quantity of a pool's `stats()`, as its own metric: name with its unit, type and help, and
 * the field(s) it reads. A field a source does not have (a pool that is not a hangproof Database)
 * gives no sample, so any `{ stats(): object }` source exports what it has.
 */
export interface PoolMetricDefinition {
  readonly name: string;
  readonly type: 'gauge' | 'counter';
  readonly help: string;
  /** The samples of one pool, from its stats object. */
  readonly read: (stats: Readonly<Record<string, unknown>>) => readonly PoolSample[];
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A metric of one numeric field, labelled with the pool only. */
function field(name: string, type: 'gauge' | 'counter', key: string, help: string): PoolMetricDefinition {
  return { name, type, help, read: (s) => (isCount(s[key]) ? [{ value: s[key], labels: {} }] : []) };
}

/**
 * The pool metrics, one quantity each (Prometheus naming: unit in the name, `_total` on counters,
 * a label only where summing over it means something). Replaces the former
 * `hangproof_pool_stat{stat}`, which mixed connections, waiters and counters in one metric.
 */
export const POOL_METRICS: readonly PoolMetricDefinition[] = [
  {
    name: 'hangproof_pg_pool_connections',
    type: 'gauge',
    help: 'Open connections of the pool, by state: idle, or in_use (held by a caller).',
    read: (s) => {
      const out: PoolSample[] = [];
      if (isCount(s.idle)) out.push({ value: s.idle, labels: { state: 'idle' } });
      if (isCount(s.inUse)) out.push({ value: s.inUse, labels: { state: 'in_use' } });
      return out;
    },
  },
  field('hangproof_pg_pool_max_connections', 'gauge', 'max', 'Connections the pool may open.'),
  field('hangproof_pg_pool_waiting_requests', 'gauge', 'waiting', 'Callers waiting for a pooled connection now.'),
  {
    name: 'hangproof_pg_timeouts_total',
    type: 'counter',
    help: 'Postgres operations that ran out of time, by phase (acquire, connect, query, lock...).',
    read: (s) => {
      const timeouts = s.timeouts;
      if (typeof timeouts !== 'object' || timeouts === null) return [];
      return Object.entries(timeouts)
        .filter((e): e is [string, number] => isCount(e[1]))
        .map(([phase, value]) => ({ value, labels: { phase } }));
    },
  },
  field('hangproof_pg_unavailable_total', 'counter', 'unavailable', 'Postgres refused, dropped or shut down.'),
  field('hangproof_pg_cancels_sent_total', 'counter', 'cancelsSent', 'Cancel requests sent for abandoned statements.'),
  field(
    'hangproof_pg_cancels_confirmed_total',
    'counter',
    'cancelsConfirmed',
    'Cancel requests the server acknowledged.',
  ),
  field(
    'hangproof_pg_connections_discarded_total',
    'counter',
    'discarded',
    'Connections destroyed because their state was unknown.',
  ),
  field('hangproof_pg_queries_total', 'counter', 'queries', 'Guarded queries started.'),
  field('hangproof_pg_slow_queries_total', 'counter', 'slowQueries', 'Queries slower than slowQueryMs.'),
  field('hangproof_pg_n_plus_one_total', 'counter', 'nPlusOneDetected', 'N+1 query patterns detected.'),
  field('hangproof_pg_connection_leaks_total', 'counter', 'leaksDetected', 'Connections held past the leak threshold.'),
  field(
    'hangproof_pg_transaction_retries_total',
    'counter',
    'retriedTransactions',
    'Transactions retried after a serialization failure or deadlock.',
  ),
];

/** Each pool's stats, read once per scrape; a source that throws is left out. */
export function readPoolStats(
  pools: Readonly<Record<string, PoolStatsSource>>,
): [pool: string, stats: Readonly<Record<string, unknown>>][] {
  const out: [string, Readonly<Record<string, unknown>>][] = [];
  for (const [pool, source] of Object.entries(pools)) {
    try {
      out.push([pool, source.stats() as Readonly<Record<string, unknown>>]);
    } catch {
      // A pool that cannot say is missing from this scrape, not a failed scrape.
    }
  }
  return out;
}
