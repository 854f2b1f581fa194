import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADAPTIVE_QUEUE_WAIT_MS, OBSERVE_DEFAULTS } from 'hangproof/observe';
// Internals of the overload guard (not exported), tested on their own.
import { ConcurrencyLimiter } from '../../src/observe/concurrency-limiter.ts';
import { GradientLimit } from '../../src/observe/gradient-limit.ts';
import { resolveObserveOptions } from '../../src/observe/options.ts';

/** Feeds `windows` windows of 10 samples, 10 ms apart, each from `latencyOf(limit)`. */
function run(
  g: GradientLimit,
  windows: number,
  clock: { t: number },
  sample: (limit: number) => { latencyMs: number; inFlight: number },
): void {
  for (let w = 0; w < windows; w++) {
    const { latencyMs, inFlight } = sample(g.limit);
    for (let i = 0; i < 10; i++) {
      clock.t += 10;
      g.addSample(latencyMs, inFlight, clock.t);
    }
  }
}

// A service with 8 requests' worth of capacity and a 10 ms service time: beyond 8 in flight,
// requests queue and latency grows with the limit.
const CAPACITY = 8;
const SERVICE_MS = 10;
const queued = (limit: number) => ({ latencyMs: SERVICE_MS * Math.max(1, limit / CAPACITY), inFlight: limit });

test('once latency rises with concurrency, the limit shrinks toward what the service can serve', () => {
  const g = new GradientLimit(200, { initialLimit: 40, minLimit: 2 });
  const clock = { t: 0 };
  // Light traffic first: it sets the latency baseline and, using little of the limit, moves nothing.
  run(g, 20, clock, () => ({ latencyMs: SERVICE_MS, inFlight: 2 }));
  assert.equal(g.limit, 40);
  run(g, 30, clock, queued);
  assert.ok(g.limit <= 3 * CAPACITY, `limit ${g.limit} after 3 s of queueing`);
  assert.ok(g.limit >= CAPACITY, `limit ${g.limit} fell below the capacity`);
});

test('under overload that lasts, probe windows keep the baseline honest and the limit down', () => {
  const simulate = (probeIntervalMs: number): number => {
    const g = new GradientLimit(200, { initialLimit: 20, minLimit: 2, probeIntervalMs });
    const clock = { t: 0 };
    run(g, 50, clock, () => ({ latencyMs: SERVICE_MS, inFlight: 2 }));
    // Ten simulated minutes of demand far above capacity (100 ms windows).
    run(g, 6_000, clock, queued);
    return g.limit;
  };
  const withoutProbes = simulate(0);
  const withProbes = simulate(10_000);
  assert.ok(withoutProbes > 10 * CAPACITY, `without probes the long average drifts (limit ${withoutProbes})`);
  assert.ok(withProbes <= 3 * CAPACITY, `with probes the limit stays near capacity (limit ${withProbes})`);
});

test('a probe drops the limit to minLimit for one window, then restores it', () => {
  const g = new GradientLimit(200, { initialLimit: 40, minLimit: 4, probeIntervalMs: 1_000 });
  const clock = { t: 0 };
  run(g, 20, clock, () => ({ latencyMs: SERVICE_MS, inFlight: 2 }));
  const seen = new Set<number>();
  let probed = false;
  for (let w = 0; w < 40 && !probed; w++) {
    run(g, 1, clock, queued);
    if (g.probing) {
      probed = true;
      assert.equal(g.limit, 4);
      // Requests let in before the probe do not count toward its window.
      for (let i = 0; i < 50; i++) {
        clock.t += 10;
        g.addSample(10_000, 30, clock.t);
      }
      assert.equal(g.probing, true);
      run(g, 1, clock, () => ({ latencyMs: SERVICE_MS, inFlight: 4 }));
    }
    seen.add(g.limit);
  }
  assert.ok(probed, 'a probe started within 4 s of congestion');
  assert.equal(g.probing, false);
  assert.equal(g.longLatencyMs, SERVICE_MS, 'the probe window became the baseline');
  assert.ok(g.limit > 4, `the limit came back after the probe (${g.limit})`);
});

test('while latency holds, a fully used limit grows up to maxInFlight and no further', () => {
  const g = new GradientLimit(60, { initialLimit: 20 });
  const clock = { t: 0 };
  run(g, 40, clock, (limit) => ({ latencyMs: SERVICE_MS, inFlight: limit }));
  assert.ok(g.limit > 20, `limit ${g.limit} did not grow`);
  run(g, 200, clock, (limit) => ({ latencyMs: SERVICE_MS, inFlight: limit }));
  assert.equal(g.limit, 60);
});

