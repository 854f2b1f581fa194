/**
 * The promises a chaos run checks, each turned into one verdict row: what was promised, what was
 * observed, the bound, pass/fail (or skip when the evidence was not available, e.g. no
 * --admin-token for the pool check).
 */
import { percentile } from '../load/load-summary.js';
import type { LoadSample } from '../load/open-loop.js';
import type { ProbeSample } from './health-probe.js';
import type { ChaosScenario } from './scenario.js';
import type { IdleInTransaction, PoolUse, SettleResult } from './service-state.js';

/** Stable ids of the promises (the JSON result and tests use them, never the wording). */
export type PromiseId = 'healthy-before' | 'deadline' | 'healthz' | 'pool' | 'idle-in-transaction' | 'recovery';

export interface PromiseVerdict {
  readonly id: PromiseId;
  readonly promise: string;
  readonly observed: string;
  readonly bound: string;
  readonly verdict: 'pass' | 'fail' | 'skip';
  /** The measured number behind `observed` (ms or share), null when skipped. */
  readonly value: number | null;
  readonly limit: number | null;
}

export interface Evidence {
  readonly scenario: ChaosScenario;
  /** Load samples; `atMs` is relative to the start of the load. */
  readonly samples: readonly LoadSample[];
  readonly injectedAtMs: number;
  readonly removedAtMs: number;
  readonly probes: readonly ProbeSample[];
  /** Why the pool check was skipped, or its outcome. */
  readonly pool: { readonly baseline: number; readonly result: SettleResult<PoolUse | undefined> } | string;
  readonly idle: SettleResult<IdleInTransaction> | string;
}

/** Width of the buckets in which the recovery is searched, in ms. */
const RECOVERY_BUCKET_MS = 250;

const ok = (s: LoadSample): boolean => s.status >= 200 && s.status < 400;
const r0 = (n: number): number => Math.round(n);
const pct = (share: number): string => `${(share * 100).toFixed(1)} %`;

export function evaluatePromises(e: Evidence): PromiseVerdict[] {
  const s = e.scenario;
  const p = s.promises;
  const out: PromiseVerdict[] = [];

  const before = e.samples.filter((x) => x.atMs < e.injectedAtMs);
  if (before.length === 0) {
    out.push(skip('healthy-before', 'the target succeeds before the fault', 'no request before the fault (warmup 0)'));
  } else {
    const rate = before.filter(ok).length / before.length;
    out.push({
      id: 'healthy-before',
      promise: 'the target succeeds before the fault',
      observed: `${pct(rate)} of ${before.length} succeeded`,
      bound: `>= ${pct(p.recoverySuccessRate)}`,
      verdict: rate >= p.recoverySuccessRate ? 'pass' : 'fail',
      value: rate,
      limit: p.recoverySuccessRate,
    });
  }

  const limit = s.deadlineMs + p.deadlineMarginMs;
  if (e.samples.length === 0) {
    out.push(skip('deadline', 'every request ends within its deadline', 'no request was sent'));
  } else {
    const over = e.samples.filter((x) => x.latencyMs > limit);
    const max = Math.max(...e.samples.map((x) => x.latencyMs));
    const hung = over.filter((x) => x.networkError === 'TIMEOUT').length;
    out.push({
      id: 'deadline',
      promise: 'every request ends within its deadline',
      observed: `max ${r0(max)} ms; ${over.length} of ${e.samples.length} over${hung > 0 ? ` (${hung} cut by the client at ${s.clientTimeoutMs} ms)` : ''}`,
      bound: `<= ${s.deadlineMs} + ${p.deadlineMarginMs} ms`,
      verdict: over.length === 0 ? 'pass' : 'fail',
      value: r0(max),
      limit,
    });
  }

  const during = e.probes.filter((x) => x.atMs >= e.injectedAtMs && x.atMs <= e.removedAtMs);
  if (during.length === 0) {
    out.push(skip('healthz', `${p.healthzPath} stays fast during the fault`, 'no probe during the fault'));
  } else {
    const sorted = during.map((x) => x.latencyMs).sort((a, b) => a - b);
    const p99 = r0(percentile(sorted, 99));
    const failed = during.filter((x) => x.status < 200 || x.status >= 300).length;
    out.push({
      id: 'healthz',
      promise: `${p.healthzPath} stays fast during the fault`,
      observed: `p99 ${p99} ms over ${during.length} probes${failed > 0 ? `; ${failed} not 2xx` : ''}`,
      bound: `p99 <= ${p.healthzP99Ms} ms, all 2xx`,
      verdict: p99 <= p.healthzP99Ms && failed === 0 ? 'pass' : 'fail',
      value: p99,
      limit: p.healthzP99Ms,
    });
  }

  if (typeof e.pool === 'string') {
    out.push(skip('pool', 'no pool connection leaked', e.pool));
  } else {
    const { baseline, result } = e.pool;
    const inUse = result.last?.inUse ?? 0;
    out.push({
      id: 'pool',
      promise: 'no pool connection leaked',
      observed: result.settled
        ? `in use ${inUse} (baseline ${baseline}) ${result.afterMs} ms after the load`
        : `still ${inUse} in use (baseline ${baseline}) after ${result.afterMs} ms`,
      bound: `<= baseline within ${p.leakCheckMs} ms`,
      verdict: result.settled ? 'pass' : 'fail',
      value: inUse,
      limit: baseline,
    });
  }

  if (typeof e.idle === 'string') {
    out.push(skip('idle-in-transaction', "no session left 'idle in transaction'", e.idle));
  } else {
    const r = e.idle;
    const names = [...new Set(r.last.sessions.map((x) => x.applicationName || '(no name)'))].join(', ');
    out.push({
      id: 'idle-in-transaction',
      promise: "no session left 'idle in transaction'",
      observed: r.settled
        ? `none ${r.afterMs} ms after the load`
        : `${r.last.count} session(s) after ${r.afterMs} ms: ${names}`,
      bound: `0 within ${p.leakCheckMs} ms`,
      verdict: r.settled ? 'pass' : 'fail',
      value: r.last.count,
      limit: 0,
    });
  }

  out.push(recovery(e));
  return out;
}

