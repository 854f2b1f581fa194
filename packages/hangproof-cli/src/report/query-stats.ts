import type { LogEvent, RequestEvent } from 'hangproof/diagnosis';
import { percentile } from '../load/load-summary.js';

export interface QueryStat {
  readonly fingerprint: string;
  readonly count: number;
  readonly totalMs: number;
  readonly p95Ms: number;
  readonly maxMs: number;
  readonly errors: number;
  /** `slow postgres query` lines for it. */
  readonly slowLines: number;
  readonly routes: readonly string[];
  readonly requestIds: readonly string[];
}

/** Query fingerprints by total time, from the requests' db spans and the slow-query lines. */
export function queryStats(requests: readonly RequestEvent[], events: readonly LogEvent[], limit = 10): QueryStat[] {
  const by = new Map<string, { d: number[]; errors: number; slow: number; routes: Set<string>; ids: string[] }>();
  const get = (fp: string) => {
    let e = by.get(fp);
    if (e === undefined) {
      e = { d: [], errors: 0, slow: 0, routes: new Set(), ids: [] };
      by.set(fp, e);
    }
    return e;
  };
  for (const r of requests) {
    for (const s of r.spans) {
      if (s.fingerprint === undefined) continue;
      const e = get(s.fingerprint);
      e.d.push(s.durMs);
      if (s.error !== undefined) e.errors++;
      e.routes.add(`${r.method} ${r.route}`);
      if (e.ids.length < 5 && (s.error !== undefined || s.durMs > 100)) e.ids.push(r.requestId);
    }
  }
  for (const ev of events) {
    if (ev.type !== 'slow-query') continue;
    const e = get(ev.sql);
    e.slow++;
    // A query outside a request has no span: its duration comes from the slow line only.
    if (ev.requestId === undefined) e.d.push(ev.durationMs);
    else if (e.ids.length < 5 && !e.ids.includes(ev.requestId)) e.ids.push(ev.requestId);
  }
  return [...by.entries()]
    .map(([fingerprint, e]) => {
      const sorted = e.d.sort((a, b) => a - b);
      return {
        fingerprint,
        count: sorted.length,
        totalMs: Math.round(sorted.reduce((a, b) => a + b, 0)),
        p95Ms: Math.round(percentile(sorted, 95)),
        maxMs: Math.round(sorted.at(-1) ?? 0),
        errors: e.errors,
        slowLines: e.slow,
        routes: [...e.routes].slice(0, 5),
        requestIds: e.ids,
      };
    })
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, limit);
}
