/**
 * The log lines `hangproof report` understands, recognised by their fields and `msg` as written by
 * the edge (one line per request), the Postgres guard, the dependency layer and observe. Anything
 * else is counted and ignored. The texts come from the library's LOG_MESSAGES and LOG_EVENTS, the
 * constants its writers use, so the two cannot drift (test/log-contract.test.ts checks both ends).
 */
import { LOG_EVENTS, LOG_MESSAGES } from '../log-events.js';

export interface SpanRecord {
  readonly name: string;
  readonly startMs: number;
  readonly durMs: number;
  readonly kind: string | undefined;
  readonly fingerprint: string | undefined;
  readonly rows: number | undefined;
  /** `error` of a db span or `outcome` of a failed external call. */
  readonly error: string | undefined;
}

export interface RequestEvent {
  readonly type: 'request';
  /** Epoch ms when the request ended. */
  readonly at: number;
  readonly requestId: string;
  readonly method: string;
  readonly route: string;
  readonly path: string;
  readonly status: number;
  readonly durationMs: number;
  readonly deadlineMs: number | undefined;
  readonly errorCode: string | undefined;
  readonly lastCompletedStep: string | null | undefined;
  readonly stepInFlight: string | null | undefined;
  readonly spans: readonly SpanRecord[];
}

export interface HolderRecord {
  readonly requestId: string | undefined;
  readonly route: string | undefined;
  readonly step: string | undefined;
  readonly heldMs: number;
}

/** A session holding the lock a statement waited for, as Postgres named it (`pg.lock_wait`). */
export interface LockBlockerRecord {
  readonly pid: number;
  readonly applicationName: string;
  readonly route: string | undefined;
  readonly step: string | undefined;
  /** `active`, `idle in transaction`... */
  readonly state: string | undefined;
  readonly xactAgeMs: number | undefined;
  /** Its current or last statement, literals removed. */
  readonly query: string | undefined;
}

export type LogEvent =
  | RequestEvent
  | {
      readonly type: 'lock-wait';
      readonly at: number;
      /** `waiting` (seen by the sweep) or `lock_timeout` (the statement gave up). */
      readonly outcome: string;
      readonly requestId: string | undefined;
      readonly route: string | undefined;
      /** The locked table, or null when the lock is not on one or was not seen. */
      readonly relation: string | null;
      /** The waiting statement's fingerprint, when it failed. */
      readonly sql: string | undefined;
      readonly blockers: readonly LockBlockerRecord[];
    }
  | {
      readonly type: 'slow-plan';
      readonly at: number;
      readonly fingerprint: string;
      /** The plan node with the largest own cost: `Seq Scan`, `Sort`... */
      readonly nodeType: string;
      readonly relation: string | undefined;
      /** An index that would serve it, when there is one. */
      readonly suggestion: string | undefined;
    }
  | {
      readonly type: 'slow-query';
      readonly at: number;
      readonly requestId: string | undefined;
      readonly route: string | undefined;
      readonly sql: string;
      readonly durationMs: number;
      readonly errorCode: string | undefined;
    }
  | {
      readonly type: 'n-plus-one';
      readonly at: number;
      readonly requestId: string | undefined;
      readonly route: string | undefined;
      readonly sql: string;
      readonly count: number;
    }
  | {
      readonly type: 'acquire-timeout';
      readonly at: number;
      readonly pool: string;
      readonly requestId: string | undefined;
      readonly route: string | undefined;
      readonly waitedMs: number;
      readonly inUse: number | undefined;
      readonly holders: readonly HolderRecord[];
    }
  | {
      readonly type: 'statement-failed';
      readonly at: number;
      readonly requestId: string | undefined;
      readonly route: string | undefined;
      readonly code: string | undefined;
      readonly phase: string | undefined;
      readonly sql: string | undefined;
      readonly sqlState: string | undefined;
    }
  | {
      readonly type: 'pg-unavailable';
      readonly at: number;
      /** `hostname:port` of what the service connects to (older lines: `host` alone). */
      readonly host: string | undefined;
      readonly phase: string;
      /**
       * `connect_timeout`, `refused` or `no_answer` (older lines have none); for an idle
       * connection the server ended, its SQLSTATE's name (`admin_shutdown`, ...) or `dropped`.
       */
      readonly reason: string | undefined;
      readonly requestId: string | undefined;
    }
  | { readonly type: 'leak'; readonly at: number; readonly pool: string; readonly holder: HolderRecord }
  | {
      readonly type: 'snapshot-failed';
      readonly at: number;
      readonly dependency: string;
      readonly errorCode: string | undefined;
    }
  | {
      readonly type: 'breaker';
      readonly at: number;
      readonly dependency: string;
      readonly from: string;
      readonly to: string;
    }
  | {
      readonly type: 'health';
      readonly at: number;
      readonly dependency: string;
      readonly from: string;
      readonly to: string;
      readonly errorCode: string | undefined;
    }
  | {
      readonly type: 'stall';
      readonly at: number;
      readonly stallMs: number;
      readonly stack: readonly string[];
      readonly inFlight: readonly {
        readonly requestId: string;
        readonly name: string;
        readonly stepInFlight: string | null;
      }[];
    }
  | { readonly type: 'shed'; readonly at: number; readonly reason: string; readonly shed: number };

