import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatencySeries, SummedSeries } from '../../src/observe/latency-series.ts';

const T0 = 1_800_000_000_000; // a fixed epoch ms, a multiple of 5 minutes
const BOUNDS_MS = Float64Array.from([5, 25, 100, 500, 2500]);

/** Three query series and one series that recorded all their values, at the same times. */
function recordSpread(): { parts: LatencySeries[]; all: LatencySeries } {
  const parts = [0, 1, 2].map(() => new LatencySeries({}, BOUNDS_MS, T0));
  const all = new LatencySeries({}, BOUNDS_MS, T0);
  // Values over 70 minutes, so every ring of the windows holds some and some have aged out.
  for (let i = 0; i < 3000; i++) {
    const at = T0 + i * 1_400;
    const ms = ((i * 37) % 997) + 0.5;
    const code = i % 50 === 0 ? 'DEPENDENCY_TIMEOUT' : i % 77 === 0 ? 'INTERNAL' : undefined;
    (parts[i % 3] as LatencySeries).record(ms, at, code);
    all.record(ms, at, code);
  }
  // One series stops early: its last 10 s slot was never folded into the coarse rings.
  (parts[0] as LatencySeries).record(42, T0 + 4_201_000, undefined);
  all.record(42, T0 + 4_201_000, undefined);
  return { parts, all };
}

test('the sum of several series reads as one series that recorded every value', () => {
  const { parts, all } = recordSpread();
  const sum = new SummedSeries({}, () => parts, BOUNDS_MS, T0);
  assert.equal(sum.count, all.count);
  assert.ok(Math.abs(sum.sumSec - all.sumSec) < 1e-9, `${sum.sumSec} against ${all.sumSec}`);
  assert.deepEqual([...sum.bucketCounts], [...all.bucketCounts]);
  assert.deepEqual(new Map([...sum.errorsTotal].sort()), new Map([...all.errorsTotal].sort()));
  for (const now of [T0 + 4_201_500, T0 + 4_260_000, T0 + 4_500_000]) {
    for (const w of ['1m', '5m', '60m'] as const) {
      assert.deepEqual(sum.windows.summary(w, now), all.windows.summary(w, now), `window ${w} at +${now - T0} ms`);
      assert.deepEqual(sum.windows.exportWindow(w, now), all.windows.exportWindow(w, now));
    }
  }
});

test('the sum of no series is empty and covers the time since measuring began', () => {
  const sum = new SummedSeries({}, () => [], BOUNDS_MS, T0);
  assert.equal(sum.count, 0);
  assert.deepEqual([...sum.bucketCounts], [0, 0, 0, 0, 0, 0]);
  const s = sum.windows.summary('1m', T0 + 30_000);
  assert.equal(s.count, 0);
  assert.equal(s.coveredMs, 30_000);
});
