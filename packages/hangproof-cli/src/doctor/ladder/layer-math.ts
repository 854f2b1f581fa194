/** Small helpers the ladder rules share: labels, sums, worst cases and the tightest bound. */
import type { DependencyLayer } from '../timeout-layers.js';
import type { LadderLayer, LadderRows } from './ladder-rows.js';

/** How a row is named in a finding: component and setting. */
export const label = (r: LadderLayer): string => `${r.component} ${r.setting}`;

export const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Longest a call can take: every attempt times out and every backoff waits its full bound. */
export function worstCaseMs(d: DependencyLayer): number {
  const attempts = (d.attemptTimeoutMs ?? 0) * d.maxAttempts + sum(d.backoffMs);
  return d.timeoutMs ? Math.min(d.timeoutMs, attempts) : attempts;
}

/** The tightest finite layer among `candidates` (the bound an inner wait must fit in). */
export function tightest(...candidates: (LadderLayer | undefined)[]): LadderLayer | undefined {
  return candidates
    .filter((c): c is LadderLayer => c !== undefined && c.valueMs !== null)
    .reduce<LadderLayer | undefined>(
      (a, b) => (a === undefined || (b.valueMs as number) < (a.valueMs as number) ? b : a),
      undefined,
    );
}

/** What a request may take at most: the tightest of its deadline, workers, proxy and gateway. */
export function requestBoundOf(rows: LadderRows): LadderLayer | undefined {
  return tightest(rows.deadline, rows.workers, rows.proxyRead, rows.gateway);
}

/** A row that is not on the ladder, standing for a dependency's caller deadline. */
export function pseudo(name: string, valueMs: number): LadderLayer {
  return { id: 'caller', tier: 3, component: name, setting: 'deadline', valueMs, source: 'config', verdict: 'ok' };
}

/** A Postgres duration literal: '30s', '500ms'. */
export function formatPg(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${Math.round(ms)}ms`;
}
