import { collectDefaultMetrics, type Metric, Registry } from 'prom-client';
import type { ConcurrencyLimiter } from './concurrency-limiter.js';
import { type EventLoopMonitor, LOOP_DELAY_RESOLUTION_MS } from './event-loop-monitor.js';
import type { Heartbeats } from './heartbeats.js';
import type { SeriesView } from './latency-series.js';
import type { Measurements } from './measurements.js';
import type { PoolStatsSource } from './options.js';
import { POOL_METRICS, readPoolStats } from './pool-metrics.js';

/** The event-loop monitor's last sample, as far as /metrics reads it. */
type LoopSample = NonNullable<ReturnType<EventLoopMonitor['summary']>['last']>;

interface Sample {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly metricName?: string;
}

/**
 * A metric whose samples are read from observe's own state when Prometheus scrapes, registered in
 * a prom-client Registry (which formats it). Per-request recording then costs a bucket scan and a
 * few additions instead of prom-client's label hashing per observation (~0.4 µs each, measured).
 */
class CollectedMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'histogram' | 'counter' | 'gauge',
    readonly collect: () => Sample[],
  ) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.collect() };
  }
}

function histogramSamples(name: string, series: Iterable<SeriesView>, bucketsSec: readonly number[]): Sample[] {
  const out: Sample[] = [];
  for (const s of series) {
    let cumulative = 0;
    for (let i = 0; i < bucketsSec.length; i++) {
      cumulative += s.bucketCounts[i] as number;
      out.push({
        metricName: `${name}_bucket`,
        labels: { ...s.labels, le: bucketsSec[i] as number },
        value: cumulative,
      });
    }
    out.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
    out.push({ metricName: `${name}_sum`, labels: s.labels, value: s.sumSec });
    out.push({ metricName: `${name}_count`, labels: s.labels, value: s.count });
  }
  return out;
}

function errorSamples(series: Iterable<SeriesView>): Sample[] {
  const out: Sample[] = [];
  for (const s of series) for (const [code, n] of s.errorsTotal) out.push({ labels: { ...s.labels, code }, value: n });
  return out;
}

export interface RegistryParts {
  readonly measurements: Measurements;
  readonly monitor: EventLoopMonitor;
  readonly limiter: ConcurrencyLimiter | undefined;
  readonly heartbeats: Heartbeats;
  readonly pools: Readonly<Record<string, PoolStatsSource>>;
  readonly bucketsSec: readonly number[];
  readonly defaultMetrics: boolean;
}

/**
 * The Registry behind GET /metrics. Not prom-client's global one, so two apps (or a library that
 * also uses prom-client) in one process never collide. Names and buckets: docs/reference/observe.md.
 */
