import { logEvidence } from '../core/index.js';
import { optionalGroup } from '../core/option-checks.js';
import { LOG_EVENTS } from '../log-events.js';
import { fingerprint } from './fingerprint.js';
import type { HolderView } from './holder-registry.js';
import type { PgLogger } from './logger.js';
import { errorSummary } from './redact-params.js';
import { SideConnection, type SideConnectionTarget } from './side-connection.js';

/**
 * What Postgres itself says a guarded statement waited for. Options of `createDatabase`'s
 * `lockEvidence`; defaults live in LOCK_EVIDENCE_DEFAULTS.
 */
export interface LockEvidenceOptions {
  /**
   * A connection checked out longer than this (ms) has its backend looked at: if it waits on a
   * lock, the lock and its blockers are captured. Capped at half of `lockTimeoutMs`, so a wait is
   * seen before lock_timeout ends it. @default 500
   */
  readonly waitThresholdMs?: number;
  /** Bound of one capture (connect + query), in ms; also its `statement_timeout`. @default 1_000 */
  readonly timeoutMs?: number;
  /** Shortest time between two captures, in ms: a lock incident costs one query per interval. @default 1_000 */
  readonly minIntervalMs?: number;
  /** The same relation and blockers are logged at most once per this many ms (all are counted). @default 10_000 */
  readonly logIntervalMs?: number;
  /** Captures kept for `stats().lockWaits.recent` and /status. @default 10 */
  readonly keep?: number;
}

/** Every default of LockEvidenceOptions (docs/reference/pg.md repeats them). */
export const LOCK_EVIDENCE_DEFAULTS = Object.freeze({
  waitThresholdMs: 500,
  timeoutMs: 1_000,
  minIntervalMs: 1_000,
  logIntervalMs: 10_000,
  keep: 10,
} satisfies Required<LockEvidenceOptions>);

/** Validates `lockEvidence`; throws TypeError/RangeError naming the value. */
export function resolveLockEvidenceOptions(
  input: LockEvidenceOptions | false | undefined,
): Required<LockEvidenceOptions> | false {
  return optionalGroup<Required<LockEvidenceOptions>>('lockEvidence', input, LOCK_EVIDENCE_DEFAULTS, {
    waitThresholdMs: 10,
    timeoutMs: 10,
    minIntervalMs: 0,
    logIntervalMs: 0,
    keep: 1,
  });
}

/** One session holding the lock another one waits for. */
export interface LockBlocker {
  readonly pid: number;
  readonly applicationName: string;
  /** The blocker's route when its application_name is a hangproof request's (`<prefix> <route> <id>`). */
  readonly route: string | undefined;
  readonly requestId: string | undefined;
  /** The step the blocking request is in, when that request runs in this process. */
  readonly step: string | undefined;
  /** `active`, `idle in transaction` (a session that opened a transaction and went quiet)... */
  readonly state: string | null;
  /** Its current or last statement, literals removed (see `fingerprint`), truncated. */
  readonly query: string | null;
  /** How long its transaction has been open, in ms. */
  readonly xactAgeMs: number | null;
  /** What the blocker itself waits on (`Lock`, `Client`...), if anything. */
  readonly waitEventType: string | null;
}

/** What one waiting backend waited for, as Postgres saw it. */
export interface LockWait {
  /** ISO time of the capture. */
  readonly at: string;
  readonly pid: number;
  /** The locked relation (`public.bots`), or null when the lock is not on one (an advisory lock). */
  readonly relation: string | null;
  /** `relation`, `tuple`, `transactionid` (a row lock: waiting for the row's writer to finish)... */
  readonly lockType: string | null;
  /** The mode the waiter asked for, e.g. `AccessShareLock`. */
  readonly mode: string | null;
  /** How long the waiter's statement had been running when captured, in ms (its wait is at most this). */
  readonly runningMs: number | null;
  readonly route: string | undefined;
  readonly requestId: string | undefined;
  readonly step: string | undefined;
  readonly blockers: readonly LockBlocker[];
}