export type LogEventType = LogEvent['type'];

type J = Record<string, unknown>;
const s = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const n = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Epoch ms of a pino line: `time` (number or ISO string), else the request's `end_ts`. */
function timeOf(l: J): number | undefined {
  const t = l.time;
  if (typeof t === 'number') return t;
  const iso = s(t) ?? s(l.end_ts);
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

function holder(v: unknown): HolderRecord {
  const h = (v ?? {}) as J;
  return { requestId: s(h.requestId), route: s(h.route), step: s(h.step) ?? undefined, heldMs: n(h.heldMs) ?? 0 };
}

function blocker(v: unknown): LockBlockerRecord {
  const b = (v ?? {}) as J;
  return {
    pid: n(b.pid) ?? 0,
    applicationName: s(b.applicationName) ?? '',
    route: s(b.route),
    step: s(b.step),
    state: s(b.state),
    xactAgeMs: n(b.xactAgeMs),
    query: s(b.query),
  };
}

/** SQLSTATEs of a server ending sessions (class 57P, operator intervention). */
const SHUTDOWN_STATES: Readonly<Record<string, string>> = {
  '57P01': 'admin_shutdown',
  '57P02': 'crash_shutdown',
  '57P03': 'cannot_connect_now',
};

function idleFailureReason(sqlState: string | undefined): string {
  return (sqlState === undefined ? undefined : SHUTDOWN_STATES[sqlState]) ?? 'dropped';
}

/** Host and port of a `pg.unavailable` line (`hostname` + `port`), else the older `host` field. */
function endpointOf(l: J): string | undefined {
  const hostname = s(l.hostname);
  const port = n(l.port);
  if (hostname !== undefined) return port === undefined ? hostname : `${hostname}:${port}`;
  return s(l.host);
}

/** A line saying Postgres could not be reached, during connect unless it names another phase. */
function unavailable(l: J, at: number): LogEvent {
  return {
    type: 'pg-unavailable',
    at,
    host: endpointOf(l),
    phase: s(l.phase) ?? 'connect',
    reason: s(l.reason),
    requestId: s(l.requestId),
  };
}

function span(v: unknown): SpanRecord | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const x = v as J;
  const name = s(x.name);
  if (name === undefined) return undefined;
  // The request line spreads a span's attrs but may leave out its kind: a db span is known by its
  // fingerprint, an outbound call by the `attempts`/`outcome` the dependency layer records.
  const kind =
    s(x.kind) ??
    (typeof x.fingerprint === 'string' ? 'db' : 'attempts' in x || 'outcome' in x ? 'external' : undefined);
  return {
    name,
    startMs: n(x.start_ms) ?? 0,
    durMs: n(x.dur_ms) ?? 0,
    kind,
    fingerprint: s(x.fingerprint),
    rows: n(x.rows),
    error: s(x.error) ?? (x.failed === true ? (s(x.outcome) ?? 'failed') : undefined),
  };
}

/**
 * The `db_ms` and `external_ms` totals of a line without a span list, as one span per kind named
 * `db` and `external` (no fingerprint: readLogs names the queries from the slow-query lines).
 */
function totalsAsSpans(l: J): SpanRecord[] {
  const out: SpanRecord[] = [];
  const db = n(l.db_ms);
  if (db !== undefined && db > 0) out.push(totalSpan('db', db));
  const external = n(l.external_ms);
  if (external !== undefined && external > 0) out.push(totalSpan('external', external));
  return out;
}

function totalSpan(kind: 'db' | 'external', durMs: number): SpanRecord {
  return { name: kind, startMs: 0, durMs, kind, fingerprint: undefined, rows: undefined, error: undefined };
}

