import assert from 'node:assert/strict';
import * as diagnostics from 'node:diagnostics_channel';
import { test } from 'node:test';
import type { BreakerStateEvent } from 'hangproof';
import { CircuitBreaker, createDependencies, type DepsLogger, type HttpDependencyOptions } from 'hangproof/deps';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { inRequest, settle } from './helpers.js';
import { useTestServer } from './servers.js';

const logged: Array<{ level: string; fields: Record<string, unknown>; message: string | undefined }> = [];
const logger: DepsLogger = {
  info: (fields, message) => logged.push({ level: 'info', fields: fields as Record<string, unknown>, message }),
  warn: (fields, message) => logged.push({ level: 'warn', fields: fields as Record<string, unknown>, message }),
  error: (fields, message) => logged.push({ level: 'error', fields: fields as Record<string, unknown>, message }),
};
const deps = createDependencies({ logger });
let seq = 0;

const fx = useTestServer(deps);

const HALF_OPEN_MS = 300;

function dep(options: Partial<HttpDependencyOptions> = {}) {
  return deps.http(`brk-${++seq}`, {
    baseUrl: fx.server.url,
    timeoutMs: 1000,
    retry: { maxAttempts: 1 },
    breaker: { failureRatio: 0.5, minimumCalls: 5, windowMs: 5_000, halfOpenAfterMs: HALF_OPEN_MS },
    ...options,
  });
}

async function openIt(d: ReturnType<typeof dep>): Promise<void> {
  for (let i = 0; i < 5; i++) await d.get('/status/503').catch(() => {});
  assert.equal(d.dependency.breakerState, 'open');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the breaker stays closed until the window holds the minimum number of calls', async () => {
  const d = dep();
  for (let i = 0; i < 4; i++) await d.get('/status/503').catch(() => {});
  assert.equal(d.dependency.breakerState, 'closed');
  await d.get('/status/503').catch(() => {});
  assert.equal(d.dependency.breakerState, 'open');
});

test('an open breaker fails fast, well under a millisecond per call, without touching the server', async () => {
  const d = dep({ breaker: { failureRatio: 0.5, minimumCalls: 5, windowMs: 5_000, halfOpenAfterMs: 60_000 } });
  await openIt(d);
  const seenBefore = fx.server.seen.length;
  const N = 2_000;
  // Warm up once so the measurement is of the steady state.
  await d.get('/status/503').catch(() => {});
  const started = performance.now();
  let worst = 0;
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    const r = await settle(d.get('/ok'));
    worst = Math.max(worst, performance.now() - t);
    assert.equal(r.error?.code, 'DEPENDENCY_UNAVAILABLE');
  }
  const perCallMs = (performance.now() - started) / N;
  const r = await settle(d.get('/ok'));
  assert.equal(r.error?.details?.reason, 'breaker_open');
  assert.equal(r.error?.details?.dependency, d.name);
  const retryAfterSec = (r.error as { retryAfterSec?: number } | undefined)?.retryAfterSec;
  assert.ok(retryAfterSec !== undefined && retryAfterSec >= 1, `Retry-After hint of ${retryAfterSec} s`);
  assert.equal(fx.server.seen.length, seenBefore, 'no request reached the server while open');
  assert.ok(perCallMs < 1, `open-breaker call took ${perCallMs.toFixed(4)} ms on average`);
  console.log(`open breaker: ${(perCallMs * 1000).toFixed(1)} µs per call on average, worst ${worst.toFixed(3)} ms`);
});

test('in half-open exactly one probe goes through and concurrent callers fail fast', async () => {
  // The probe's 600 ms answer must not meet the call's own timeout: on a CI machine busy with
  // other test files, 1000 ms left too little room (a headers timeout, seen once on Node 24).
  const d = dep({ timeoutMs: 5000 });
  await openIt(d);
  await sleep(HALF_OPEN_MS + 20);
  const slowBefore = fx.server.count('/slow');
  const probe = settle(d.get('/slow?ms=600'));
  const others = await Promise.all(Array.from({ length: 20 }, () => settle(d.get('/slow?ms=600'))));
  for (const o of others) {
    assert.equal(o.error?.code, 'DEPENDENCY_UNAVAILABLE');
    assert.equal(o.error?.details?.reason, 'breaker_open');
    assertTookLessThan(o, 250, 'a caller did not wait for the 600 ms probe');
  }
  assert.equal(d.dependency.breakerState, 'half-open');
  const p = await probe;
  assert.equal(p.error, undefined);
  assert.equal(fx.server.count('/slow') - slowBefore, 1, 'only the probe reached the server');
  assert.equal(d.dependency.breakerState, 'closed');
  assert.equal((await d.get('/ok')).status, 200);
});

test('a failed probe opens the circuit again for another delay', async () => {
  const d = dep();
  await openIt(d);
  await sleep(HALF_OPEN_MS + 20);
  const probe = await settle(d.get('/status/503'));
  assert.equal(probe.error?.details?.reason, 'status_503');
  assert.equal(d.dependency.breakerState, 'open');
  const next = await settle(d.get('/ok'));
  assert.equal(next.error?.details?.reason, 'breaker_open');
});

