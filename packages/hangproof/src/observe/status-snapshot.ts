import type { Span } from '../core/index.js';
import { CODES } from '../errors.js';
import type { ConcurrencyLimiter } from './concurrency-limiter.js';
import type { EventLoopMonitor } from './event-loop-monitor.js';
import type { Heartbeats } from './heartbeats.js';
import type { SeriesView } from './latency-series.js';
import type { BreakerView, Measurements, SlowRequest, TimeoutRecord } from './measurements.js';
import type { ResolvedObserveOptions } from './options.js';
import type { StatusDocument, StatusPool, StatusWindows } from './status-document.js';
import { WINDOW_NAMES, type WindowName, type WindowSummary, windowStartMs } from './windowed-histogram.js';

export type Windows = StatusWindows;

/** Slowest query fingerprints listed on /status. */
const SLOWEST_QUERIES = 10;

/** HTTP status of each catalogue code, so the page can tell server errors from client errors. */
const ERROR_STATUSES: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(Object.entries(CODES).map(([code, c]) => [code, c.status])),
);

/** What failed inside a timed-out request: the last failed span (a query, a call, a step). */
export interface FailureView {
  readonly kind: string;
  readonly name: string;
  readonly code: string | undefined;
  /** Where a Postgres failure happened (`lock`, `acquire`, `query`...), when the span knows. */
  readonly phase: string | undefined;
}

function failureOf(spans: readonly Span[]): FailureView | null {
  let found: Span | undefined;
  for (const s of spans) {
    const a = s.attrs;
    if (a === undefined || (a.error === undefined && a.failed !== true)) continue;
    if (found === undefined || s.startMs + s.durationMs >= found.startMs + found.durationMs) found = s;
  }
  if (found === undefined) return null;
  const a = found.attrs ?? {};
  const code = a.error ?? a.outcome;
  return {
    kind: found.kind,
    name: found.name,
    code: typeof code === 'string' ? code : undefined,
    phase: typeof a.phase === 'string' ? a.phase : undefined,
  };
}

/** When the request ended (epoch ms): `at` is its start. */
const endedMs = (r: SlowRequest): number => Date.parse(r.at) + r.durationMs;

function windows(s: SeriesView, nowMs: number): Windows {
  const out = {} as Record<WindowName, WindowSummary>;
  for (const w of WINDOW_NAMES) out[w] = s.windows.summary(w, nowMs);
  return out;
}

function safe<T>(fn: () => T): T | { error: string } {
  try {
    return fn();
  } catch (err) {
    return { error: err instanceof Error ? err.name : 'error' };
  }
}

export interface SnapshotParts {
  readonly measurements: Measurements;
  readonly monitor: EventLoopMonitor;
  readonly limiter: ConcurrencyLimiter | undefined;
  readonly heartbeats: Heartbeats;
  readonly options: ResolvedObserveOptions<never>;
  readonly tracing: boolean;
  /** Routes of observe itself (status page, its assets, login), left out of the endpoint table. */
  readonly ownRoutes: ReadonlySet<string>;
}

/**
 * The data behind /status and /status.json. Field names are a contract with the status page and
 * `hangproof doctor`; add fields, do not rename them. Latencies are in ms.
 */
