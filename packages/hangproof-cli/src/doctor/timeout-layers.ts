/**
 * The one description of a service's timeout layers that `doctor` audits. It is filled from a
 * JSON config (`--config`), from a running service's `settings` in /status.json (`--service`), from
 * nginx/PgBouncer files and from a live Postgres; `mergeLayers` combines them, later sources
 * winning. Every duration is in ms; `null` means "explicitly none" (0 or infinite), a missing key
 * means "not described" (not checked).
 */
import { parseDurationMs } from '../output/duration.js';

export interface DependencyLayer {
  readonly name: string;
  /** Longest one attempt may take, in ms. */
  readonly attemptTimeoutMs?: number | null;
  /** Longest a whole call (all attempts and backoff) may take, in ms, when the client enforces one. */
  readonly timeoutMs?: number | null;
  /** Tries per call, the first included. */
  readonly maxAttempts: number;
  /** Upper bound of each wait between attempts, in ms (length maxAttempts - 1). */
  readonly backoffMs: readonly number[];
  /** Time the breaker stays open before it lets a probe through, in ms. */
  readonly halfOpenAfterMs?: number | null;
  /** Deadline of whoever calls this dependency, when it differs from the request deadline, in ms. */
  readonly callerDeadlineMs?: number;
  /** Names of dependencies this one calls in turn (a chain of breakers and retries). */
  readonly calls: readonly string[];
}

export interface TimeoutLayers {
  readonly service?: string;
  readonly gateway?: {
    readonly name: string;
    readonly timeoutMs?: number | null;
    readonly idleTimeoutMs?: number | null;
  };
  readonly workers?: { readonly name: string; readonly timeoutMs?: number | null };
  readonly server?: {
    readonly name?: string;
    readonly requestTimeoutMs?: number | null;
    readonly headersTimeoutMs?: number | null;
    readonly keepAliveTimeoutMs?: number | null;
  };
  readonly deadlineMs?: number | null;
  readonly instances?: number;
  /** The service's own Postgres client settings. */
  readonly pg?: {
    readonly statementTimeoutMs?: number | null;
    readonly lockTimeoutMs?: number | null;
    readonly idleInTransactionSessionTimeoutMs?: number | null;
    readonly acquireTimeoutMs?: number | null;
    readonly max?: number;
  };
  /** The database server's defaults (SHOW), read live or described. */
  readonly postgres?: {
    readonly statementTimeoutMs?: number | null;
    readonly lockTimeoutMs?: number | null;
    readonly idleInTransactionSessionTimeoutMs?: number | null;
    readonly maxConnections?: number;
    readonly superuserReservedConnections?: number;
  };
  readonly dependencies?: readonly DependencyLayer[];
}

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A duration field: a number of ms, a string with a unit ("300s"), 0/null meaning none. */
function ms(where: string, v: unknown): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === null || v === 0 || v === '0') return null;
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  if (typeof v === 'string') {
    const parsed = parseDurationMs(v, 'ms');
    if (parsed !== undefined) return parsed === 0 ? null : parsed;
  }
  throw new TypeError(`${where} must be a duration in ms (or a string like "30s"), received ${JSON.stringify(v)}`);
}

function count(where: string, v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  throw new TypeError(`${where} must be a whole number, received ${JSON.stringify(v)}`);
}

/** First defined value among several accepted spellings of one field. */
function pick(o: Json, ...keys: string[]): unknown {
  for (const k of keys) if (o[k] !== undefined) return o[k];
  return undefined;
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * Normalises a layer description: the `--config` JSON or a service's `settings` object. Accepts
 * hangproof's own option names (deps `retry.maxAttempts`, `breaker.halfOpenAfterMs`, Node's
 * `keepAliveTimeout`) as well as the documented config names. Throws TypeError naming a bad field.
 */
