import type { RequestEvent } from 'hangproof/diagnosis';
import { percentile } from '../load/load-summary.js';

export interface LatencyStats {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  /** Share of requests that failed on the server's side (5xx, 429) or were abandoned (499), 0..1. */
  readonly errorRate: number;
}

/** A failed request, from the service's point of view. */
export const isFailure = (r: RequestEvent): boolean => r.status >= 500 || r.status === 429 || r.status === 499;

const r1 = (x: number): number => Math.round(x * 10) / 10;

export function latencyStats(requests: readonly RequestEvent[]): LatencyStats {
  const sorted = requests.map((r) => r.durationMs).sort((a, b) => a - b);
  return {
    count: requests.length,
    p50: r1(percentile(sorted, 50)),
    p95: r1(percentile(sorted, 95)),
    p99: r1(percentile(sorted, 99)),
    max: r1(sorted.at(-1) ?? 0),
    errorRate:
      requests.length === 0 ? 0 : Math.round((requests.filter(isFailure).length / requests.length) * 1000) / 1000,
  };
}