test('the limit never drops below minLimit, however much requests queue', () => {
  const g = new GradientLimit(200, { initialLimit: 50, minLimit: 12 });
  const clock = { t: 0 };
  run(g, 20, clock, () => ({ latencyMs: SERVICE_MS, inFlight: 2 }));
  // A service that serves one request at a time: every request beyond the first queues.
  let lowest = g.limit;
  for (let w = 0; w < 300; w++) {
    run(g, 1, clock, (limit) => ({ latencyMs: SERVICE_MS * limit, inFlight: limit }));
    lowest = Math.min(lowest, g.limit);
  }
  assert.equal(lowest, 12);
});

test('a window needs windowMs and minWindowSamples before the limit moves', () => {
  const g = new GradientLimit(200, { initialLimit: 40, minLimit: 2, windowMs: 100, minWindowSamples: 10 });
  // Nine slow samples over a second: not enough samples for a window.
  for (let i = 1; i <= 9; i++) assert.equal(g.addSample(1000, 40, i * 100), false);
  assert.equal(g.limit, 40);
});

test('bad settings are refused with the option named', () => {
  assert.throws(
    () => new GradientLimit(20, { minLimit: 30 }),
    /adaptiveLimit\.minLimit must not exceed maxInFlight \(20\)/,
  );
  assert.throws(() => new GradientLimit(20, { tolerance: 0.9 }), /adaptiveLimit\.tolerance must be >= 1/);
  assert.throws(() => new GradientLimit(20, { smoothing: 0 }), /adaptiveLimit\.smoothing must be in \(0, 1\]/);
  assert.throws(() => new GradientLimit(20, { probeIntervalMs: -1 }), /adaptiveLimit\.probeIntervalMs must be >= 0/);
  assert.throws(
    () => new GradientLimit(20, { initialLimit: 2.5 }),
    /adaptiveLimit\.initialLimit must be a positive integer/,
  ); // The plugin's options are checked at registration, before any request.
  assert.throws(
    () => resolveObserveOptions({ adaptiveLimit: true, maxInFlight: 0 }),
    /adaptiveLimit needs maxInFlight > 0/,
  );
  assert.throws(
    () => resolveObserveOptions({ adaptiveLimit: { minLimit: 500 } }),
    /must not exceed maxInFlight \(200\)/,
  );
  assert.throws(
    () => resolveObserveOptions({ adaptiveLimit: 'yes' as unknown as boolean }),
    /adaptiveLimit must be a boolean or an options object/,
  );
});

test('with adaptiveLimit the queue wait defaults to a short one; a wait the user gives is kept', () => {
  assert.equal(ADAPTIVE_QUEUE_WAIT_MS, 10);
  assert.equal(resolveObserveOptions({}).queueWaitMs, OBSERVE_DEFAULTS.queueWaitMs);
  assert.equal(resolveObserveOptions({ adaptiveLimit: false }).queueWaitMs, OBSERVE_DEFAULTS.queueWaitMs);
  assert.equal(resolveObserveOptions({ adaptiveLimit: true }).queueWaitMs, ADAPTIVE_QUEUE_WAIT_MS);
  assert.equal(resolveObserveOptions({ adaptiveLimit: { minLimit: 5 } }).queueWaitMs, ADAPTIVE_QUEUE_WAIT_MS);
  assert.equal(resolveObserveOptions({ adaptiveLimit: true, queueWaitMs: 100 }).queueWaitMs, 100);
  assert.equal(resolveObserveOptions({ adaptiveLimit: true, queueWaitMs: 0 }).queueWaitMs, 0);
});

test('lowering a limiter admits no one until requests in flight drop below it; raising it lets waiters in', async () => {
  const limiter = new ConcurrencyLimiter({ maxInFlight: 4, maxQueued: 4, queueWaitMs: 1_000 });
  for (let i = 0; i < 4; i++) assert.equal(limiter.tryAcquire(), true);
  limiter.setLimit(2);
  assert.equal(limiter.limit, 2);
  limiter.release();
  assert.equal(limiter.tryAcquire(), false, '3 in flight against a limit of 2');
  const waiting = limiter.wait();
  limiter.release(); // 2 in flight: still no slot for the waiter
  assert.equal(limiter.inFlight, 2);
  limiter.setLimit(3);
  assert.equal(await waiting, true);
  assert.equal(limiter.inFlight, 3);
  limiter.setLimit(100);
  assert.equal(limiter.limit, 4, 'clamped to maxInFlight');
});
