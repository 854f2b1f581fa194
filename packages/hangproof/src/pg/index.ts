/** hangproof/pg: the Postgres guard. Every wait bounded by the request's budget, cancelled on the server. */
export { createDatabase } from './database.js';
export type {
  Database,
  DatabaseStats,
  QueryOptions,
  QueryResult,
  Row,
  Transaction,
  TxOptions,
} from './database-api.js';
export {
  DATABASE_DEFAULTS,
  type DatabaseOptions,
  type ParamRedactor,
} from './database-options.js';
export { fingerprint } from './fingerprint.js';
export type { HolderView } from './holder-registry.js';
export {
  type CursorPayload,
  decodeCursor,
  encodeCursor,
  type KeysetClause,
  type KeysetDirection,
  type KeysetOptions,
  keysetPage,
  MAX_PAGE_SIZE,
} from './keyset.js';
export {
  LOCK_EVIDENCE_DEFAULTS,
  LOCK_WAIT_EVENT,
  type LockBlocker,
  type LockEvidenceOptions,
  type LockWait,
  type LockWaitStats,
} from './lock-evidence.js';
export type { PgLogger } from './logger.js';
export type { PgPhase } from './pg-errors.js';
export {
  type DominantNode,
  PLAN_EVIDENCE_DEFAULTS,
  type PlanEvidenceOptions,
  type PlanStats,
  SLOW_PLAN_EVENT,
  type SlowPlan,
} from './plan-evidence.js';
export { describeValue, redactParams } from './redact-params.js';