export function normaliseLayers(input: unknown, label: string): TimeoutLayers {
  if (!isObj(input)) throw new TypeError(`${label} must be a JSON object`);
  const out: Record<string, unknown> = {};
  if (typeof input.service === 'string') out.service = input.service;
  if (isObj(input.gateway)) {
    const g = input.gateway;
    out.gateway = defined({
      name: typeof g.name === 'string' ? g.name : 'gateway',
      timeoutMs: ms(`${label} gateway.timeoutMs`, pick(g, 'timeoutMs', 'timeout')),
      idleTimeoutMs: ms(`${label} gateway.idleTimeoutMs`, pick(g, 'idleTimeoutMs', 'idleTimeout')),
    });
  }
  if (isObj(input.workers)) {
    const w = input.workers;
    out.workers = defined({
      name: typeof w.name === 'string' ? w.name : 'workers',
      timeoutMs: ms(`${label} workers.timeoutMs`, pick(w, 'timeoutMs', 'timeout')),
    });
  }
  if (isObj(input.server)) {
    const s = input.server;
    out.server = defined({
      name: typeof s.name === 'string' ? s.name : undefined,
      requestTimeoutMs: ms(`${label} server.requestTimeout`, pick(s, 'requestTimeoutMs', 'requestTimeout')),
      headersTimeoutMs: ms(`${label} server.headersTimeout`, pick(s, 'headersTimeoutMs', 'headersTimeout')),
      keepAliveTimeoutMs: ms(`${label} server.keepAliveTimeout`, pick(s, 'keepAliveTimeoutMs', 'keepAliveTimeout')),
    });
  }
  const deadline = pick(input, 'deadlineMs', 'maxDeadlineMs');
  if (deadline !== undefined || 'deadlineMs' in input) out.deadlineMs = ms(`${label} deadlineMs`, deadline);
  const instances = count(`${label} instances`, input.instances);
  if (instances !== undefined) out.instances = instances;
  if (isObj(input.pg)) {
    const p = input.pg;
    out.pg = defined({
      statementTimeoutMs: ms(`${label} pg.statementTimeoutMs`, pick(p, 'statementTimeoutMs')),
      lockTimeoutMs: ms(`${label} pg.lockTimeoutMs`, pick(p, 'lockTimeoutMs')),
      idleInTransactionSessionTimeoutMs: ms(
        `${label} pg.idleInTransactionSessionTimeoutMs`,
        pick(p, 'idleInTransactionSessionTimeoutMs', 'idleInTransactionTimeoutMs'),
      ),
      acquireTimeoutMs: ms(`${label} pg.acquireTimeoutMs`, pick(p, 'acquireTimeoutMs', 'connectionTimeoutMillis')),
      max: count(`${label} pg.max`, pick(p, 'max', 'poolMax', 'poolSize')),
    });
  }
  if (isObj(input.postgres)) {
    const p = input.postgres;
    out.postgres = defined({
      statementTimeoutMs: ms(`${label} postgres.statementTimeout`, pick(p, 'statementTimeoutMs', 'statement_timeout')),
      lockTimeoutMs: ms(`${label} postgres.lockTimeout`, pick(p, 'lockTimeoutMs', 'lock_timeout')),
      idleInTransactionSessionTimeoutMs: ms(
        `${label} postgres.idleInTransactionSessionTimeout`,
        pick(p, 'idleInTransactionSessionTimeoutMs', 'idle_in_transaction_session_timeout'),
      ),
      maxConnections: count(`${label} postgres.maxConnections`, pick(p, 'maxConnections', 'max_connections')),
      superuserReservedConnections: count(
        `${label} postgres.superuserReservedConnections`,
        pick(p, 'superuserReservedConnections', 'superuser_reserved_connections'),
      ),
    });
  }
  const deps = input.dependencies;
  if (deps !== undefined) {
    const list = Array.isArray(deps)
      ? deps
      : isObj(deps)
        ? Object.entries(deps).map(([name, d]) => ({ name, ...(isObj(d) ? d : {}) }))
        : null;
    if (list === null) throw new TypeError(`${label} dependencies must be an array or an object by name`);
    out.dependencies = list.map((d, i) => normaliseDependency(d, `${label} dependencies[${i}]`));
  }
  return out as TimeoutLayers;
}

