/**
 * Monte Carlo drawdown risk of a bot: its backtests' returns resampled into `paths` random
 * futures of `horizonDays` days, and the worst drawdown of each. Pure and synchronous: the work is
 * `paths * horizonDays` steps on the caller's thread, so a large `paths` holds the event loop for
 * as long (the desk bounds it with RISK_LIMITS; at the maximum it blocks for about a second, which
 * is what the event-loop playbook shows).
 */

/** Bounds of a risk request. */
export const RISK_LIMITS = Object.freeze({
  defaultPaths: 1_000,
  maxPaths: 1_000_000,
  horizonDays: 90,
});

export interface DrawdownRisk {
  readonly paths: number;
  readonly horizonDays: number;
  /** Median of the paths' worst drawdowns, as a share (0..1) of the peak. */
  readonly medianMaxDrawdown: number;
  /** The drawdown 95% of the paths stay under. */
  readonly p95MaxDrawdown: number;
}

/** A small deterministic generator (mulberry32): the same request gives the same answer. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Worst drawdowns of `paths` resampled futures of `dailyReturns` (each a share, e.g. 0.01). */
export function simulateDrawdowns(dailyReturns: readonly number[], paths: number, seed = 1): DrawdownRisk {
  const horizonDays = RISK_LIMITS.horizonDays;
  const worst = new Float64Array(paths);
  const next = random(seed);
  const n = dailyReturns.length;
  for (let p = 0; p < paths; p++) {
    let equity = 1;
    let peak = 1;
    let maxDrawdown = 0;
    for (let d = 0; d < horizonDays; d++) {
      equity *= 1 + (n === 0 ? 0 : (dailyReturns[Math.floor(next() * n)] as number));
      if (equity > peak) peak = equity;
      const drawdown = (peak - equity) / peak;
      if (drawdown > maxDrawdown) maxDrawdown = drawdown;
    }
    worst[p] = maxDrawdown;
  }
  worst.sort();
  const at = (q: number): number => worst[Math.min(paths - 1, Math.floor(q * paths))] ?? 0;
  return { paths, horizonDays, medianMaxDrawdown: at(0.5), p95MaxDrawdown: at(0.95) };
}