/**
 * Recovery time: the start of the first bucket after the fault's removal from which on the
 * success rate (of requests sent from then to the end) is at or above the threshold, and the
 * bucket itself is too. Requests sent before the removal are not counted.
 */
function recovery(e: Evidence): PromiseVerdict {
  const p = e.scenario.promises;
  const promise = `success rate back to ${pct(p.recoverySuccessRate)} after the fault`;
  const after = e.samples.filter((x) => x.atMs >= e.removedAtMs);
  if (after.length === 0) return skip('recovery', promise, 'no request after the fault');
  const lastAt = Math.max(...after.map((x) => x.atMs)) - e.removedAtMs;
  let recoveredAt: number | undefined;
  for (let b = 0; b <= lastAt; b += RECOVERY_BUCKET_MS) {
    const rest = after.filter((x) => x.atMs - e.removedAtMs >= b);
    const bucket = rest.filter((x) => x.atMs - e.removedAtMs < b + RECOVERY_BUCKET_MS);
    if (bucket.length === 0) continue;
    const rate = (xs: readonly LoadSample[]): number => xs.filter(ok).length / xs.length;
    if (rate(bucket) >= p.recoverySuccessRate && rate(rest) >= p.recoverySuccessRate) {
      recoveredAt = b;
      break;
    }
  }
  const tail = after.filter((x) => x.atMs - e.removedAtMs >= p.recoverWithinMs);
  const tailRate = tail.length === 0 ? null : tail.filter(ok).length / tail.length;
  const pass = recoveredAt !== undefined && recoveredAt <= p.recoverWithinMs;
  return {
    id: 'recovery',
    promise,
    observed:
      recoveredAt === undefined
        ? `not recovered${tailRate === null ? '' : `: ${pct(tailRate)} succeeded after ${p.recoverWithinMs} ms`}`
        : `recovered ${recoveredAt} ms after the fault`,
    bound: `within ${p.recoverWithinMs} ms`,
    verdict: pass ? 'pass' : 'fail',
    value: recoveredAt ?? null,
    limit: p.recoverWithinMs,
  };
}

function skip(id: PromiseId, promise: string, why: string): PromiseVerdict {
  return { id, promise, observed: `not checked: ${why}`, bound: '-', verdict: 'skip', value: null, limit: null };
}