/** Counters and recent captures, in `stats().lockWaits`. */
export interface LockWaitStats {
  /** Waits captured (backends seen waiting on a lock). */
  readonly captured: number;
  /** Statements that failed with lock_timeout (55P03). */
  readonly lockTimeouts: number;
  /** Captures that failed or ran out of time (the evidence query is bounded). */
  readonly failed: number;
  /** Captures not run because one was in flight or one ran less than `minIntervalMs` ago. */
  readonly skipped: number;
  /** Connections opened for captures: one serves every capture of an incident (see SIDE_IDLE_MS). */
  readonly connectionsOpened: number;
  readonly recent: readonly LockWait[];
}

export interface LockEvidenceInit extends SideConnectionTarget {
  readonly pool: string;
  /** The pool's application_name prefix: blockers named `<prefix> <route> <id>` are its requests. */
  readonly applicationName: string;
  readonly lockTimeoutMs: number;
  readonly logger: PgLogger;
  /** Who holds each checked-out connection now (route, step, pid, held for). */
  readonly holders: () => readonly HolderView[];
  readonly options: Required<LockEvidenceOptions>;
}

/** A backend's latest capture: when it was taken, and which of its statements it saw waiting. */
export interface KnownWait {
  readonly wait: LockWait;
  /** performance.now() of the capture. */
  readonly atMs: number;
  /** The waiting statement's query_start as Postgres printed it. */
  readonly statementStart: string | null;
}

/** Stable `event` of the log line; the report and dashboards match on it. */
export const LOCK_WAIT_EVENT = LOG_EVENTS.pgLockWait;

/** Longest blocker statement kept, in characters. */
const MAX_QUERY_CHARS = 200;
/** Blockers kept per wait. */
const MAX_BLOCKERS = 5;
/** Waits kept per capture. */
const MAX_WAITS = 50;

/**
 * One query, run on its own connection: for each given backend that waits on a lock, the locked
 * relation (the ungranted lock's, or for a row lock the tuple lock's) and the sessions that block
 * it (`pg_blocking_pids`), with their state, statement and transaction age. Reading pg_locks and
 * pg_stat_activity takes no lock, and `::regclass` only reads the catalogue.
 */
const EVIDENCE_SQL = `
SELECT w.pid, w.query_start::text AS query_start,
  (extract(epoch FROM now() - w.query_start) * 1000)::bigint AS running_ms,
  l.locktype, l.mode,
  (SELECT r.relation::regclass::text FROM pg_locks r
    WHERE r.pid = w.pid AND r.relation IS NOT NULL AND r.database = d.oid
      AND (NOT r.granted OR r.locktype = 'tuple')
    ORDER BY r.granted LIMIT 1) AS relation,
  COALESCE((SELECT json_agg(json_build_object(
      'pid', b.pid, 'application_name', b.application_name, 'state', b.state,
      'query', left(b.query, 2000), 'xact_age_ms', (extract(epoch FROM now() - b.xact_start) * 1000)::bigint,
      'wait_event_type', b.wait_event_type) ORDER BY b.xact_start)
    FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(w.pid))), '[]'::json) AS blockers
FROM pg_stat_activity w
JOIN pg_database d ON d.datname = current_database()
LEFT JOIN LATERAL (SELECT locktype, mode FROM pg_locks x WHERE x.pid = w.pid AND NOT x.granted LIMIT 1) l ON true
WHERE w.wait_event_type = 'Lock' AND (w.pid = ANY($1::int[]) OR ($2::text <> '' AND w.application_name LIKE $2::text || ' %'))
LIMIT ${MAX_WAITS}`;

interface EvidenceRow {
  pid: number;
  /** When the waiting statement began, as Postgres prints it: with the pid, names the statement. */
  query_start: string | null;
  running_ms: string | null;
  locktype: string | null;
  mode: string | null;
  relation: string | null;
  blockers: {
    pid: number;
    application_name: string | null;
    state: string | null;
    query: string | null;
    xact_age_ms: number | null;
    wait_event_type: string | null;
  }[];
}

