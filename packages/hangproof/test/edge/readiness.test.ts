import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { waitUntil } from '../support/latch.ts';
import { json, startApp } from '../support/start-app.ts';

let dbUp = true;
const started = await startApp({ deadlineMs: 2000, readinessCacheMs: 500 }, (app) => {
  app.hangproof.addReadinessCheck('db', async () => {
    if (!dbUp) throw Object.assign(new Error('down'), { code: 'DEPENDENCY_UNAVAILABLE' });
  });
  app.hangproof.addReadinessCheck('hangs', () => new Promise(() => {}), { timeoutMs: 100, critical: false });
});
after(() => started.app.close());

test('readiness runs its checks with timeouts and reports each one', async () => {
  const res = await fetch(`${started.url}/readyz`);
  assert.equal(res.status, 200, 'a failing non-critical check does not make the service unready');
  const body = await json(res);
  assert.equal(body.checks.db.ok, true);
  assert.equal(body.checks.hangs.ok, false);
  assert.equal(body.checks.hangs.error, 'DEPENDENCY_TIMEOUT');
});

test('a probe storm within the cache window runs the checks once', async () => {
  let runs = 0;
  const stormy = await startApp({ deadlineMs: 2000, readinessCacheMs: 30_000 }, (app) => {
    app.hangproof.addReadinessCheck('slowish', async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 20));
    });
  });
  try {
    const statuses = await Promise.all(
      Array.from({ length: 50 }, () => fetch(`${stormy.url}/readyz`).then((r) => r.status)),
    );
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(runs, 1, 'concurrent probes share one evaluation, later ones reuse it');
  } finally {
    await stormy.app.close();
  }
});

test('a failing critical check answers 503 with per-check status', async () => {
  dbUp = false;
  // The last answer is cached for readinessCacheMs: wait (bounded) until a probe runs the checks again.
  let res = await fetch(`${started.url}/readyz`);
  await waitUntil('a probe to see the failing check', async () => {
    if (res.status === 503) return true;
    await res.arrayBuffer();
    res = await fetch(`${started.url}/readyz`);
    return false;
  });
  const body = await json(res);
  assert.equal(body.status, 'not_ready');
  assert.equal(body.checks.db.error, 'DEPENDENCY_UNAVAILABLE');
  dbUp = true;
});
