import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDependencies, type Dependencies } from 'hangproof/deps';
import { waitUntil } from '../support/latch.ts';
import { assertTookLessThan, measuringLoopStall } from '../support/loop-stall.ts';
import { captureLogs, type StartedApp, startApp } from '../support/start-app.ts';
import { startTestServer, type TestServer } from './servers.js';

let downstream: StartedApp;
let upstream: StartedApp;
let server: TestServer;
let deps: Dependencies;

before(async () => {
  server = await startTestServer();
  // B: a hangproof service that reports the deadline it was given.
  downstream = await startApp({ deadlineMs: 5_000 }, (app) => {
    app.get('/budget', async (req) => ({ budgetMs: req.hangproof?.budgetMs, requestId: req.hangproof?.requestId }));
  });
  const { logger } = captureLogs();
  deps = createDependencies({ logger });
  const b = deps.http('service-b', { baseUrl: downstream.url, timeoutMs: 2_000 });
  const hung = deps.http('hung-api', { baseUrl: server.url, timeoutMs: 2_000, reserveMs: 500 });
  const broken = deps.http('broken-api', {
    baseUrl: server.url,
    retry: { maxAttempts: 1 },
    breaker: { minimumCalls: 3, halfOpenAfterMs: 30_000 },
  });
  deps.http('provider', {
    baseUrl: server.url,
    health: { path: '/health-hang', intervalMs: 5_000, timeoutMs: 1_000, critical: true },
  });
  // A: calls B and the misbehaving servers.
  upstream = await startApp({ deadlineMs: 1_500 }, (app) => {
    app.hangproof.addReadinessCheck('dependencies', deps.readinessCheck(), { timeoutMs: 1_000 });
    app.get('/chain', async (req) => {
      const remainingAtCall = req.hangproof?.remainingMs() ?? 0;
      const res = await b.get('/budget');
      return { remainingAtCall, b: res.json() };
    });
    app.get('/hung', async () => (await hung.get('/hang')).json());
    app.get('/broken', async () => (await broken.get('/status/503')).json());
  });
});

after(async () => {
  await deps.close();
  await upstream.app.close();
  await downstream.app.close();
  await server.close();
});

test("a chained call passes a deadline no longer than the caller's remaining budget, and the request id", async () => {
  const res = await fetch(`${upstream.url}/chain`, {
    headers: { 'x-request-timeout-ms': '400', 'x-request-id': 'chain-1' },
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { remainingAtCall: number; b: { budgetMs: number; requestId: string } };
  assert.ok(body.remainingAtCall <= 400);
  assert.ok(
    body.b.budgetMs <= body.remainingAtCall - 100 + 1,
    `B got ${body.b.budgetMs} ms of A's ${body.remainingAtCall}`,
  );
  assert.equal(body.b.requestId, 'chain-1');
});

test('a hanging dependency becomes a 503 DEPENDENCY_TIMEOUT naming it, before the 504 of the request', async () => {
  const took = await measuringLoopStall(() => fetch(`${upstream.url}/hung`));
  const res = took.value;
  assert.equal(res.status, 503);
  const body = (await res.json()) as { error: { code: string; dependency: string } };
  assert.equal(body.error.code, 'DEPENDENCY_TIMEOUT');
  assert.equal(body.error.dependency, 'hung-api');
  // The call ends at ~1000 ms, the deadline less the dependency's 500 ms reserve.
  assertTookLessThan(took, 1_000 + 250, 'answered at the call bound, inside the 1500 ms deadline');
});

test('an open breaker answers 503 DEPENDENCY_UNAVAILABLE with Retry-After', async () => {
  for (let i = 0; i < 3; i++) await fetch(`${upstream.url}/broken`).then((r) => r.arrayBuffer());
  const res = await fetch(`${upstream.url}/broken`);
  assert.equal(res.status, 503);
  const body = (await res.json()) as { error: { code: string; dependency: string; reason: string } };
  assert.equal(body.error.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(body.error.dependency, 'broken-api');
  assert.equal(body.error.reason, 'breaker_open');
  assert.ok(Number(res.headers.get('retry-after')) >= 1);
});

test('/readyz answers from the health cache quickly while a critical provider hangs', async () => {
  await waitUntil(
    'the first probe to finish',
    () => deps.readiness().dependencies.find((d) => d.name === 'provider')?.state === 'down',
  );
  const took = await measuringLoopStall(() => fetch(`${upstream.url}/readyz`));
  const res = took.value;
  assert.equal(res.status, 503);
  // A live probe would take its 1000 ms timeout.
  assertTookLessThan(took, 250, 'readyz answered from the known state, without a probe');
});
