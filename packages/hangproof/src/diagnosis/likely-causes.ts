/**
 * Ranks likely causes of an incident from the evidence in the logs. Each cause has a stable
 * `kind` (scripts and tests match on it, never on the title), a subject (the fingerprint, table,
 * route, dependency or stack frame) and the request ids and log lines that support it.
 *
 * Ranking: every cause scores the requests it explains, weighted by how specific its evidence is.
 * A lock wait, a loop stall or an unreachable Postgres is a root cause, so it counts three times;
 * a failing dependency twice; a slow query twice, but not for requests already explained by a
 * lock wait, a stall or an unreachable Postgres (a query waiting on a lock, or on a server that
 * never answers, is slow too); pool exhaustion once, since it is usually the symptom of slow
 * holders, and not for explained requests either; N+1 half. Log lines without a request add a
 * little, so a stall that hit no request still shows.
 *
 * A dependency's own health turning down (or its breaker opening) counts as much as one request
 * it failed: behind a snapshot or a fallback a provider can be down while every page still
 * answers, and that outage, with the background loads that failed (`snapshot load failed`), is
 * still the incident. A statement whose connection was refused or dropped (its code is
 * DEPENDENCY_UNAVAILABLE) is no slow-query evidence: it waited on an unreachable server, and the
 * requests it failed near other `pg.unavailable` lines go with the outage. An idle connection the
 * server ended (a restart's 57P01) is a `pg.unavailable` line too, so a restart reads as Postgres
 * going away, not as the queries that were in flight when it did.
 *
 * With a baseline log, a slow query that was about as frequent there (slow lines per request, at
 * most twice the baseline's share) is the service's normal, not the incident: it is left out. A
 * busy machine or a cold cache makes a few statements slow in any window, and one of them must
 * not outrank an incident whose evidence is a handful of lines (a leak, a provider behind
 * snapshots).
 *
 * Subjects name what to fix: a lock wait names the relation Postgres reported locked (not the
 * first table of the waiting statement) and the session holding it; an unreachable Postgres names
 * the host:port the service connects to; a slow query whose plan was captured names the plan's
 * dominant node and table (`Seq Scan on bots`).
 */
import { CapturedPlans } from './captured-plans.js';
import type { LockBlockerRecord, LogEvent, RequestEvent } from './log-events.js';
import { blockerLabel, blockerNote, shortSql, tableOf } from './span-label.js';
import { blockingFrame } from './stall-frames.js';

export const CAUSE_KINDS = [
  'pg.lock_wait',
  'event_loop.blocked',
  'dependency.down',
  'dependency.slow',
  'pg.unavailable',
  'pg.slow_query',
  'pg.pool_exhausted',
  'pg.connection_leak',
  'pg.n_plus_one',
] as const;
export type CauseKind = (typeof CAUSE_KINDS)[number];

export interface LikelyCause {
  readonly kind: CauseKind;
  /** What the cause is about: a fingerprint, table, route, dependency or stack frame. */
  readonly subject: string;
  readonly title: string;
  readonly score: number;
  /** Requests this cause explains. */
  readonly requests: number;
  /** Log lines (other than request lines) that support it. */
  readonly lines: number;
  /** Up to 10 supporting request ids. */
  readonly requestIds: readonly string[];
  readonly detail: string;
}

const WEIGHT: Readonly<Record<CauseKind, number>> = {
  'pg.lock_wait': 3,
  'event_loop.blocked': 3,
  'dependency.down': 2,
  'dependency.slow': 2,
  'pg.unavailable': 3,
  'pg.slow_query': 2,
  'pg.pool_exhausted': 1,
  'pg.connection_leak': 1,
  'pg.n_plus_one': 0.5,
};
const LINE_WEIGHT = 0.25;
/**
 * Requests whose db span timed out this long (ms) before the first or after the last of several
 * `pg.unavailable` lines are explained by the outage too (a request's deadline is at most this).
 */
const OUTAGE_MARGIN_MS = 10_000;
/** Errors of a db span that waited on an unreachable server (timed out, or refused/dropped). */
const OUTAGE_ERRORS: ReadonlySet<string> = new Set(['DEPENDENCY_TIMEOUT', 'DEPENDENCY_UNAVAILABLE']);
/** Stalls whose blocking stack was not captured (the watchdog gave up, or capture was off). */
const NO_STACK = '(no stack captured)';

