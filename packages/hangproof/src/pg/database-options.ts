import type { ConnectionOptions } from 'node:tls';
import { finiteNumber, numberWhere, oneOf, optionalFunction } from '../core/option-checks.js';
import { type LockEvidenceOptions, resolveLockEvidenceOptions } from './lock-evidence.js';
import type { PgLogger } from './logger.js';
import { type PlanEvidenceOptions, resolvePlanEvidenceOptions } from './plan-evidence.js';

/** Turns bind parameters into what a log line may show. Must never return a secret. */
export type ParamRedactor = (params: readonly unknown[], fingerprint: string) => unknown[];

/**
 * Options of `createDatabase`. Every wait the guard makes is bounded by one of these, and by the
 * remaining budget of the request running the query. Defaults live in DATABASE_DEFAULTS.
 */
export interface DatabaseOptions {
  /** `postgres://user:pass@host:port/db`. Required. */
  readonly connectionString: string;
  /** TLS options for the connection (and for cancel requests, which must use the same TLS). */
  readonly ssl?: boolean | ConnectionOptions;
  /** Name of the pool in logs and diagnostics events. @default 'postgres' */
  readonly name?: string;
  /** Largest number of open connections. @default 10 */
  readonly max?: number;
  /** Longest wait for a free connection, in ms; also capped by the request's remaining budget. @default 2_000 */
  readonly acquireTimeoutMs?: number;
  /** Callers allowed to wait for a connection at once; one more fails at once with phase 'acquire'. @default 1_000 */
  readonly maxWaiting?: number;
  /** Longest time to open a new connection (TCP + TLS + auth), in ms. @default 3_000 */
  readonly connectTimeoutMs?: number;
  /** An idle connection is closed after this many ms; 0 keeps idle connections forever. @default 10_000 */
  readonly idleTimeoutMs?: number;
  /** A connection is closed (when next idle) once it is this old, in ms; 0 disables recycling. @default 1_800_000 */
  readonly maxLifetimeMs?: number;
  /**
   * A connection that sat idle longer than this (ms) is checked with `SELECT 1` before it is handed
   * out; a dead one is destroyed and another is taken. 0 checks every acquire. @default 5_000
   */
  readonly pingIdleAfterMs?: number;
  /** Longest wait for that liveness check, in ms (also capped by the budget). @default 1_000 */
  readonly pingTimeoutMs?: number;
  /** Per-statement limit on the server (`statement_timeout`), in ms. @default 5_000 */
  readonly statementTimeoutMs?: number;
  /** Longest wait for one lock (`lock_timeout`), in ms; capped just under the statement limit. @default 2_000 */
  readonly lockTimeoutMs?: number;
  /** The server ends a session idle inside a transaction this long (ms). @default 30_000 */
  readonly idleInTransactionTimeoutMs?: number;
  /**
   * When a standalone statement sends its own limits (`set_config` of statement_timeout,
   * lock_timeout and application_name, in the statement's implicit transaction):
   * - `'when-shorter'`: only when the request has less time left than `statementTimeoutMs` (plus
   *   `reserveMs`); otherwise the session limits set when the connection opened already fit, and
   *   the statement goes alone (no set_config for Postgres to parse and answer, and the session's
   *   application_name instead of one naming the request);
   * - `'always'`: every statement. Use it behind PgBouncer in transaction mode, which does not
   *   pass the session limits on to the server.
   * The client-side bound and the cancel at the request's deadline apply either way.
   * @default 'when-shorter'
   */
  readonly statementLimits?: 'when-shorter' | 'always';
  /**
   * Time kept back from the request's remaining budget when a query's limit is derived from it, so
   * the request still has time to turn the failure into a clear answer. @default 25
   */
  readonly reserveMs?: number;
  /**
   * How long after a query's own limit the client waits for any answer before it sends a cancel,
   * gives the connection up and destroys it (a hung server or network). @default 250
   */
  readonly unresponsiveGraceMs?: number;
  /** Longest wait for the server to close a cancel request's socket, in ms. @default 1_000 */
  readonly cancelTimeoutMs?: number;
  /** Prefix of `application_name`; the route and request id are appended per transaction. @default 'hangproof' */
  readonly applicationName?: string;
  /** A query slower than this (ms) is logged at warn with redacted parameters; 0 disables. @default 500 */
  readonly slowQueryMs?: number;
  /** The same query shape run sequentially more than this many times in one request is logged as N+1; 0 disables. @default 5 */
  readonly nPlusOneThreshold?: number;
  /** A connection held longer than this (ms) is logged with its holder; 0 disables. Minimum 100. @default 10_000 */
  readonly leakDetectionMs?: number;
  /** Record the stack of each acquire, shown in leak logs. Costs a stack capture per acquire. @default false */
  readonly captureAcquireStacks?: boolean;
  /** Bound of `readinessCheck()`, in ms. @default 1_000 */
  readonly readinessTimeoutMs?: number;
  /** Attempts of a transaction declared `retryable` that hits 40001/40P01, the first included. @default 3 */
  readonly maxTxAttempts?: number;
  /** Base of the jittered backoff between those attempts, in ms. @default 20 */
  readonly txRetryBaseMs?: number;
  /** What logs may show of bind parameters. @default each value replaced by its type and length */
  readonly redactParams?: ParamRedactor;
  /** A pino-compatible logger. @default pino at level `warn` to stderr, named `hangproof:pg` */
  readonly logger?: PgLogger;
  /**
   * Lock evidence captured from Postgres when a statement waits on a lock or hits lock_timeout
   * (see LockEvidenceOptions); `false` turns it off. @default LOCK_EVIDENCE_DEFAULTS
   */
  readonly lockEvidence?: LockEvidenceOptions | false;
  /**
   * Plans of statements slower than `slowQueryMs`, captured off the request path (see
   * PlanEvidenceOptions); `false` turns it off. @default PLAN_EVIDENCE_DEFAULTS
   */
  readonly planEvidence?: PlanEvidenceOptions | false;
}