function normaliseDependency(d: unknown, where: string): DependencyLayer {
  if (!isObj(d) || typeof d.name !== 'string') throw new TypeError(`${where} must be an object with a name`);
  const retry = isObj(d.retry) ? d.retry : {};
  const breaker = isObj(d.breaker) ? d.breaker : {};
  const maxAttempts = count(`${where}.maxAttempts`, pick(d, 'maxAttempts') ?? pick(retry, 'maxAttempts')) ?? 1;
  const timeoutMs = ms(`${where}.timeoutMs`, d.timeoutMs);
  const attempt = ms(`${where}.attemptTimeoutMs`, d.attemptTimeoutMs);
  // With only `timeoutMs` given, a plain client's timeout is per attempt; hangproof's deps publish
  // both (timeoutMs = whole call, attemptTimeoutMs = one try).
  const attemptTimeoutMs = attempt !== undefined ? attempt : timeoutMs;
  const total = attempt !== undefined ? timeoutMs : undefined;
  const backoffMs = backoffBounds(where, pick(d, 'backoff', 'backoffMs') ?? retry, Math.max(0, maxAttempts - 1));
  const callsRaw = pick(d, 'calls', 'via');
  const calls = typeof callsRaw === 'string' ? [callsRaw] : Array.isArray(callsRaw) ? callsRaw.map(String) : [];
  const halfOpen =
    pick(d, 'halfOpenAfterMs') ?? pick(breaker, 'halfOpenAfterMs', 'recoveryTimeoutMs', 'resetTimeoutMs');
  const caller = ms(`${where}.callerDeadlineMs`, d.callerDeadlineMs);
  return defined({
    name: d.name,
    attemptTimeoutMs,
    timeoutMs: total,
    maxAttempts: Math.max(1, maxAttempts),
    backoffMs,
    halfOpenAfterMs: ms(`${where}.breaker.halfOpenAfterMs`, halfOpen),
    callerDeadlineMs: caller ?? undefined,
    calls,
  }) as DependencyLayer;
}

/**
 * The bound of each backoff wait: an explicit list, a constant, or hangproof's doubling full-jitter
 * `{initialDelayMs, maxDelayMs}` (the bound doubles per retry up to maxDelayMs).
 */
function backoffBounds(where: string, v: unknown, retries: number): number[] {
  if (retries === 0) return [];
  if (Array.isArray(v)) return Array.from({ length: retries }, (_, i) => Number(v[Math.min(i, v.length - 1)] ?? 0));
  if (typeof v === 'number' || typeof v === 'string') {
    const each = ms(`${where}.backoff`, v) ?? 0;
    return Array.from({ length: retries }, () => each);
  }
  if (isObj(v)) {
    const initial = ms(`${where}.backoff.initialDelayMs`, v.initialDelayMs) ?? 0;
    const max = ms(`${where}.backoff.maxDelayMs`, v.maxDelayMs) ?? initial;
    return Array.from({ length: retries }, (_, i) => Math.min(max, initial * 2 ** i));
  }
  return Array.from({ length: retries }, () => 0);
}

/** Combines descriptions; fields of later ones win, dependencies are merged by name. */
export function mergeLayers(...parts: readonly TimeoutLayers[]): TimeoutLayers {
  const out: Record<string, unknown> = {};
  const deps = new Map<string, DependencyLayer>();
  for (const p of parts) {
    for (const [k, v] of Object.entries(p)) {
      if (k === 'dependencies') continue;
      const prev = out[k];
      out[k] = isObj(prev) && isObj(v) ? { ...prev, ...v } : v;
    }
    for (const d of p.dependencies ?? []) deps.set(d.name, { ...deps.get(d.name), ...d });
  }
  if (deps.size > 0) out.dependencies = [...deps.values()];
  return out as TimeoutLayers;
}