export function createRegistry(p: RegistryParts): Registry {
  const registry = new Registry();
  const m = p.measurements;
  const b = p.bucketsSec;
  const add = (metric: CollectedMetric): void => registry.registerMetric(metric as unknown as Metric);

  add(
    new CollectedMetric(
      'hangproof_http_request_duration_seconds',
      'Time from request start to response end, by route.',
      'histogram',
      () => histogramSamples('hangproof_http_request_duration_seconds', m.routes.series(), b),
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_http_request_errors_total',
      'Failed requests by route and hangproof error code.',
      'counter',
      () => errorSamples(m.routes.series()),
    ),
  );
  add(
    new CollectedMetric('hangproof_pg_query_duration_seconds', 'Postgres query time, all queries.', 'histogram', () =>
      histogramSamples('hangproof_pg_query_duration_seconds', [m.queryTotal], b),
    ),
  );
  add(
    new CollectedMetric('hangproof_pg_query_errors_total', 'Failed Postgres queries by error code.', 'counter', () =>
      errorSamples([m.queryTotal]),
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_pg_query_fingerprint_duration_seconds',
      'Postgres query time by query fingerprint id (text on /status.json).',
      'histogram',
      () => histogramSamples('hangproof_pg_query_fingerprint_duration_seconds', m.queries.series(), b),
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_pg_pool_acquire_wait_seconds',
      'Wait for a pooled connection, by pool.',
      'histogram',
      () => histogramSamples('hangproof_pg_pool_acquire_wait_seconds', m.poolAcquire.series(), b),
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_pg_pool_acquire_errors_total',
      'Pool acquires that gave up, by pool.',
      'counter',
      () => errorSamples(m.poolAcquire.series()),
    ),
  );
  // One metric per quantity of the pools' stats (read per metric: a scrape is rare, stats() cheap).
  for (const def of POOL_METRICS) {
    add(
      new CollectedMetric(def.name, def.help, def.type, () => {
        const out: Sample[] = [];
        for (const [pool, stats] of readPoolStats(p.pools)) {
          for (const sample of def.read(stats)) out.push({ labels: { pool, ...sample.labels }, value: sample.value });
        }
        return out;
      }),
    );
  }
  add(
    new CollectedMetric(
      'hangproof_dependency_call_duration_seconds',
      'Outbound call time, by dependency.',
      'histogram',
      () => histogramSamples('hangproof_dependency_call_duration_seconds', m.dependencies.series(), b),
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_dependency_call_errors_total',
      'Failed outbound calls by dependency and error code.',
      'counter',
      () => errorSamples(m.dependencies.series()),
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_breaker_state',
      'Current circuit breaker state (1 for the state it is in).',
      'gauge',
      () => [...m.breakers].map(([dependency, v]) => ({ labels: { dependency, state: v.state }, value: 1 })),
    ),
  );
  add(
    new CollectedMetric('hangproof_breaker_transitions_total', 'Circuit breaker state changes.', 'counter', () =>
      [...m.breakers].map(([dependency, v]) => ({ labels: { dependency }, value: v.transitions })),
    ),
  );
  // The last sample's percentiles, each its own gauge (as prom-client's nodejs_eventloop_lag_p99_seconds):
  // a `quantile` label belongs to a summary, which a windowed percentile without sum and count is not.
  for (const [name, pick, what] of [
    ['hangproof_event_loop_delay_p50_seconds', (l: LoopSample) => l.p50Ms, 'Median'],
    ['hangproof_event_loop_delay_p99_seconds', (l: LoopSample) => l.p99Ms, '99th percentile of the'],
    ['hangproof_event_loop_delay_max_seconds', (l: LoopSample) => l.maxMs, 'Longest'],
  ] as const) {
    add(
      new CollectedMetric(name, `${what} event-loop delay over the last sample interval.`, 'gauge', () => {
        const last = p.monitor.summary().last;
        return last === undefined ? [] : [{ labels: {}, value: pick(last) / 1000 }];
      }),
    );
  }
  add(
    new CollectedMetric(
      'hangproof_event_loop_utilization',
      'Share of the last sample interval the loop was busy.',
      'gauge',
      () => {
        const last = p.monitor.summary().last;
        return last === undefined ? [] : [{ labels: {}, value: last.utilization }];
      },
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_event_loop_stalls_total',
      'Event-loop stalls longer than the threshold.',
      'counter',
      () => [{ labels: {}, value: m.stallCount }],
    ),
  );
  add(
    new CollectedMetric('hangproof_requests_in_flight', 'Requests holding a concurrency slot.', 'gauge', () =>
      p.limiter === undefined ? [] : [{ labels: {}, value: p.limiter.inFlight }],
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_concurrency_limit',
      'Concurrency slots in force: maxInFlight, or the adaptive limit.',
      'gauge',
      () => (p.limiter === undefined ? [] : [{ labels: {}, value: p.limiter.limit }]),
    ),
  );
  add(
    new CollectedMetric('hangproof_requests_queued', 'Requests waiting for a concurrency slot.', 'gauge', () =>
      p.limiter === undefined ? [] : [{ labels: {}, value: p.limiter.queued }],
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_requests_shed_total',
      'Requests answered 503 OVERLOADED, by reason.',
      'counter',
      () => [...m.shed].map(([reason, n]) => ({ labels: { reason }, value: n })),
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_job_last_beat_timestamp_seconds',
      'Time of the last heartbeat of each background job.',
      'gauge',
      () => p.heartbeats.list().map((j) => ({ labels: { job: j.job }, value: Date.parse(j.lastBeatAt) / 1000 })),
    ),
  );
  add(
    new CollectedMetric(
      'hangproof_job_last_success_timestamp_seconds',
      'Time of the last successful run of each job.',
      'gauge',
      () =>
        p.heartbeats
          .list()
          .filter((j) => j.lastSuccessAtMs !== undefined)
          .map((j) => ({ labels: { job: j.job }, value: (j.lastSuccessAtMs as number) / 1000 })),
    ),
  );
  add(
    new CollectedMetric('hangproof_job_runs_total', 'Runs reported by each background job.', 'counter', () =>
      p.heartbeats.list().map((j) => ({ labels: { job: j.job }, value: j.runs })),
    ),
  );
  add(
    new CollectedMetric('hangproof_job_failures_total', 'Failed runs reported by each background job.', 'counter', () =>
      p.heartbeats.list().map((j) => ({ labels: { job: j.job }, value: j.failures })),
    ),
  );
  // The loop-lag histogram's probe at the monitor's resolution: the two wake the loop together.
  if (p.defaultMetrics) {
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: LOOP_DELAY_RESOLUTION_MS });
  }
  return registry;
}