/** The options that have a default: all but the connection, the functions and the evidence groups. */
type DefaultedOptions = Required<
  Omit<DatabaseOptions, 'connectionString' | 'ssl' | 'redactParams' | 'logger' | 'lockEvidence' | 'planEvidence'>
>;

/** Every default of DatabaseOptions, in one place (docs/reference/pg.md repeats them). */
export const DATABASE_DEFAULTS: Readonly<DefaultedOptions> = Object.freeze({
  name: 'postgres',
  max: 10,
  acquireTimeoutMs: 2_000,
  maxWaiting: 1_000,
  connectTimeoutMs: 3_000,
  idleTimeoutMs: 10_000,
  maxLifetimeMs: 1_800_000,
  pingIdleAfterMs: 5_000,
  pingTimeoutMs: 1_000,
  statementTimeoutMs: 5_000,
  lockTimeoutMs: 2_000,
  idleInTransactionTimeoutMs: 30_000,
  statementLimits: 'when-shorter',
  reserveMs: 25,
  unresponsiveGraceMs: 250,
  cancelTimeoutMs: 1_000,
  applicationName: 'hangproof',
  slowQueryMs: 500,
  nPlusOneThreshold: 5,
  leakDetectionMs: 10_000,
  captureAcquireStacks: false,
  readinessTimeoutMs: 1_000,
  maxTxAttempts: 3,
  txRetryBaseMs: 20,
});

export type ResolvedDatabaseOptions = Readonly<DefaultedOptions> & {
  readonly connectionString: string;
  readonly ssl: boolean | ConnectionOptions | undefined;
  readonly redactParams: ParamRedactor | undefined;
  readonly logger: PgLogger | undefined;
  readonly lockEvidence: Required<LockEvidenceOptions> | false;
  readonly planEvidence: Required<PlanEvidenceOptions> | false;
};

/** Bounds of each numeric option: [minimum, whether 0 is allowed as "off"]. */
const NUMERIC: Readonly<Record<string, readonly [min: number, zeroAllowed: boolean]>> = {
  max: [1, false],
  acquireTimeoutMs: [1, false],
  maxWaiting: [0, true],
  connectTimeoutMs: [1, false],
  idleTimeoutMs: [1, true],
  maxLifetimeMs: [1_000, true],
  pingIdleAfterMs: [0, true],
  pingTimeoutMs: [1, false],
  statementTimeoutMs: [1, false],
  lockTimeoutMs: [1, false],
  idleInTransactionTimeoutMs: [1, false],
  reserveMs: [0, true],
  unresponsiveGraceMs: [10, false],
  cancelTimeoutMs: [10, false],
  slowQueryMs: [1, true],
  nPlusOneThreshold: [1, true],
  leakDetectionMs: [100, true],
  readinessTimeoutMs: [1, false],
  maxTxAttempts: [1, false],
  txRetryBaseMs: [0, true],
};

/** Merges `input` over the defaults and validates it; throws TypeError/RangeError naming the value. */
export function resolveDatabaseOptions(input: DatabaseOptions): ResolvedDatabaseOptions {
  if (typeof input?.connectionString !== 'string' || input.connectionString === '') {
    throw new TypeError(`connectionString must be a non-empty string, received ${typeof input?.connectionString}`);
  }
  const o = { ...DATABASE_DEFAULTS, ...input } as Record<string, unknown>;
  for (const [key, [min, zeroAllowed]] of Object.entries(NUMERIC)) {
    const v = finiteNumber(key, o[key]);
    numberWhere(key, v, (n) => n >= min || (zeroAllowed && n === 0), `${zeroAllowed ? '0 or ' : ''}at least ${min}`);
  }
  if (typeof o.applicationName !== 'string' || o.applicationName.length > 40) {
    throw new RangeError(
      `applicationName must be a string of at most 40 characters, received ${String(o.applicationName)}`,
    );
  }
  oneOf('statementLimits', o.statementLimits, ['when-shorter', 'always']);
  optionalFunction('redactParams', o.redactParams);
  return {
    ...(o as DefaultedOptions),
    connectionString: input.connectionString,
    ssl: input.ssl,
    redactParams: input.redactParams,
    logger: input.logger,
    lockEvidence: resolveLockEvidenceOptions(input.lockEvidence),
    planEvidence: resolvePlanEvidenceOptions(input.planEvidence),
  };
}