/**
 * Lock evidence from Postgres itself, captured off the request path:
 * - a sweep (one unref'd timer per pool) notices connections checked out longer than
 *   `waitThresholdMs` and asks Postgres, on a connection of its own (kept open while an incident
 *   lasts, closed SIDE_IDLE_MS after it), whether their backends wait on a lock, on what
 *   relation, and behind whom;
 * - a statement that failed with lock_timeout is logged with what was captured for its backend
 *   (or, when its wait was too short to be seen, with what other backends of this service wait on
 *   now).
 * A healthy pool pays one timer tick over its holder list; queries run only while something is
 * already slow, at most one at a time and one per `minIntervalMs`, each bounded by `timeoutMs`.
 */
export class LockEvidence {
  readonly #i: LockEvidenceInit;
  readonly #o: Required<LockEvidenceOptions>;
  readonly #thresholdMs: number;
  readonly #recent: LockWait[] = [];
  /** Latest capture per backend pid, to name the lock when that backend's statement times out. */
  readonly #byPid = new Map<number, KnownWait>();
  readonly #loggedAt = new Map<string, number>();
  readonly #side: SideConnection;
  /**
   * How long a capture still describes a lock_timeout that follows it: the statement's whole
   * wait, plus the interval that may keep a new capture from running on either side of it.
   */
  readonly #incidentMs: number;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<LockWait[]> | undefined;
  #lastStartMs = Number.NEGATIVE_INFINITY;
  #closed = false;
  #captured = 0;
  #lockTimeouts = 0;
  #failed = 0;
  #skipped = 0;

