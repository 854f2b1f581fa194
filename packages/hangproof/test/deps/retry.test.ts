import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HangproofError } from 'hangproof';
import { createDependencies, type HttpDependencyOptions } from 'hangproof/deps';
import { createBackoff } from '../../src/deps/cockatiel-parts.js';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { inRequest, settle } from './helpers.js';
import { seededRandom } from './seeded-random.js';
import { useTestServer } from './servers.js';

const deps = createDependencies();
let seq = 0;

const fx = useTestServer(deps);

/** Breakers set out of the way (they are tested elsewhere) so only retry behaviour shows. */
const NO_BREAKER = { failureRatio: 0.99, minimumCalls: 1_000_000 } as const;

function dep(options: Partial<HttpDependencyOptions> = {}) {
  return deps.http(`rty-${++seq}`, { baseUrl: fx.server.url, timeoutMs: 2000, breaker: NO_BREAKER, ...options });
}

/** Requests the server saw for one call, told apart by a per-call header. */
function attemptsOf(callId: string) {
  return fx.server.seen.filter((s) => s.headers['x-call'] === callId);
}

test('a POST is never retried, whatever the failure', async () => {
  const d = dep({ retry: { maxAttempts: 5, initialDelayMs: 1 } });
  for (const path of ['/status/503', '/reset', '/status/502']) {
    const id = `post-${path}`;
    const r = await settle(d.post(path, { order: 1 }, { headers: { 'x-call': id } }));
    assert.equal(r.error?.code, 'DEPENDENCY_UNAVAILABLE');
    assert.equal(attemptsOf(id).length, 1, `POST ${path} reached the server ${attemptsOf(id).length} times`);
  }
});

test('a POST marked idempotent is retried', async () => {
  const d = dep({ retry: { maxAttempts: 3, initialDelayMs: 1 } });
  const r = await settle(d.post('/status/503', { order: 1 }, { headers: { 'x-call': 'post-idem' }, idempotent: true }));
  assert.equal(r.error?.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(attemptsOf('post-idem').length, 3);
});

test('the backoff is full jitter under an exponential bound: floor(random x bound), the bound doubling up to maxDelayMs', (t) => {
  // The jitter draws Math.random; a seeded sequence makes the expected delays exact.
  const expected = seededRandom(17);
  t.mock.method(Math, 'random', seededRandom(17));
  const backoff = createBackoff(100, 1000);
  const delays = Array.from({ length: 6 }, () => backoff.next());
  const bounds = [100, 200, 400, 800, 1000, 1000];
  assert.deepEqual(
    delays,
    bounds.map((bound) => Math.floor(expected() * bound)),
  );
  // Over many sequences the second delay averages twice the first: the bound grows exponentially.
  const first: number[] = [];
  const second: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const b = createBackoff(100, 1000);
    first.push(b.next());
    second.push(b.next());
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(Math.abs(mean(first) - 49.5) < 3, `first delays average ${mean(first)} ms`);
  assert.ok(Math.abs(mean(second) - 99.5) < 5, `second delays average ${mean(second)} ms`);
  assert.ok(new Set(first).size > 90, 'delays are jittered over the whole range, not fixed');
});

test('a GET is retried on 503 with full-jitter exponential backoff, up to maxAttempts', async (t) => {
  t.mock.method(Math, 'random', seededRandom(42));
  const d = dep({
    // maxDelayMs far above the first two bounds: a delay drawn under it would show in the gaps.
    retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 10_000, budgetMinRetries: 1000 },
    bulkhead: { maxConcurrent: 30, maxQueue: 0 },
  });
  const calls = Array.from({ length: 30 }, (_, i) => `get-${i}`);
  const results = await Promise.all(calls.map((id) => settle(d.get('/status/503', { headers: { 'x-call': id } }))));
  assert.ok(
    results.every((r) => r.error?.code === 'DEPENDENCY_UNAVAILABLE' && r.error.details?.reason === 'status_503'),
  );
  const firstGaps: number[] = [];
  const secondGaps: number[] = [];
  for (const id of calls) {
    const seen = attemptsOf(id);
    assert.equal(seen.length, 3);
    firstGaps.push((seen[1]?.at ?? 0) - (seen[0]?.at ?? 0));
    secondGaps.push((seen[2]?.at ?? 0) - (seen[1]?.at ?? 0));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  // The first delay is below 100 ms, the second below 200 ms (the backoff test above checks the
  // distribution exactly). Upper bounds with slack for a loaded shared machine: event-loop lag
  // adds to every gap (seen at 250-400 ms for every first gap with another test file running).
  assert.ok(median(firstGaps) < 100 + 500, `first gaps ${firstGaps.map(Math.round)}`);
  assert.ok(Math.max(...firstGaps) < 100 + 1500, `first gaps ${firstGaps.map(Math.round)}`);
  assert.ok(Math.max(...secondGaps) < 200 + 1500, `second gaps ${secondGaps.map(Math.round)}`);
});

test('a 500 is not retried: it is an answer, not a transient failure', async () => {
  const d = dep({ retry: { maxAttempts: 3, initialDelayMs: 1 } });
  await settle(d.get('/status/500', { headers: { 'x-call': 'get-500' } }));
  assert.equal(attemptsOf('get-500').length, 1);
});

test('connection resets are retried for a GET', async () => {
  const d = dep({ retry: { maxAttempts: 3, initialDelayMs: 1 } });
  const r = await settle(d.get('/reset', { headers: { 'x-call': 'get-reset' } }));
  assert.equal(r.error?.details?.reason, 'connection_reset');
  assert.equal(attemptsOf('get-reset').length, 3);
});

test('the retry budget caps total attempts under a sustained outage', async () => {
  const d = dep({
    retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 5, budgetRatio: 0.1, budgetMinRetries: 10 },
    bulkhead: { maxConcurrent: 20, maxQueue: 0 },
  });
  const before = fx.server.count('/status/503');
  for (let batch = 0; batch < 10; batch++) {
    await Promise.all(Array.from({ length: 20 }, () => settle(d.get('/status/503'))));
  }
  const attempts = fx.server.count('/status/503') - before;
  const status = d.dependency.status();
  console.log(
    `retry budget: 200 calls made ${attempts} attempts; ${status.calls.retryBudgetExhausted} retries refused`,
  );
  assert.ok(attempts >= 200 + 10, `some retries were allowed (${attempts})`);
  assert.ok(attempts <= 200 * 1.1 + 10, `${attempts} attempts for 200 calls`);
  assert.equal(status.calls.attempts, attempts);
  assert.ok(status.calls.retryBudgetExhausted > 0);
});