export function buildStatusSnapshot(p: SnapshotParts, nowMs: number = Date.now()): StatusDocument {
  const m = p.measurements;
  const o = p.options;
  const endpoints = [...m.routes.series()]
    .map((s) => {
      const w = windows(s, nowMs);
      return {
        method: s.labels.method,
        route: s.labels.route,
        windows: w,
        timeouts: w['5m'].errors.REQUEST_TIMEOUT ?? 0,
        total: s.count,
        errorsTotal: Object.fromEntries(s.errorsTotal),
      };
    })
    .filter((e) => e.total > 0 && !p.ownRoutes.has(String(e.route)))
    .sort((a, b) => b.windows['5m'].count - a.windows['5m'].count || String(a.route).localeCompare(String(b.route)));

  const queries = [...m.queries.entries()]
    .map(([fingerprint, s]) => ({
      queryId: s.labels.query_id,
      fingerprint,
      windows: windows(s, nowMs),
      total: s.count,
    }))
    .sort((a, b) => b.windows['5m'].p95Ms - a.windows['5m'].p95Ms || b.windows['60m'].p95Ms - a.windows['60m'].p95Ms)
    .slice(0, SLOWEST_QUERIES);

  const acquire = new Map([...m.poolAcquire.entries()].map(([pool, s]) => [pool, windows(s, nowMs)]));
  const poolNames = new Set([...Object.keys(o.pools), ...acquire.keys()]);
  const pools = [...poolNames].sort().map((name) => {
    const source = o.pools[name];
    return {
      name,
      // stats() returns the pool's plain snapshot object (PoolStatsSource).
      stats: source === undefined ? null : (safe(() => source.stats()) as StatusPool['stats']),
      acquire: acquire.get(name) ?? null,
    };
  });

  const measured: { name: string; windows: Windows | null; breaker: BreakerView | null }[] = [
    ...m.dependencies.entries(),
  ].map(([name, s]) => ({ name, windows: windows(s, nowMs), breaker: m.breakers.get(name) ?? null }));
  for (const [name, breaker] of m.breakers) {
    if (!measured.some((d) => d.name === name)) measured.push({ name, windows: null, breaker });
  }
  const deps = o.dependencies;

  const settings = typeof o.settings === 'function' ? safe(o.settings as () => unknown) : (o.settings ?? {});
  const loop = p.monitor.summary();

  return {
    service: {
      name: o.serviceName,
      pid: process.pid,
      node: process.version,
      startedAt: new Date(m.startedAtMs).toISOString(),
      uptimeSec: Math.round((nowMs - m.startedAtMs) / 1000),
      now: new Date(nowMs).toISOString(),
      tracing: p.tracing,
    },
    windows: WINDOW_NAMES,
    likelyCauses: m.evidence.likelyCauses(nowMs),
    endpoints,
    postgres: { total: m.queryTotal.count > 0 ? windows(m.queryTotal, nowMs) : null, slowestQueries: queries },
    pools,
    dependencies: {
      measured: measured.sort((a, b) => a.name.localeCompare(b.name)),
      status: deps === undefined ? null : safe(() => deps.status()),
    },
    eventLoop: {
      last: loop.last ?? null,
      minute: loop.minute,
      pressure: loop.pressure,
      stallThresholdMs: o.stallThresholdMs,
      stallsTotal: m.stallCount,
      recentStalls: m.stalls.toArray(),
    },
    overload: {
      maxInFlight: o.maxInFlight,
      // The limit in force: maxInFlight, or where the adaptive limit holds it now.
      limit: p.limiter?.limit ?? null,
      adaptive: o.adaptiveLimit !== false,
      maxQueued: o.maxQueued,
      queueWaitMs: o.queueWaitMs,
      inFlight: p.limiter?.inFlight ?? null,
      queued: p.limiter?.queued ?? null,
      pressure: loop.pressure,
      maxEventLoopDelayMs: o.maxEventLoopDelayMs,
      maxHeapUsedBytes: o.maxHeapUsedBytes,
      shed: Object.fromEntries(m.shed),
    },
    jobs: p.heartbeats.list(nowMs),
    // Where each window starts (epoch ms): the page lists only the timeouts its counts include.
    windowStarts: Object.fromEntries(WINDOW_NAMES.map((w) => [w, windowStartMs(w, nowMs)])),
    errorStatuses: ERROR_STATUSES,
    // An upgraded connection (101, a WebSocket) lasts as long as its client stays: not slow.
    slowRequests: m.slowRequests
      .toArray()
      .filter((r) => r.statusCode !== 101 && !p.ownRoutes.has(r.route))
      .map((r) => ({ ...r, endedAtMs: endedMs(r) })),
    timeouts: m.timeouts
      .toArray()
      .filter((r) => !p.ownRoutes.has(r.route))
      .map((r: TimeoutRecord) => ({ ...r, endedAtMs: endedMs(r), failure: failureOf(r.spans) })),
    settings,
    // Filled by the status route with what `extraStatus` could not add (timeout, error, ...).
    warnings: [],
  };
}
