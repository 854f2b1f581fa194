/** hangproof/deps: calls to other services under the request's deadline, with breakers, retries and bulkheads. */

export type { LatencySummary } from '../core/index.js';
export {
  type BreakerPermit,
  type BreakerState,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from './circuit-breaker.js';
export {
  createDependencies,
  Dependencies,
  type DependenciesOptions,
  type DependenciesReadiness,
} from './dependencies.js';
export {
  type AttemptFn,
  type AttemptInfo,
  type CallOptions,
  Dependency,
  type DependencyStatus,
} from './dependency.js';
export type { HealthSnapshot, HealthState } from './health-monitor.js';
export {
  type HttpCallOptions,
  HttpDependency,
  type HttpMethod,
  type HttpRequestOptions,
  HttpResponse,
  type IncomingHttpHeaders,
  REQUEST_ID_HEADER,
  TIMEOUT_HEADER,
} from './http-dependency.js';
export type { DepsLogger } from './logger.js';
export {
  BREAKER_DEFAULTS,
  type BreakerOptions,
  BULKHEAD_DEFAULTS,
  type BulkheadOptions,
  DEPENDENCY_DEFAULTS,
  type DependencyOptions,
  HEALTH_DEFAULTS,
  type HealthOptions,
  HTTP_DEFAULTS,
  type HttpDependencyOptions,
  RETRY_DEFAULTS,
  type RetryOptions,
} from './options.js';
export { PgSnapshotStore, type PgSnapshotStoreOptions, type Queryable } from './pg-snapshot-store.js';
export {
  SNAPSHOT_CACHE_DEFAULTS,
  SNAPSHOT_READ_DEFAULTS,
  type SnapshotCacheOptions,
  type SnapshotReadOptions,
  type SnapshotResult,
  type SnapshotStore,
  type SnapshotWarning,
} from './snapshot-cache.js';