test('a retry is never started when it cannot finish within the call budget', async () => {
  const d = dep({
    timeoutMs: 500,
    attemptTimeoutMs: 200,
    retry: { maxAttempts: 5, initialDelayMs: 1, maxDelayMs: 5 },
  });
  const r = await settle(d.get('/hang', { headers: { 'x-call': 'hang-retry' } }));
  assert.equal(r.error?.code, 'DEPENDENCY_TIMEOUT');
  assert.equal(attemptsOf('hang-retry').length, 2, 'two 200 ms tries fit in 500 ms, a third does not');
  assertTookLessThan(r, 500 + 250, 'answered in time');
});

test('a backoff sleep ends the moment the caller gives up, without another attempt', async (t) => {
  // The jitter draws Math.random: pinned, the first backoff sleep is 0.5 x 2000 = 1000 ms.
  t.mock.method(Math, 'random', () => 0.5);
  const sdk = deps.define(`sdk-${++seq}`, {
    timeoutMs: 10_000,
    retry: { maxAttempts: 10, initialDelayMs: 2000, maxDelayMs: 4000, budgetMinRetries: 100 },
    breaker: NO_BREAKER,
  });
  let attempts = 0;
  const reason = new HangproofError('CLIENT_CLOSED_REQUEST');
  const r = await inRequest(20_000, (ctx) => {
    setTimeout(() => ctx.abort(reason), 150);
    return settle(
      sdk.call(
        async () => {
          attempts++;
          throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
        },
        { idempotent: true },
      ),
    );
  });
  assert.equal(r.error, reason);
  assertTookLessThan(r, 150 + 250, 'answered without the 1000 ms backoff');
  const attemptsAtAbort = attempts;
  assert.equal(attemptsAtAbort, 1, 'the caller gave up during the first backoff sleep');
  // Let the time pass at which the second attempt would have started (~1000 ms after the first).
  await new Promise((resolve) => setTimeout(resolve, 1000 + 250));
  assert.equal(attempts, attemptsAtAbort, 'no attempt after the caller gave up');
});

test('a non-HTTP call is retried only when marked idempotent', async () => {
  const sdk = deps.define(`sdk-${++seq}`, {
    timeoutMs: 1000,
    retry: { maxAttempts: 3, initialDelayMs: 1 },
    breaker: NO_BREAKER,
  });
  let attempts = 0;
  const failing = async (): Promise<never> => {
    attempts++;
    throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
  };
  await settle(sdk.call(failing));
  assert.equal(attempts, 1);
  attempts = 0;
  const r = await settle(sdk.call(failing, { idempotent: true }));
  assert.equal(attempts, 3);
  assert.equal(r.error?.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(r.error?.details?.reason, 'connection_refused');
});
