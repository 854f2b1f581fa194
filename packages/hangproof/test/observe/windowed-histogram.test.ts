import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeEncoded, WindowedHistogram } from 'hangproof/observe';

const T0 = 1_800_000_000_000; // a fixed epoch ms, a multiple of 5 minutes

test('a window reports percentiles within 1% and counts failures by code', () => {
  const h = new WindowedHistogram(T0);
  for (let i = 1; i <= 1000; i++) h.record(i * 1000, T0 + i, i % 100 === 0 ? 'REQUEST_TIMEOUT' : undefined);
  const s = h.summary('1m', T0 + 2000);
  assert.equal(s.count, 1000);
  assert.ok(Math.abs(s.p50Ms - 500) <= 5, `p50 ${s.p50Ms}`);
  assert.ok(Math.abs(s.p99Ms - 990) <= 10, `p99 ${s.p99Ms}`);
  assert.ok(Math.abs(s.maxMs - 1000) <= 10, `max ${s.maxMs}`);
  assert.deepEqual(s.errors, { REQUEST_TIMEOUT: 10 });
});

test('values leave the 1-minute window after a minute but stay in the 5- and 60-minute windows', () => {
  const h = new WindowedHistogram(T0);
  for (let i = 0; i < 100; i++) h.record(2_000, T0 + 1_000);
  const later = T0 + 90_000;
  h.record(50_000, later); // retires the old 10 s slot into the coarse rings
  assert.equal(h.summary('1m', later).count, 1);
  assert.equal(h.summary('5m', later).count, 101);
  assert.equal(h.summary('60m', later).count, 101);
  const muchLater = T0 + 7 * 60_000;
  assert.equal(h.summary('5m', muchLater).count, 0, 'gone from the 5-minute window after 7 minutes');
  assert.equal(h.summary('60m', muchLater).count, 101);
  assert.equal(h.summary('60m', T0 + 70 * 60_000).count, 0, 'gone from everything after 70 minutes');
});

test('the rate counts from the start of measuring, not from the first value', () => {
  const h = new WindowedHistogram(T0);
  for (let i = 0; i < 30; i++) h.record(1_000, T0 + 29_000);
  assert.equal(h.summary('1m', T0 + 30_000).ratePerSec, 1);
});

test('windows exported by two instances merge into the percentiles of all values together', () => {
  const fast = new WindowedHistogram(T0);
  const slow = new WindowedHistogram(T0);
  for (let i = 0; i < 900; i++) fast.record(10_000, T0 + 1000); // 10 ms
  for (let i = 0; i < 100; i++) slow.record(1_000_000, T0 + 1000, i < 5 ? 'DEPENDENCY_TIMEOUT' : undefined); // 1 s
  const now = T0 + 10_000;
  const merged = mergeEncoded([fast.exportWindow('5m', now), JSON.parse(JSON.stringify(slow.exportWindow('5m', now)))]);
  assert.equal(merged.count, 1000);
  assert.ok(Math.abs(merged.p50Ms - 10) <= 0.1, `p50 ${merged.p50Ms}`);
  // 10% of the values are 1 s: the merged p95 is 1 s, which no average of per-instance p95s gives.
  assert.ok(Math.abs(merged.p95Ms - 1000) <= 10, `p95 ${merged.p95Ms}`);
  assert.deepEqual(merged.errors, { DEPENDENCY_TIMEOUT: 5 });
  assert.ok(merged.ratePerSec > 0);
});

test('values beyond 120 s are recorded as 120 s instead of throwing', () => {
  const h = new WindowedHistogram(T0);
  h.record(10 * 60 * 1_000_000, T0);
  h.record(-5, T0);
  const s = h.summary('1m', T0 + 1);
  assert.equal(s.count, 2);
  assert.ok(s.maxMs >= 119_000 && s.maxMs <= 121_000, `max ${s.maxMs}`);
});
