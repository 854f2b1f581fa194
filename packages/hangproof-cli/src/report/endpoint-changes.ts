import type { RequestEvent } from 'hangproof/diagnosis';
import { spanLabel } from 'hangproof/diagnosis';
import { isFailure, type LatencyStats, latencyStats } from './latency-stats.js';

/** When an endpoint counts as moved. Defaults live in MOVE_THRESHOLDS. */
export interface MoveThresholds {
  /** p95/p99 growth, in percent... @default 20 */
  readonly latencyPct: number;
  /** ...and in ms, so noise on a fast route does not count. @default 50 */
  readonly latencyMinMs: number;
  /** Error-rate growth in percentage points. @default 5 */
  readonly errorRatePoints: number;
}

export const MOVE_THRESHOLDS: MoveThresholds = Object.freeze({ latencyPct: 20, latencyMinMs: 50, errorRatePoints: 5 });

export interface DominantStep {
  readonly label: string;
  /** Share (0..1) of the slow or failed requests' time spent in it. */
  readonly share: number;
  readonly totalMs: number;
}

export interface EndpointChange {
  readonly method: string;
  readonly route: string;
  readonly before: LatencyStats;
  readonly after: LatencyStats;
  readonly moved: boolean;
  /** Why it counts as moved: `p95 +340 %`, `errors +40 points`. */
  readonly reasons: readonly string[];
  /** Where the slow or failed requests of the later period spent their time. */
  readonly dominantStep: DominantStep | null;
  readonly errorCodes: Readonly<Record<string, number>>;
  /** Some slow or failed request ids, as evidence. */
  readonly exampleRequestIds: readonly string[];
}

/**
 * Per endpoint, the earlier period against the later one (the two halves of the window, or a
 * baseline log against the incident's), sorted with the moved ones first.
 */
export function endpointChanges(
  before: readonly RequestEvent[],
  after: readonly RequestEvent[],
  t: MoveThresholds = MOVE_THRESHOLDS,
): EndpointChange[] {
  const key = (r: RequestEvent): string => `${r.method} ${r.route}`;
  const keys = new Set([...before.map(key), ...after.map(key)]);
  const out: EndpointChange[] = [];
  for (const k of keys) {
    const b = before.filter((r) => key(r) === k);
    const a = after.filter((r) => key(r) === k);
    const sb = latencyStats(b);
    const sa = latencyStats(a);
    const reasons: string[] = [];
    for (const p of ['p95', 'p99'] as const) {
      const grew = sa[p] - sb[p];
      if (a.length > 0 && grew > t.latencyMinMs && (sb[p] === 0 || (grew / sb[p]) * 100 > t.latencyPct))
        reasons.push(`${p} ${sb[p]} -> ${sa[p]} ms`);
    }
    const points = (sa.errorRate - sb.errorRate) * 100;
    if (a.length > 0 && points > t.errorRatePoints) reasons.push(`errors +${Math.round(points)} points`);
    const sample = a.length > 0 ? a : b;
    const slow = slowOrFailed(sample);
    const errorCodes: Record<string, number> = {};
    for (const r of a) if (r.errorCode !== undefined) errorCodes[r.errorCode] = (errorCodes[r.errorCode] ?? 0) + 1;
    const [method = '', ...rest] = k.split(' ');
    out.push({
      method,
      route: rest.join(' '),
      before: sb,
      after: sa,
      moved: reasons.length > 0,
      reasons,
      dominantStep: dominantStep(slow),
      errorCodes,
      exampleRequestIds: slow.slice(0, 5).map((r) => r.requestId),
    });
  }
  return out.sort(
    (x, y) => Number(y.moved) - Number(x.moved) || y.after.p99 - x.after.p99 || x.route.localeCompare(y.route),
  );
}

/** The failed requests and those at or above the p95 of `rs`, slowest first. */
export function slowOrFailed(rs: readonly RequestEvent[]): RequestEvent[] {
  if (rs.length === 0) return [];
  const p95 = latencyStats(rs).p95;
  return rs.filter((r) => isFailure(r) || r.durationMs >= p95).sort((a, b) => b.durationMs - a.durationMs);
}

/**
 * The span label with the most time across `rs`; a request with no span but a step in flight
 * counts its whole duration to that step (it was still running when the request ended).
 */
export function dominantStep(rs: readonly RequestEvent[]): DominantStep | null {
  const total = new Map<string, number>();
  let all = 0;
  for (const r of rs) {
    all += r.durationMs;
    if (r.spans.length === 0 && r.stepInFlight)
      total.set(r.stepInFlight, (total.get(r.stepInFlight) ?? 0) + r.durationMs);
    for (const s of r.spans) total.set(spanLabel(s), (total.get(spanLabel(s)) ?? 0) + s.durMs);
  }
  let best: [string, number] | undefined;
  for (const e of total) if (best === undefined || e[1] > best[1]) best = e;
  if (best === undefined || all === 0) return null;
  return { label: best[0], totalMs: Math.round(best[1]), share: Math.min(1, Math.round((best[1] / all) * 100) / 100) };
}