test('a probe cut short by its caller frees the probe slot without closing or opening the circuit', async () => {
  const d = dep();
  await openIt(d);
  await sleep(HALF_OPEN_MS + 20);
  const cut = await inRequest(5000, (ctx) => {
    setTimeout(() => ctx.abort(new Error('client went away') as never), 50);
    return settle(d.get('/hang'));
  });
  assert.equal(cut.error?.message, 'client went away');
  assert.equal(d.dependency.breakerState, 'half-open');
  const probe = await settle(d.get('/ok'));
  assert.equal(probe.error, undefined, 'the next caller became the probe');
  assert.equal(d.dependency.breakerState, 'closed');
});

test('a flapping dependency opens the breaker while failing and closes it after recovery', async () => {
  const d = dep();
  fx.server.healthy = true;
  for (let i = 0; i < 10; i++) assert.equal((await d.get('/flap')).status, 200);
  fx.server.healthy = false;
  const during: string[] = [];
  for (let i = 0; i < 20; i++) during.push(String((await settle(d.get('/flap'))).error?.details?.reason));
  assert.equal(d.dependency.breakerState, 'open');
  assert.ok(during.includes('status_503') && during.includes('breaker_open'), during.join(','));
  fx.server.healthy = true;
  await sleep(HALF_OPEN_MS + 20);
  assert.equal((await d.get('/flap')).status, 200);
  assert.equal(d.dependency.breakerState, 'closed');
  const s = d.dependency.status().breaker;
  assert.equal(s.opened, 1);
  assert.equal(s.halfOpened, 1);
  assert.equal(s.closed, 1);
});

test('state changes are logged with the dependency name and published on the breaker channel', async () => {
  const events: BreakerStateEvent[] = [];
  const onState = (m: unknown): void => {
    events.push(m as BreakerStateEvent);
  };
  diagnostics.subscribe('hangproof:deps:breaker', onState);
  try {
    const d = dep();
    await openIt(d);
    await sleep(HALF_OPEN_MS + 20);
    await d.get('/ok');
    const mine = events.filter((e) => e.dependency === d.name).map((e) => `${e.from}->${e.to}`);
    assert.deepEqual(mine, ['closed->open', 'open->half-open', 'half-open->closed']);
    const logs = logged.filter((l) => l.fields.dependency === d.name);
    assert.equal(logs.find((l) => l.fields.to === 'open')?.level, 'warn');
    assert.equal(logs.find((l) => l.fields.to === 'closed')?.level, 'info');
  } finally {
    diagnostics.unsubscribe('hangproof:deps:breaker', onState);
  }
});

test('local rejections (full bulkhead, the caller giving up) never open the breaker', async () => {
  const d = dep({ bulkhead: { maxConcurrent: 1, maxQueue: 0, queueWaitMs: 0 } });
  const results = await Promise.all(Array.from({ length: 30 }, () => settle(d.get('/slow?ms=600'))));
  if (results.some((r) => r.ms > 2_000))
    console.error(`slow local rejections: ${results.map((r) => r.ms.toFixed(0)).join(',')}`);
  const rejected = results.filter((r) => r.error?.details?.reason === 'bulkhead_full');
  assert.equal(rejected.length, 29);
  assert.ok(
    rejected.every((r) => r.ms < 250 + r.stallMs),
    'rejected calls do not wait for the running one (600 ms)',
  );
  for (let i = 0; i < 10; i++) {
    await inRequest(150, () => settle(d.get('/hang')));
  }
  assert.equal(d.dependency.breakerState, 'closed');
});

test('slow successful calls count as failures and open the breaker', async () => {
  const d = dep({
    breaker: { failureRatio: 0.5, minimumCalls: 5, windowMs: 5_000, halfOpenAfterMs: HALF_OPEN_MS, slowCallMs: 40 },
  });
  for (let i = 0; i < 5; i++) {
    const res = await d.get('/slow?ms=80');
    assert.equal(res.status, 200, 'the slow call still returns its answer');
  }
  assert.equal(d.dependency.breakerState, 'open');
});

test('the breaker state machine admits one probe in half-open and releases it on a local outcome', () => {
  let now = 0;
  const changes: string[] = [];
  const b = new CircuitBreaker({
    failureRatio: 0.5,
    windowMs: 10_000,
    minimumCalls: 1,
    halfOpenAfterMs: 1_000,
    now: () => now,
    onStateChange: (from, to) => changes.push(`${from}->${to}`),
  });
  const p = b.admit();
  assert.ok(p !== undefined);
  b.failure(p);
  assert.equal(b.state, 'open');
  assert.equal(b.admit(), undefined);
  now = 999;
  assert.equal(b.admit(), undefined);
  now = 1_000;
  const probe = b.admit();
  assert.equal(probe?.probe, true);
  assert.equal(b.admit(), undefined, 'a second caller is refused while the probe runs');
  if (probe !== undefined) b.release(probe);
  const probe2 = b.admit();
  assert.equal(probe2?.probe, true, 'after a local outcome the next caller probes');
  if (probe2 !== undefined) b.success(probe2);
  assert.equal(b.state, 'closed');
  assert.deepEqual(changes, ['closed->open', 'open->half-open', 'half-open->closed']);
});
