import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WindowedHistogram } from 'hangproof/observe';
import { type InstanceExport, mergeExports } from '../../src/cluster/cluster-view.js';

/** Exact percentile of a list (nearest rank), in ms. */
function exactPercentile(valuesMs: readonly number[], p: number): number {
  const sorted = [...valuesMs].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** One instance's export of a `/api/bots` series holding `valuesMs`. */
function instanceWith(id: string, valuesMs: readonly number[], nowMs: number): InstanceExport {
  const h = new WindowedHistogram(nowMs - 30_000);
  for (const v of valuesMs) h.record(v * 1000, nowMs - 1_000);
  const empty = new WindowedHistogram(nowMs - 30_000);
  const win = (w: '1m' | '5m' | '60m') => ({
    window: w,
    routes: [{ method: 'GET', route: '/api/bots', latency: h.exportWindow(w, nowMs) }],
    postgres: empty.exportWindow(w, nowMs),
    queries: [],
    poolAcquire: [],
    dependencies: [],
  });
  return { instance: id, pid: 1, startedAt: '', windows: { '1m': win('1m'), '5m': win('5m'), '60m': win('60m') } };
}

test('the merged p99 of two instances equals the p99 of all their requests, within histogram precision', () => {
  const now = Date.now();
  // A fast instance and a slow one (a noisy neighbour): 900 requests around 5 ms, 300 around 80 ms.
  const fast = Array.from({ length: 900 }, (_, i) => 3 + (i % 50) / 10);
  const slow = Array.from({ length: 300 }, (_, i) => 60 + (i % 40));
  const merged = mergeExports([instanceWith('a', fast, now), instanceWith('b', slow, now)]);
  const bots = merged.endpoints.find((e) => e.route === '/api/bots');
  assert.ok(bots !== undefined);
  const w = bots.windows['1m'];
  assert.equal(w.count, 1200);
  for (const p of [50, 95, 99] as const) {
    const exact = exactPercentile([...fast, ...slow], p);
    const got = p === 50 ? w.p50Ms : p === 95 ? w.p95Ms : w.p99Ms;
    // 2 significant digits: 1% relative error, plus the 0.01 ms rounding of the summary.
    assert.ok(Math.abs(got - exact) <= exact * 0.01 + 0.02, `p${p}: merged ${got} ms, exact ${exact} ms`);
  }
  // What averaging the two instances' p99 would have claimed instead: far off the truth.
  const averaged = (exactPercentile(fast, 99) + exactPercentile(slow, 99)) / 2;
  assert.ok(Math.abs(averaged - exactPercentile([...fast, ...slow], 99)) > 40);
});

test('a route seen by one instance only is merged from that instance alone', () => {
  const now = Date.now();
  const merged = mergeExports([instanceWith('a', [10, 20, 30], now), instanceWith('b', [], now)]);
  const bots = merged.endpoints.find((e) => e.route === '/api/bots');
  assert.equal(bots?.windows['1m'].count, 3);
});
