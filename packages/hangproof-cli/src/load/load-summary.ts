/** The summary `hangproof load --json` writes, and the comparison of two of them. */
import type { LoadPlan, LoadSample } from './open-loop.js';

export interface LatencySummary {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface LoadSummary {
  readonly kind: 'hangproof-load';
  readonly version: 1;
  readonly target: string;
  readonly method: string;
  readonly startRps: number;
  readonly endRps: number;
  readonly durationMs: number;
  readonly timeoutMs: number;
  readonly startedAt: string;
  readonly sent: number;
  readonly completed: number;
  /** Scheduled sends not made because `maxInFlight` requests were outstanding. */
  readonly skipped: number;
  readonly throughputRps: number;
  /** Share of sent requests that failed (status >= 500, 429, or no response), 0..1. */
  readonly errorRate: number;
  readonly latencyMs: LatencySummary;
  /** Latency of 2xx/3xx answers only. */
  readonly okLatencyMs: LatencySummary | null;
  readonly statuses: Readonly<Record<string, number>>;
  readonly errorCodes: Readonly<Record<string, number>>;
  readonly networkErrors: Readonly<Record<string, number>>;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

const r1 = (n: number): number => Math.round(n * 10) / 10;

function latency(values: number[]): LatencySummary {
  const s = values.sort((a, b) => a - b);
  return {
    p50: r1(percentile(s, 50)),
    p95: r1(percentile(s, 95)),
    p99: r1(percentile(s, 99)),
    max: r1(s[s.length - 1] ?? 0),
    mean: r1(s.length === 0 ? 0 : s.reduce((a, b) => a + b, 0) / s.length),
  };
}

const count = (keys: readonly (string | undefined)[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const k of keys) if (k !== undefined) out[k] = (out[k] ?? 0) + 1;
  return out;
};

export function summarise(
  plan: LoadPlan,
  run: { samples: readonly LoadSample[]; skipped: number; elapsedMs: number },
  startedAt: Date,
): LoadSummary {
  const failed = run.samples.filter((s) => s.status === 0 || s.status >= 500 || s.status === 429).length;
  const ok = run.samples.filter((s) => s.status >= 200 && s.status < 400).map((s) => s.latencyMs);
  return {
    kind: 'hangproof-load',
    version: 1,
    target: plan.url,
    method: plan.method,
    startRps: plan.startRps,
    endRps: plan.endRps,
    durationMs: plan.durationMs,
    timeoutMs: plan.timeoutMs,
    startedAt: startedAt.toISOString(),
    sent: run.samples.length,
    completed: run.samples.filter((s) => s.status !== 0).length,
    skipped: run.skipped,
    throughputRps: r1((run.samples.filter((s) => s.status !== 0).length / run.elapsedMs) * 1000),
    errorRate: run.samples.length === 0 ? 0 : Math.round((failed / run.samples.length) * 10_000) / 10_000,
    latencyMs: latency(run.samples.map((s) => s.latencyMs)),
    okLatencyMs: ok.length === 0 ? null : latency(ok),
    statuses: count(run.samples.map((s) => (s.status === 0 ? undefined : String(s.status)))),
    errorCodes: count(run.samples.map((s) => s.errorCode)),
    networkErrors: count(run.samples.map((s) => s.networkError)),
  };
}

export interface Delta {
  readonly metric: string;
  readonly before: number;
  readonly after: number;
  /** Relative change in percent (after vs before). */
  readonly changePct: number | null;
  readonly regression: boolean;
}

export interface CompareThresholds {
  /** Latency percentiles may grow by this share (percent) before it counts. @default 20 */
  readonly latencyPct: number;
  /** ...and by at least this many ms, so noise on a fast route does not count. @default 5 */
  readonly latencyMinMs: number;
  /** Error rate may grow by this many percentage points. @default 1 */
  readonly errorRatePoints: number;
  /** Throughput may drop by this share (percent). @default 10 */
  readonly throughputPct: number;
}

export const COMPARE_DEFAULTS: CompareThresholds = Object.freeze({
  latencyPct: 20,
  latencyMinMs: 5,
  errorRatePoints: 1,
  throughputPct: 10,
});

export function compareSummaries(
  before: LoadSummary,
  after: LoadSummary,
  t: CompareThresholds = COMPARE_DEFAULTS,
): Delta[] {
  const pct = (b: number, a: number): number | null => (b === 0 ? null : Math.round(((a - b) / b) * 1000) / 10);
  const out: Delta[] = [];
  for (const p of ['p50', 'p95', 'p99', 'max'] as const) {
    const b = before.latencyMs[p];
    const a = after.latencyMs[p];
    const grew = a - b > t.latencyMinMs && (b === 0 || ((a - b) / b) * 100 > t.latencyPct);
    out.push({
      metric: `latency ${p} (ms)`,
      before: b,
      after: a,
      changePct: pct(b, a),
      regression: p !== 'max' && grew,
    });
  }
  out.push({
    metric: 'error rate (%)',
    before: r1(before.errorRate * 100),
    after: r1(after.errorRate * 100),
    changePct: pct(before.errorRate, after.errorRate),
    regression: (after.errorRate - before.errorRate) * 100 > t.errorRatePoints,
  });
  const expectedRatio = (after.startRps + after.endRps) / Math.max(1e-9, before.startRps + before.endRps);
  out.push({
    metric: 'throughput (req/s)',
    before: before.throughputRps,
    after: after.throughputRps,
    changePct: pct(before.throughputRps, after.throughputRps),
    // Only comparable when the offered load was the same.
    regression:
      Math.abs(expectedRatio - 1) < 0.01 &&
      before.throughputRps > 0 &&
      ((before.throughputRps - after.throughputRps) / before.throughputRps) * 100 > t.throughputPct,
  });
  return out;
}

export function isLoadSummary(v: unknown): v is LoadSummary {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'hangproof-load';
}
