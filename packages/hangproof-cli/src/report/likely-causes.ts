/**
 * Ranks likely causes of an incident from the evidence in the logs. Each cause has a stable
 * `kind` (scripts and tests match on it, never on the title), a subject (the fingerprint, table,
 * route, dependency or stack frame) and the request ids and log lines that support it.
 *
 * Ranking: every cause scores the requests it explains, weighted by how specific its evidence is.
 * A lock wait, a loop stall or a failing dependency is a root cause, so it counts three or two
 * times; a slow query twice, but not for requests already explained by a lock wait or a stall (a
 * query waiting on a lock is slow too); pool exhaustion once, since it is usually the symptom of
 * slow holders; N+1 half. Log lines without a request add a little, so a stall that hit no request
 * still shows.
 */
import type { LogEvent, RequestEvent } from './log-events.js';
import { shortSql, tableOf } from './span-label.js';
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
  'pg.unavailable': 2,
  'pg.slow_query': 2,
  'pg.pool_exhausted': 1,
  'pg.connection_leak': 1,
  'pg.n_plus_one': 0.5,
};
const LINE_WEIGHT = 0.25;
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

/** A dependency's bucket also counts its calls, failures and open/down transitions. */
class DependencyBucket extends Bucket {
  calls = 0;
  failed = 0;
  down = 0;
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

export function likelyCauses(requests: readonly RequestEvent[], events: readonly LogEvent[]): LikelyCause[] {
  const locks = new Map<string, Bucket>();
  const stalls = new Map<string, Bucket>();
  const deps = new Map<string, DependencyBucket>();
  const slow = new Map<string, Bucket>();
  const pools = new Map<string, Bucket>();
  const leaks = new Map<string, Bucket>();
  const nPlusOne = new Map<string, Bucket>();
  const unavailable = new Map<string, Bucket>();

  for (const e of events) {
    switch (e.type) {
      case 'statement-failed': {
        const isLock = e.phase === 'lock' || e.sqlState === '55P03';
        if (isLock) {
          const b = bucketOf(locks, tableOf(e.sql) ?? '(unknown table)', bucket);
          b.lines++;
          b.add(e.requestId);
          if (e.route) b.note(e.route);
        } else if (e.phase === 'query' || e.sqlState === '57014') {
          const b = bucketOf(slow, e.sql ?? '(unknown)', bucket);
          b.lines++;
          b.add(e.requestId);
        }
        break;
      }
      case 'slow-query': {
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
        if (e.to === 'open' || e.to === 'down') b.down++;
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
        const b = bucketOf(unavailable, e.host ?? 'postgres', bucket);
        b.lines++;
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

  const explained = new Set<string>();
  for (const b of [...locks.values(), ...stalls.values()]) for (const id of b.ids) explained.add(id);

  const out: LikelyCause[] = [];
  const push = (
    kind: CauseKind,
    subject: string,
    title: string,
    b: Bucket,
    ids: Set<string>,
    detail: string,
    weight = 1,
  ): void => {
    const raw = ids.size * WEIGHT[kind] + b.lines * LINE_WEIGHT + b.ms / 1000;
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

  for (const [table, b] of locks)
    push(
      'pg.lock_wait',
      table,
      `lock wait on ${table}`,
      b,
      b.ids,
      `${b.lines} statement(s) gave up waiting for a lock on ${table}${b.notes.size > 0 ? `; routes: ${notes(b)}` : ''}`,
    );
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
    );
  }
  for (const [host, b] of unavailable)
    push(
      'pg.unavailable',
      host,
      `postgres at ${host} unreachable`,
      b,
      b.ids,
      `${b.lines} refused, dropped or timed-out connection(s)`,
    );
  for (const [sql, b] of slow) {
    const ids = new Set([...b.ids].filter((id) => !explained.has(id)));
    if (ids.size === 0 && b.ids.size > 0) continue;
    push(
      'pg.slow_query',
      sql,
      `postgres query ${shortSql(sql)} slow`,
      b,
      ids,
      `${b.lines} slow or timed-out statement line(s), ${Math.round(b.ms)} ms logged`,
    );
  }
  for (const [route, b] of pools)
    push(
      'pg.pool_exhausted',
      route,
      `pool exhausted by ${route}`,
      b,
      b.ids,
      `${b.lines} acquire timeout(s) on pool ${notes(b)}; most connections held by ${route}`,
    );
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