class Bucket {
  readonly ids = new Set<string>();
  lines = 0;
  ms = 0;
  readonly notes = new Map<string, number>();
  add(id: string | undefined): void {
    if (id !== undefined && id !== '') this.ids.add(id);
  }
  note(text: string): void {
    this.notes.set(text, (this.notes.get(text) ?? 0) + 1);
  }
}

/** A lock's bucket also keeps the sessions that held it, by pid, with their latest state. */
class LockBucket extends Bucket {
  readonly blockers = new Map<number, { blocker: LockBlockerRecord; seen: number }>();
  addBlocker(b: LockBlockerRecord): void {
    const known = this.blockers.get(b.pid);
    // The latest sighting carries the longest transaction age.
    if (known === undefined || (b.xactAgeMs ?? 0) >= (known.blocker.xactAgeMs ?? 0))
      this.blockers.set(b.pid, { blocker: b, seen: (known?.seen ?? 0) + 1 });
    else known.seen++;
  }
  top(): LockBlockerRecord | undefined {
    return [...this.blockers.values()].sort((a, b) => b.seen - a.seen)[0]?.blocker;
  }
}

/** A dependency's bucket also counts its calls, failures and open/down transitions. */
class DependencyBucket extends Bucket {
  calls = 0;
  failed = 0;
  down = 0;
  /** Health or breaker transitions to down/open: the service's own verdict on the dependency. */
  transitions = 0;
}

function bucketOf<B extends Bucket>(map: Map<string, B>, key: string, make: () => B): B {
  let b = map.get(key);
  if (b === undefined) {
    b = make();
    map.set(key, b);
  }
  return b;
}
const bucket = (): Bucket => new Bucket();
const depBucket = (): DependencyBucket => new DependencyBucket();
const lockBucket = (): LockBucket => new LockBucket();

/** A slow query's share of requests must exceed the baseline's by this factor to be a cause. */
const BASELINE_FACTOR = 2;

/** Slow-query lines per request of each fingerprint in the baseline log. */
function baselineSlowShares(baseline: readonly LogEvent[]): Map<string, number> {
  const requests = Math.max(1, baseline.filter((e) => e.type === 'request').length);
  const counts = new Map<string, number>();
  for (const e of baseline) if (e.type === 'slow-query') counts.set(e.sql, (counts.get(e.sql) ?? 0) + 1);
  return new Map([...counts].map(([sql, n]) => [sql, n / requests]));
}