/** Classifies one parsed line; undefined for lines the report does not use. */
export function toLogEvent(l: J): LogEvent | undefined {
  const at = timeOf(l);
  if (at === undefined) return undefined;
  const msg = s(l.msg) ?? '';
  if (typeof l.request_id === 'string' && typeof l.route === 'string' && typeof l.status === 'number') {
    // A healthy request's line carries per-kind totals instead of its span list (docs/logging.md).
    const spans = Array.isArray(l.spans)
      ? l.spans.map(span).filter((x): x is SpanRecord => x !== undefined)
      : totalsAsSpans(l);
    return {
      type: 'request',
      at,
      requestId: l.request_id,
      method: s(l.method) ?? '',
      route: l.route,
      path: s(l.path) ?? l.route,
      status: l.status,
      durationMs: n(l.duration_ms) ?? 0,
      deadlineMs: n(l.deadline_ms),
      errorCode: s(l.error_code),
      lastCompletedStep: l.last_completed_step === null ? null : s(l.last_completed_step),
      stepInFlight: l.step_in_flight === null ? null : s(l.step_in_flight),
      spans,
    };
  }
  if (l.event === LOG_EVENTS.eventLoopStall) {
    const inFlight = Array.isArray(l.in_flight) ? (l.in_flight as J[]) : [];
    return {
      type: 'stall',
      at,
      stallMs: n(l.stall_ms) ?? 0,
      stack: Array.isArray(l.stack) ? l.stack.filter((f): f is string => typeof f === 'string') : [],
      inFlight: inFlight.map((r) => ({
        requestId: s(r.requestId) ?? '',
        name: s(r.name) ?? '',
        stepInFlight: s(r.stepInFlight) ?? null,
      })),
    };
  }
  if (l.event === LOG_EVENTS.loadShedding) return { type: 'shed', at, reason: s(l.reason) ?? '', shed: n(l.shed) ?? 1 };
  if (l.event === LOG_EVENTS.pgLockWait) {
    return {
      type: 'lock-wait',
      at,
      outcome: s(l.outcome) ?? 'waiting',
      requestId: s(l.requestId),
      route: s(l.route),
      relation: s(l.relation) ?? null,
      sql: s(l.sql),
      blockers: Array.isArray(l.blockers) ? l.blockers.map(blocker) : [],
    };
  }
  // Whatever its message (a refused connect, a handshake or a query with no answer), a line with
  // this event says Postgres could not be reached.
  if (l.event === LOG_EVENTS.pgUnavailable) return unavailable(l, at);
  if (l.event === LOG_EVENTS.pgSlowPlan) {
    const dominant = (l.dominant ?? {}) as J;
    return {
      type: 'slow-plan',
      at,
      fingerprint: s(l.fingerprint) ?? '(unknown)',
      nodeType: s(dominant.nodeType) ?? '(unknown node)',
      relation: s(dominant.relation),
      suggestion: s(l.suggestion),
    };
  }
  switch (msg) {
    case LOG_MESSAGES.slowQuery:
      return {
        type: 'slow-query',
        at,
        requestId: s(l.requestId),
        route: s(l.route),
        sql: s(l.sql) ?? '(unknown)',
        durationMs: n(l.durationMs) ?? 0,
        errorCode: s(l.errorCode),
      };
    case LOG_MESSAGES.acquireTimeout:
      return {
        type: 'acquire-timeout',
        at,
        pool: s(l.pool) ?? 'postgres',
        requestId: s(l.requestId),
        route: s(l.route),
        waitedMs: n(l.waitedMs) ?? 0,
        inUse: n(l.inUse),
        holders: Array.isArray(l.holders) ? l.holders.map(holder) : [],
      };
    case LOG_MESSAGES.statementFailed: {
      const cause = (l.cause ?? {}) as J;
      return {
        type: 'statement-failed',
        at,
        requestId: s(l.requestId),
        route: s(l.route),
        code: s(l.code),
        phase: s(l.phase),
        sql: s(l.sql),
        sqlState: s(cause.sqlState) ?? s((cause.cause as J | undefined)?.code),
      };
    }
    // Lines of a service older than the `pg.unavailable` event: the same fields but for the
    // hostname, port and reason it added, so they read as `host` and no reason.
    case LOG_MESSAGES.connectionRefused:
    case LOG_MESSAGES.connectTimeout:
      return unavailable(l, at);
    // A pooled connection the server ended while idle: a restart or failover says so first
    // (57P01 admin_shutdown), before the service ever fails a query.
    case LOG_MESSAGES.idleConnectionFailed:
      return {
        type: 'pg-unavailable',
        at,
        host: s(l.host),
        phase: 'idle',
        reason: idleFailureReason(s(((l.err ?? {}) as J).sqlState)),
        requestId: undefined,
      };
    case LOG_MESSAGES.snapshotLoadFailed:
      return { type: 'snapshot-failed', at, dependency: s(l.dependency) ?? '(unknown)', errorCode: s(l.errorCode) };
    case LOG_MESSAGES.connectionLeak:
      return { type: 'leak', at, pool: s(l.pool) ?? 'postgres', holder: holder(l.holder) };
    case LOG_MESSAGES.dependencyUp:
    case LOG_MESSAGES.dependencyDown:
      return {
        type: 'health',
        at,
        dependency: s(l.dependency) ?? '(unknown)',
        from: s(l.from) ?? '',
        to: s(l.to) ?? '',
        errorCode: s(l.errorCode),
      };
    case LOG_MESSAGES.breakerOpened:
    case LOG_MESSAGES.breakerHalfOpen:
    case LOG_MESSAGES.breakerClosed:
      if (typeof l.dependency !== 'string') return undefined;
      return { type: 'breaker', at, dependency: l.dependency, from: s(l.from) ?? '', to: s(l.to) ?? '' };
    case LOG_MESSAGES.nPlusOne:
      return {
        type: 'n-plus-one',
        at,
        requestId: s(l.requestId),
        route: s(l.route),
        sql: s(l.sql) ?? '(unknown)',
        count: n(l.count) ?? 0,
      };
  }
  return undefined;
}
