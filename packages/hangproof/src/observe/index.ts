/** hangproof/observe: latency windows, Prometheus metrics, loop stalls, overload protection, status page. */
export { type AccessRequest, AdminAccess } from './admin-access.js';
export type { LoopSample, PressureReason } from './event-loop-monitor.js';
export type { ExportedWindows } from './export-windows.js';
export type { StatusWarning } from './extra-status.js';
export { GRADIENT_LIMIT_DEFAULTS, type GradientLimitOptions } from './gradient-limit.js';
export {
  type HeartbeatReport,
  type HeartbeatStatus,
  Heartbeats,
  heartbeats,
  MAX_HEARTBEAT_JOBS,
} from './heartbeats.js';
export { queryId, type SlowRequest, type TimeoutRecord } from './measurements.js';
export {
  createObservatory,
  Observatory,
  type ObserveApi,
  type ObservedEdge,
  type StatusErrorWriter,
} from './observatory.js';
export {
  ADAPTIVE_QUEUE_WAIT_MS,
  type AllowRule,
  DEFAULT_BUCKETS_SEC,
  type DependencyStatusSource,
  type ExtraStatusSource,
  OBSERVE_DEFAULTS,
  type ObserveOptions,
  type PoolStatsSource,
} from './options.js';
export { type OverloadGuardOptions, overloadGuard, type ShedReason } from './overload-guard.js';
export { observe } from './plugin.js';
export type { StatusCause } from './recent-evidence.js';
export {
  type InFlightRequest,
  type StallFrame,
  type StallReport,
  watchStalls,
} from './stall-watchdog.js';
export type {
  StatusDependency,
  StatusDocument,
  StatusEndpoint,
  StatusPool,
  StatusQuery,
  StatusWindows,
} from './status-document.js';
export {
  type EncodedWindow,
  mergeEncoded,
  summarize,
  WINDOW_NAMES,
  WindowedHistogram,
  type WindowName,
  type WindowSummary,
} from './windowed-histogram.js';