export function likelyCauses(
  requests: readonly RequestEvent[],
  events: readonly LogEvent[],
  baseline?: readonly LogEvent[],
): LikelyCause[] {
  const usual = baseline === undefined ? new Map<string, number>() : baselineSlowShares(baseline);
  const locks = new Map<string, LockBucket>();
  const stalls = new Map<string, Bucket>();
  const deps = new Map<string, DependencyBucket>();
  const slow = new Map<string, Bucket>();
  const pools = new Map<string, Bucket>();
  const leaks = new Map<string, Bucket>();
  const nPlusOne = new Map<string, Bucket>();
  const unavailable = new Map<string, Bucket>();
  const unavailableReasons = new Map<string, Set<string>>();
  const plans = new CapturedPlans();

  // First pass: the relation Postgres reported for each request's lock wait, and for each waiting
  // statement. A failed statement names only its own tables, and the first of a join is not
  // necessarily the locked one; a wait whose capture came too late (no relation) is put with the
  // relation the same statement was seen waiting on, and only failing that with its first table.
  const lockedByRequest = new Map<string, string>();
  const lockedBySql = new Map<string, Map<string, number>>();
  const waited = new Set<string>();
  for (const e of events) {
    if (e.type !== 'lock-wait') continue;
    if (e.requestId !== undefined) waited.add(e.requestId);
    if (e.relation === null) continue;
    if (e.requestId !== undefined) lockedByRequest.set(e.requestId, e.relation);
    if (e.sql !== undefined) {
      const counts = lockedBySql.get(e.sql) ?? new Map<string, number>();
      counts.set(e.relation, (counts.get(e.relation) ?? 0) + 1);
      lockedBySql.set(e.sql, counts);
    }
  }
  const lockedRelation = (requestId: string | undefined, sql: string | undefined): string | undefined => {
    const byRequest = requestId === undefined ? undefined : lockedByRequest.get(requestId);
    if (byRequest !== undefined) return byRequest;
    const bySql = sql === undefined ? undefined : lockedBySql.get(sql);
    return bySql === undefined ? undefined : [...bySql.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  };

  for (const e of events) {
    switch (e.type) {
      case 'lock-wait': {
        const relation = e.relation ?? lockedRelation(e.requestId, e.sql) ?? tableOf(e.sql) ?? '(a non-relation lock)';
        const b = bucketOf(locks, relation, lockBucket);
        b.lines++;
        b.add(e.requestId);
        if (e.route) b.note(e.route);
        const first = e.blockers[0];
        if (first !== undefined) b.addBlocker(first);
        break;
      }
      case 'slow-plan':
        plans.add(e.fingerprint, e);
        break;
      case 'statement-failed': {
        const isLock = e.phase === 'lock' || e.sqlState === '55P03';
        if (isLock) {
          const relation = lockedRelation(e.requestId, e.sql) ?? tableOf(e.sql) ?? '(unknown table)';
          const b = bucketOf(locks, relation, lockBucket);
          b.add(e.requestId);
          // Its lock-wait line already counted the line and the route.
          if (e.requestId === undefined || !waited.has(e.requestId)) {
            b.lines++;
            if (e.route) b.note(e.route);
          }
        } else if (e.code === 'DEPENDENCY_UNAVAILABLE') {
          // Refused or dropped: its pg.unavailable line and its request tell the rest.
        } else if (e.phase === 'query' || e.sqlState === '57014') {
          const b = bucketOf(slow, e.sql ?? '(unknown)', bucket);
          b.lines++;
          b.add(e.requestId);
        }
        break;
      }
      case 'slow-query': {
        // It ended when its connection was refused or dropped, not because it ran slowly.
        if (e.errorCode === 'DEPENDENCY_UNAVAILABLE') break;
        const b = bucketOf(slow, e.sql, bucket);
        b.lines++;
        b.ms += e.durationMs;
        b.add(e.requestId);
        break;
      }
      case 'stall': {
        const b = bucketOf(stalls, blockingFrame(e.stack) ?? NO_STACK, bucket);
        b.lines++;
        b.ms += e.stallMs;
        for (const r of e.inFlight) {
          b.add(r.requestId);
          if (r.stepInFlight) b.note(`${r.name} in step ${r.stepInFlight}`);
        }
        break;
      }
      case 'breaker':
      case 'health': {
        const b = bucketOf(deps, e.dependency, depBucket);
        b.lines++;
        if (e.to === 'open' || e.to === 'down') {
          b.down++;
          b.transitions++;
        }
        break;
      }
      case 'snapshot-failed': {
        const b = bucketOf(deps, e.dependency, depBucket);
        b.lines++;
        b.calls++;
        b.failed++;
        if (e.errorCode !== undefined) b.note(e.errorCode);
        break;
      }
      case 'acquire-timeout': {
        // The pool is named after whoever holds most of its connections.
        const holders = new Map<string, number>();
        for (const h of e.holders) {
          const k = h.route ?? '(outside a request)';
          holders.set(k, (holders.get(k) ?? 0) + 1);
        }
        const top = [...holders.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? e.route ?? '(unknown route)';
        const b = bucketOf(pools, top, bucket);
        b.lines++;
        b.add(e.requestId);
        b.note(e.pool);
        break;
      }
      case 'leak': {
        const b = bucketOf(leaks, e.holder.route ?? '(outside a request)', bucket);
        b.lines++;
        b.add(e.holder.requestId);
        break;
      }
      case 'n-plus-one': {
        const b = bucketOf(nPlusOne, `${e.route ?? '?'}\u0000${e.sql}`, bucket);
        b.lines++;
        b.add(e.requestId);
        break;
      }
      case 'pg-unavailable': {
        const host = e.host ?? 'postgres';
        const b = bucketOf(unavailable, host, bucket);
        b.lines++;
        b.add(e.requestId);
        let reasons = unavailableReasons.get(host);
        if (reasons === undefined) {
          reasons = new Set();
          unavailableReasons.set(host, reasons);
        }
        reasons.add(e.reason ?? e.phase);
        break;
      }
      default:
        break;
    }
  }

  // Requests: failed or slow dependency calls, and timed-out db spans not seen in a log line.
  for (const r of requests) {
    const slowCallMs = (r.deadlineMs ?? 10_000) / 2;
    for (const s of r.spans) {
      if (s.kind === 'external') {
        const b = bucketOf(deps, s.name, depBucket);
        b.calls++;
        if (s.error !== undefined) {
          b.failed++;
          if (s.error === 'DEPENDENCY_UNAVAILABLE') b.down++;
          b.add(r.requestId);
          b.note(s.error);
        } else if (s.durMs >= slowCallMs) {
          b.add(r.requestId);
          b.ms += s.durMs;
        }
      } else if (s.fingerprint !== undefined && (s.error === 'DEPENDENCY_TIMEOUT' || s.error === 'REQUEST_TIMEOUT')) {
        bucketOf(slow, s.fingerprint, bucket).add(r.requestId);
      }
    }
  }

  // Several unreachable lines: requests whose db span timed out or was refused meanwhile waited
  // on the same outage (a pooled connection to a silent server, an acquire behind those), not on
  // slow SQL.
  const outage = events.filter((e) => e.type === 'pg-unavailable');
  const mainHost = [...unavailable.entries()].sort((a, b) => b[1].lines - a[1].lines)[0]?.[1];
  if (outage.length >= 2 && mainHost !== undefined) {
    const from = Math.min(...outage.map((e) => e.at)) - OUTAGE_MARGIN_MS;
    const to = Math.max(...outage.map((e) => e.at)) + OUTAGE_MARGIN_MS;
    for (const r of requests)
      if (r.at >= from && r.at <= to && r.spans.some((s) => s.kind === 'db' && OUTAGE_ERRORS.has(s.error ?? '')))
        mainHost.add(r.requestId);
  }

  const explained = new Set<string>();
  for (const b of [...locks.values(), ...stalls.values(), ...unavailable.values()])
    for (const id of b.ids) explained.add(id);
  const unexplained = (b: Bucket): Set<string> => new Set([...b.ids].filter((id) => !explained.has(id)));

  const out: LikelyCause[] = [];
  const push = (
    kind: CauseKind,
    subject: string,
    title: string,
    b: Bucket,
    ids: Set<string>,
    detail: string,
    weight = 1,
    extraRequests = 0,
  ): void => {
    const raw = (ids.size + extraRequests) * WEIGHT[kind] + b.lines * LINE_WEIGHT + b.ms / 1000;
    const score = Math.round(raw * weight * 100) / 100;
    if (score <= 0) return;
    out.push({
      kind,
      subject,
      title,
      score,
      requests: ids.size,
      lines: b.lines,
      requestIds: [...ids].slice(0, 10),
      detail,
    });
  };
  const notes = (b: Bucket): string =>
    [...b.notes.entries()]
      .sort((a, b2) => b2[1] - a[1])
      .slice(0, 3)
      .map(([t, c]) => `${t} (x${c})`)
      .join(', ');

  for (const [table, b] of locks) {
    const top = b.top();
    const others = b.blockers.size - 1;
    // The blocker's label carries its state and transaction age; the note adds its statement.
    push(
      'pg.lock_wait',
      table,
      `lock wait on ${table}${top === undefined ? '' : `, held by ${blockerLabel(top)}`}`,
      b,
      b.ids,
      `${b.lines} lock wait line(s) on ${table}, ${b.ids.size} request(s)${
        top === undefined
          ? ''
          : `; held by ${blockerNote(top)}${top.xactAgeMs === undefined ? ', transaction age unknown' : ''}${others > 0 ? ` (${others} other blocker(s))` : ''}`
      }${b.notes.size > 0 ? `; routes: ${notes(b)}` : ''}`,
    );
  }
  // Stalls without a stack are weaker evidence: under CPU pressure the watchdog may miss the
  // stack of the very blocker it caught other times, so they rank below the stalls it named.
  const namedStalls = [...stalls.keys()].some((frame) => frame !== NO_STACK);
  for (const [frame, b] of stalls) {
    const unnamed = frame === NO_STACK && namedStalls;
    push(
      'event_loop.blocked',
      frame,
      `event loop blocked by ${frame}`,
      b,
      b.ids,
      `${b.lines} stall(s), ${Math.round(b.ms)} ms in total${b.notes.size > 0 ? `; in flight: ${notes(b)}` : ''}${unnamed ? '; possibly the same blocker as a stall named above, its stack not captured' : ''}`,
      unnamed ? 0.5 : 1,
    );
  }
  for (const [name, d] of deps) {
    const b = d;
    const failedShare = d.calls > 0 ? d.failed / d.calls : 0;
    const down = d.down > 0 || failedShare >= 0.5;
    if (b.ids.size === 0 && !down) continue;
    push(
      down ? 'dependency.down' : 'dependency.slow',
      name,
      `provider ${name} ${down ? 'down' : 'slow'}`,
      b,
      b.ids,
      `${d.failed} of ${d.calls} call(s) failed${b.notes.size > 0 ? ` (${notes(b)})` : ''}; ${d.down} open/down transition(s) or fast refusals`,
      1,
      d.transitions,
    );
  }
  for (const [host, b] of unavailable) {
    const reasons = [...(unavailableReasons.get(host) ?? [])].sort().join(', ');
    push(
      'pg.unavailable',
      host,
      `postgres at ${host} unreachable${reasons === '' ? '' : ` (${reasons})`}`,
      b,
      b.ids,
      `${b.lines} refused, dropped, timed-out or unanswered connection line(s); ${b.ids.size} request(s) waited on it`,
    );
  }
  for (const [sql, b] of slow) {
    const ids = unexplained(b);
    if (ids.size === 0 && b.ids.size > 0) continue;
    const usualShare = usual.get(sql);
    if (usualShare !== undefined && b.lines / Math.max(1, requests.length) <= usualShare * BASELINE_FACTOR) continue;
    const plan = plans.explaining(sql);
    const node =
      plan === undefined ? '' : `${plan.nodeType}${plan.relation === undefined ? '' : ` on ${plan.relation}`}`;
    // A plan names the query only when its dominant node is what to fix (a filtered scan an index
    // would serve); otherwise the time went elsewhere (a function, the server) and the plan is
    // only mentioned.
    const byPlan = plan?.suggestion !== undefined;
    push(
      'pg.slow_query',
      byPlan ? node : sql,
      byPlan ? `postgres query slow: ${node} dominates its plan` : `postgres query ${shortSql(sql)} slow`,
      b,
      ids,
      `${byPlan ? `query ${shortSql(sql)}; ` : ''}${b.lines} slow or timed-out statement line(s), ${Math.round(b.ms)} ms logged${
        plan === undefined ? '' : byPlan ? `; consider ${plan.suggestion}` : `; its plan is dominated by ${node}`
      }`,
    );
  }
  for (const [route, b] of pools) {
    const ids = unexplained(b);
    if (ids.size === 0 && b.ids.size > 0) continue;
    push(
      'pg.pool_exhausted',
      route,
      `pool exhausted by ${route}`,
      b,
      ids,
      `${b.lines} acquire timeout(s) on pool ${notes(b)}; most connections held by ${route}`,
    );
  }
  for (const [route, b] of leaks)
    push(
      'pg.connection_leak',
      route,
      `connection held past the leak threshold by ${route}`,
      b,
      b.ids,
      `${b.lines} leak warning(s)`,
    );
  for (const [k, b] of nPlusOne) {
    const [route, sql = ''] = k.split('\u0000');
    push(
      'pg.n_plus_one',
      `${route} ${sql}`,
      `N+1 queries in ${route}: ${shortSql(sql)}`,
      b,
      b.ids,
      `${b.lines} request(s) ran it sequentially past the threshold`,
    );
  }
  return out.sort((a, b) => b.score - a.score || a.kind.localeCompare(b.kind));
}
