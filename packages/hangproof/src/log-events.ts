/**
 * The log lines hangproof writes that tools read back: `hangproof report` classifies a service's
 * log by these texts and event names. They are a contract like the error codes: the writers in
 * pg, deps and observe use these constants, the CLI imports the same constants, and a test fails
 * when a writer and the reader drift apart. Change a text only together with a note in the
 * changelog (a deployed CLI may read logs of an older service).
 */

/** `msg` of the log lines written by the Postgres guard and the dependency layer. */
export const LOG_MESSAGES = Object.freeze({
  /** A query slower than `slowQueryMs` (pg). */
  slowQuery: 'slow postgres query',
  /** A request waited past its budget for a pooled connection (pg). */
  acquireTimeout: 'postgres pool acquire timed out',
  /** Opening a new connection outlived its budget (pg). */
  connectTimeout: 'opening a postgres connection timed out',
  /** A statement failed or was cancelled at the deadline (pg). */
  statementFailed: 'postgres statement failed',
  /** Postgres refused or dropped the connection (pg). */
  connectionRefused: 'postgres connection refused or dropped',
  /** A pooled connection failed while idle: the server or the network dropped it (pg). */
  idleConnectionFailed: 'idle postgres connection failed',
  /** A connection checked out longer than `leakDetectionMs` (pg). */
  connectionLeak: 'postgres connection held longer than the leak detection threshold',
  /** The same query shape ran sequentially more than `nPlusOneThreshold` times in one request (pg). */
  nPlusOne: 'N+1 query pattern: the same query ran sequentially more than the threshold in one request',
  /** A dependency's health check passed after failing (deps). */
  dependencyUp: 'dependency health is up',
  /** A dependency's health check failed (deps). */
  dependencyDown: 'dependency health is down',
  /** A dependency's breaker opened (deps). */
  breakerOpened: 'circuit breaker opened',
  /** A dependency's breaker let one trial call through (deps). */
  breakerHalfOpen: 'circuit breaker half-open',
  /** A dependency's breaker closed again (deps). */
  breakerClosed: 'circuit breaker closed',
  /** A snapshot's background load failed; the page got the last known value (deps). */
  snapshotLoadFailed: 'snapshot load failed',
} as const);

/**
 * `msg` of the one line every request gets (see docs/logging.md). The report knows a request line
 * by its fields (request_id, route, status), whatever its message; these say how it ended.
 */
export const REQUEST_LOG_MESSAGES = Object.freeze({
  /** It was answered without an error code. */
  requestCompleted: 'request completed',
  /** It ended with an error code other than the two below. */
  requestFailed: 'request failed',
  /** It ended at its deadline (REQUEST_TIMEOUT). */
  requestTimedOut: 'request timed out',
  /** Its client left before the answer (499). */
  clientClosedRequest: 'client closed request',
} as const);

/** `event` field of the structured lines written by observe and the Postgres guard. */
export const LOG_EVENTS = Object.freeze({
  /** The event loop was blocked longer than `stallThresholdMs` (observe). */
  eventLoopStall: 'event_loop_stall',
  /** Requests were answered 503 OVERLOADED (at most one line per interval) (observe). */
  loadShedding: 'load_shedding',
  /** A guarded statement waited on a lock: the relation and the sessions holding it (pg). */
  pgLockWait: 'pg.lock_wait',
  /** Postgres could not be reached (refused, handshake timed out, no answer), with host and port (pg). */
  pgUnavailable: 'pg.unavailable',
  /** The plan of a slow statement: its dominant node and the index that would serve it (pg). */
  pgSlowPlan: 'pg.slow_plan',
} as const);

export type LogMessage = (typeof LOG_MESSAGES)[keyof typeof LOG_MESSAGES];
export type LogEventName = (typeof LOG_EVENTS)[keyof typeof LOG_EVENTS];