  constructor(init: LockEvidenceInit) {
    this.#i = init;
    this.#o = init.options;
    this.#side = new SideConnection(init, {
      purpose: 'lock-evidence',
      timeoutMs: this.#o.timeoutMs,
      lockTimeoutMs: this.#o.timeoutMs,
    });
    this.#incidentMs = init.lockTimeoutMs + 2 * this.#o.minIntervalMs;
    this.#thresholdMs = Math.max(10, Math.min(this.#o.waitThresholdMs, Math.floor(init.lockTimeoutMs / 2)));
    this.#timer = setInterval(() => this.#sweep(), Math.max(10, Math.min(250, Math.floor(this.#thresholdMs / 2))));
    this.#timer.unref();
  }

  stats(): LockWaitStats {
    return {
      captured: this.#captured,
      lockTimeouts: this.#lockTimeouts,
      failed: this.#failed,
      skipped: this.#skipped,
      connectionsOpened: this.#side.opened,
      recent: [...this.#recent],
    };
  }

  /**
   * A statement on backend `pid` failed with lock_timeout: logs what it waited for. Never throws
   * and never delays the caller: the capture, when one is needed, runs after the answer.
   */
  onLockTimeout(
    pid: number | undefined,
    failed: { route?: string | undefined; requestId?: string | undefined; sql?: string | undefined },
  ): void {
    this.#lockTimeouts++;
    if (this.#closed) return;
    const known = pid === undefined ? undefined : this.#byPid.get(pid);
    // A capture of this backend from the last few seconds is the wait that just timed out.
    if (known !== undefined && performance.now() - known.atMs < this.#incidentMs) {
      this.#log(known.wait, 'lock_timeout', failed.sql, true);
      return;
    }
    // Its wait has ended; what the service's other backends wait on now is the same incident, and
    // so is the service's last capture when a new one may not run yet (one per minIntervalMs).
    void this.capture([], true).then((waits) => {
      const same = waits[0] ?? this.#latestWithin(this.#incidentMs);
      if (same !== undefined)
        this.#log(
          { ...same, pid: pid ?? same.pid, route: failed.route, requestId: failed.requestId },
          'lock_timeout',
          failed.sql,
          true,
        );
      else this.#log(unknownWait(pid, failed), 'lock_timeout', failed.sql, true);
    });
  }

  /**
   * Asks Postgres what backends `pids` (and, with `wholeService`, any backend of this service)
   * wait on. Resolves with the waits found, never rejects; skipped (empty) when a capture is in
   * flight or ran less than `minIntervalMs` ago.
   */
  capture(pids: readonly number[], wholeService = false): Promise<LockWait[]> {
    if (this.#closed) return Promise.resolve([]);
    if (this.#inFlight !== undefined) return this.#inFlight;
    const now = performance.now();
    if (now - this.#lastStartMs < this.#o.minIntervalMs) {
      this.#skipped++;
      return Promise.resolve([]);
    }
    this.#lastStartMs = now;
    const run = this.#query(pids, wholeService).finally(() => {
      this.#inFlight = undefined;
    });
    this.#inFlight = run;
    return run;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#side.close();
  }

  #sweep(): void {
    if (this.#inFlight !== undefined || performance.now() - this.#lastStartMs < this.#o.minIntervalMs) return;
    const pids: number[] = [];
    for (const h of this.#i.holders()) {
      if (h.heldMs < this.#thresholdMs) break; // list() is sorted longest first
      if (h.pid !== undefined && !this.#byPidIsFresh(h.pid)) pids.push(h.pid);
    }
    if (pids.length > 0) {
      void this.capture(pids).then((waits) => {
        for (const w of waits) this.#log(w, 'waiting', undefined, false);
      });
    }
  }

  /** The newest wait captured less than `ms` ago, of any backend. */
  #latestWithin(ms: number): LockWait | undefined {
    const now = performance.now();
    let latest: { wait: LockWait; atMs: number } | undefined;
    for (const known of this.#byPid.values()) if (latest === undefined || known.atMs > latest.atMs) latest = known;
    return latest !== undefined && now - latest.atMs < ms ? latest.wait : undefined;
  }

  /** A backend captured less than `minIntervalMs` ago is not asked about again. */
  #byPidIsFresh(pid: number): boolean {
    const known = this.#byPid.get(pid);
    return known !== undefined && performance.now() - known.atMs < this.#o.minIntervalMs;
  }

  async #query(pids: readonly number[], wholeService: boolean): Promise<LockWait[]> {
    try {
      const prefix = wholeService ? this.#i.applicationName : '';
      const rows = await this.#side.run(
        async (client) => (await client.query<EvidenceRow>(EVIDENCE_SQL, [pids, prefix])).rows,
      );
      const holders = this.#i.holders();
      const at = new Date().toISOString();
      const nowMs = performance.now();
      const waits: LockWait[] = [];
      for (const r of rows) {
        if (isEndOfKnownWait(r.blockers.length, r.query_start, this.#byPid.get(r.pid))) continue;
        const w = this.#toWait(r, at, holders);
        waits.push(w);
        this.#captured++;
        this.#byPid.set(w.pid, { wait: w, atMs: nowMs, statementStart: r.query_start });
        this.#recent.unshift(w);
      }
      this.#recent.splice(this.#o.keep);
      // Forget old backends: pids are reused, and a long incident must not grow the map.
      for (const [pid, v] of this.#byPid) if (nowMs - v.atMs > 60_000) this.#byPid.delete(pid);
      return waits;
    } catch (err) {
      this.#failed++;
      this.#i.logger.debug({ pool: this.#i.pool, err: errorSummary(err) }, 'capturing lock evidence failed');
      return [];
    }
  }

  #toWait(r: EvidenceRow, at: string, holders: readonly HolderView[]): LockWait {
    const waiter = holders.find((h) => h.pid === r.pid);
    return {
      at,
      pid: r.pid,
      relation: r.relation,
      lockType: r.locktype,
      mode: r.mode,
      runningMs: r.running_ms === null ? null : Number(r.running_ms),
      route: waiter?.route,
      requestId: waiter?.requestId,
      step: waiter?.step,
      blockers: r.blockers.slice(0, MAX_BLOCKERS).map((b) => {
        const app = b.application_name ?? '';
        const own = parseApplicationName(app, this.#i.applicationName);
        // A blocker on one of this pool's own connections is known exactly, by its backend pid
        // (application_name is cut at 63 bytes and may have lost the end of the request id).
        const local = holders.find((h) => h.pid === b.pid);
        return {
          pid: b.pid,
          applicationName: app,
          route: local?.route ?? own?.route,
          requestId: local?.requestId ?? own?.requestId,
          step: local?.step,
          state: b.state,
          // Literals go: a hand-run statement may carry values nobody should find in a log.
          query: b.query === null ? null : fingerprint(b.query).slice(0, MAX_QUERY_CHARS),
          xactAgeMs: b.xact_age_ms === null ? null : Number(b.xact_age_ms),
          waitEventType: b.wait_event_type,
        };
      }),
    };
  }

  #log(w: LockWait, outcome: 'waiting' | 'lock_timeout', sql: string | undefined, always: boolean): void {
    const key = `${w.relation}|${w.blockers.map((b) => b.pid).join(',')}`;
    const now = performance.now();
    const last = this.#loggedAt.get(key);
    if (!always && last !== undefined && now - last < this.#o.logIntervalMs) return;
    if (this.#loggedAt.size >= 1_000) this.#loggedAt.clear();
    this.#loggedAt.set(key, now);
    logEvidence(
      this.#i.logger,
      'warn',
      {
        event: LOCK_WAIT_EVENT,
        pool: this.#i.pool,
        outcome,
        pid: w.pid,
        route: w.route,
        requestId: w.requestId,
        step: w.step,
        sql,
        relation: w.relation,
        lockType: w.lockType,
        mode: w.mode,
        runningMs: w.runningMs,
        blockers: w.blockers,
      },
      lockWaitMessage(w),
    );
  }
}

/**
 * The line's message. A wait no capture saw (it ended first, or the capture could not reach the
 * server) says so: with no lock type known, "a non-relation lock" would name a cause nobody saw.
 */
export function lockWaitMessage(w: LockWait): string {
  if (w.lockType === null) return 'postgres lock wait, ended before a capture could see what it waited for';
  const first = w.blockers[0];
  const on = w.relation ?? `a lock of type ${w.lockType}`;
  return `postgres lock wait on ${on}${first === undefined ? '' : `, blocked by pid ${first.pid} (${first.route ?? (first.applicationName || 'no application_name')}, ${first.state ?? 'unknown state'})`}`;
}

/**
 * True when a capture that finds `blockerCount` blockers of the statement begun at
 * `statementStart` adds nothing to the `earlier` capture of its backend. Postgres names no blocker
 * of a wait that is ending as the capture runs (granted, or ended by lock_timeout at that moment);
 * an earlier capture of the same statement (same backend, same query_start) that saw it blocked
 * says who blocked it, and is kept.
 */
export function isEndOfKnownWait(
  blockerCount: number,
  statementStart: string | null,
  earlier: KnownWait | undefined,
): boolean {
  return (
    blockerCount === 0 &&
    earlier !== undefined &&
    statementStart !== null &&
    earlier.statementStart === statementStart &&
    earlier.wait.blockers.length > 0
  );
}

/** `<prefix> <route> <requestId>` back into its parts; undefined for any other name. */
export function parseApplicationName(
  name: string,
  prefix: string,
): { route: string | undefined; requestId: string | undefined } | undefined {
  if (prefix === '' || !name.startsWith(`${prefix} `)) return undefined;
  const rest = name.slice(prefix.length + 1);
  const space = rest.lastIndexOf(' ');
  if (space < 0) return { route: undefined, requestId: rest || undefined };
  return { route: rest.slice(0, space), requestId: rest.slice(space + 1) };
}

function unknownWait(
  pid: number | undefined,
  failed: { route?: string | undefined; requestId?: string | undefined },
): LockWait {
  return {
    at: new Date().toISOString(),
    pid: pid ?? 0,
    relation: null,
    lockType: null,
    mode: null,
    runningMs: null,
    route: failed.route,
    requestId: failed.requestId,
    step: undefined,
    blockers: [],
  };
}
