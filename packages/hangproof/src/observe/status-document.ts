/**
 * The shape of /status.json: what `buildStatusSnapshot` writes and what the status page and the
 * `hangproof` CLI read. Declared here, once, so the writer is checked against it by the compiler
 * and readers import it as a type instead of re-declaring the fields they use. Add fields; do not
 * rename or remove them (a deployed CLI may read an older or newer service). Latencies are in ms.
 */

import type { LoopSample, PressureReason } from './event-loop-monitor.js';
import type { StatusWarning } from './extra-status.js';
import type { HeartbeatStatus } from './heartbeats.js';
import type { BreakerView, SlowRequest, TimeoutRecord } from './measurements.js';
import type { StatusCause } from './recent-evidence.js';
import type { StallReport } from './stall-watchdog.js';
import type { FailureView } from './status-snapshot.js';
import type { WindowName, WindowSummary } from './windowed-histogram.js';

/** One latency summary per sliding window (`1m`, `5m`, `60m`). */
export type StatusWindows = Readonly<Record<WindowName, WindowSummary>>;

/** One route's row of the endpoint table. */
export interface StatusEndpoint {
  readonly method: string | undefined;
  readonly route: string | undefined;
  readonly windows: StatusWindows;
  /** REQUEST_TIMEOUT answers in the last 5 minutes. */
  readonly timeouts: number;
  readonly total: number;
  /** Error answers since start, by error code. */
  readonly errorsTotal: Readonly<Record<string, number>>;
}

/** One of the slowest query fingerprints. */
export interface StatusQuery {
  readonly queryId: string | undefined;
  readonly fingerprint: string;
  readonly windows: StatusWindows;
  readonly total: number;
}

/**
 * One connection pool. `stats` is the pool's own `stats()` snapshot (a hangproof pool has numeric
 * `inUse`, `waiting`, ...), `{ error }` when it threw, or null for a pool only seen by its acquire
 * times.
 */
export interface StatusPool {
  readonly name: string;
  readonly stats: Readonly<Record<string, unknown>> | null;
  readonly acquire: StatusWindows | null;
}

/** An outbound dependency: its call latencies and its breaker, each null when not measured. */
export interface StatusDependency {
  readonly name: string;
  readonly windows: StatusWindows | null;
  readonly breaker: BreakerView | null;
}

/**
 * The document behind /status and /status.json (before the service's `extraStatus` fields). A type
 * alias, not an interface, so it stays assignable to `Record<string, unknown>` where the document
 * is handled as plain JSON.
 */
export type StatusDocument = {
  readonly service: {
    readonly name: string;
    readonly pid: number;
    readonly node: string;
    /** ISO 8601. */
    readonly startedAt: string;
    readonly uptimeSec: number;
    /** ISO 8601, when the document was built. */
    readonly now: string;
    readonly tracing: boolean;
  };
  readonly windows: readonly WindowName[];
  /**
   * The likely causes of the last minute's slow or failing requests, most likely first (at most
   * 5), ranked as `hangproof report` ranks a log; empty when nothing was abnormal.
   */
  readonly likelyCauses: readonly StatusCause[];
  readonly endpoints: readonly StatusEndpoint[];
  readonly postgres: { readonly total: StatusWindows | null; readonly slowestQueries: readonly StatusQuery[] };
  readonly pools: readonly StatusPool[];
  readonly dependencies: {
    readonly measured: readonly StatusDependency[];
    /** The dependencies' `status()` (health, breaker), `{ error }` when it threw, or null. */
    readonly status: unknown;
  };
  readonly eventLoop: {
    readonly last: LoopSample | null;
    readonly minute: { readonly p99Ms: number; readonly maxMs: number; readonly meanMs: number };
    readonly pressure: PressureReason | null;
    readonly stallThresholdMs: number;
    readonly stallsTotal: number;
    readonly recentStalls: readonly StallReport[];
  };
  readonly overload: {
    readonly maxInFlight: number;
    /** The limit in force: maxInFlight, or where the adaptive limit holds it now; null without a limiter. */
    readonly limit: number | null;
    readonly adaptive: boolean;
    readonly maxQueued: number;
    readonly queueWaitMs: number;
    readonly inFlight: number | null;
    readonly queued: number | null;
    readonly pressure: PressureReason | null;
    readonly maxEventLoopDelayMs: number;
    readonly maxHeapUsedBytes: number;
    /** Requests shed since start, by reason. */
    readonly shed: Readonly<Record<string, number>>;
  };
  readonly jobs: readonly HeartbeatStatus[];
  /** Where each window starts (epoch ms): the page lists only the timeouts its counts include. */
  readonly windowStarts: Readonly<Record<string, number>>;
  /** HTTP status of every error code, so the page tells 5xx from 4xx. */
  readonly errorStatuses: Readonly<Record<string, number>>;
  readonly slowRequests: readonly (SlowRequest & { readonly endedAtMs: number })[];
  readonly timeouts: readonly (TimeoutRecord & { readonly endedAtMs: number; readonly failure: FailureView | null })[];
  /** The service's effective timeouts (observe's `settings` option), as the service published them. */
  readonly settings: unknown;
  /** What the snapshot could not include (filled by the status route). */
  readonly warnings: readonly StatusWarning[];
};
