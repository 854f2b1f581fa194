import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HangproofError } from 'hangproof';
import { createDependencies } from 'hangproof/deps';
// The bulkhead is an internal of a dependency (not exported); its own behaviour is tested here.
import { Bulkhead } from '../../src/deps/bulkhead.ts';
import { waitUntil } from '../support/latch.js';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { inRequest, settle } from './helpers.js';
import { useTestServer } from './servers.js';

const deps = createDependencies();
let seq = 0;

const fx = useTestServer(deps);

/** Resolves once the call started first holds the bulkhead's one slot. */
function slotTaken(d: { dependency: { status(): { bulkhead: { active: number } } } }): Promise<void> {
  return waitUntil('the first call to take the slot', () => d.dependency.status().bulkhead.active === 1, 2_000, 1);
}

function dep(maxConcurrent: number, maxQueue: number, queueWaitMs: number) {
  return deps.http(`blk-${++seq}`, {
    baseUrl: fx.server.url,
    timeoutMs: 2000,
    retry: { maxAttempts: 1 },
    bulkhead: { maxConcurrent, maxQueue, queueWaitMs },
  });
}

test('beyond its slots and queue a dependency answers DEPENDENCY_UNAVAILABLE at once', async () => {
  const d = dep(2, 2, 1500);
  const results = await Promise.all(Array.from({ length: 10 }, () => settle(d.get('/slow?ms=600'))));
  const ok = results.filter((r) => r.error === undefined);
  const full = results.filter((r) => r.error?.details?.reason === 'bulkhead_full');
  assert.equal(ok.length, 4, 'two ran, two waited in the queue and then ran');
  assert.equal(full.length, 6);
  assert.ok(
    full.every(
      // At once: well before the first slot frees at 600 ms.
      (r) =>
        r.ms < 250 + r.stallMs && r.error?.code === 'DEPENDENCY_UNAVAILABLE' && r.error.details?.dependency === d.name,
    ),
  );
  assert.equal(d.dependency.status().bulkhead.rejected, 6);
});

test('a queued call waits no longer than queueWaitMs', async () => {
  const d = dep(1, 5, 80);
  const running = settle(d.get('/slow?ms=1000'));
  await slotTaken(d);
  const queued = await settle(d.get('/ok'));
  assert.equal(queued.error?.details?.reason, 'bulkhead_wait');
  assert.ok(queued.ms >= 75, `waited ${queued.ms.toFixed(1)} ms`);
  assertTookLessThan(queued, 80 + 250, 'waited too long');
  assert.equal((await running).error, undefined);
});

test("a queued call leaves the queue the moment its caller's request ends", async () => {
  const d = dep(1, 5, 5_000);
  const running = settle(d.get('/slow?ms=1000'));
  await slotTaken(d);
  const reason = new HangproofError('REQUEST_TIMEOUT');
  const queued = await inRequest(10_000, (ctx) => {
    setTimeout(() => ctx.abort(reason), 50);
    return settle(d.get('/ok'));
  });
  assert.equal(queued.error, reason);
  assertTookLessThan(queued, 50 + 250, 'left the queue in time');
  assert.equal(d.dependency.status().bulkhead.queued, 0);
  await running;
});

test('a queued call never waits past its own budget', async () => {
  const d = dep(1, 5, 5_000);
  const running = settle(d.get('/slow?ms=1500'));
  await slotTaken(d);
  const queued = await inRequest(300, () => settle(d.get('/ok')));
  assert.equal(queued.error?.code, 'DEPENDENCY_UNAVAILABLE');
  // Its budget is 200 ms (300 less the reserve); the slot frees at 1500, the queue wait is 5 s.
  assertTookLessThan(queued, 300 - 100 + 250, 'waited too long');
  await running;
});

test('a freed slot goes to the oldest waiter first', async () => {
  const b = new Bulkhead(1, 3);
  const order: number[] = [];
  const first = await b.acquire(1000, undefined);
  const waiters = [1, 2, 3].map((n) =>
    b.acquire(1000, undefined).then((release) => {
      order.push(n);
      release();
    }),
  );
  first();
  await Promise.all(waiters);
  assert.deepEqual(order, [1, 2, 3]);
  assert.equal(b.active, 0);
});
