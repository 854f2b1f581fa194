import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, test } from 'node:test';
import { currentContext, sleep, step } from 'hangproof';
import { type Latch, latch } from '../support/latch.ts';
import { assertTookLessThan, measuringFields, type Took } from '../support/loop-stall.ts';
import { startApp } from '../support/start-app.ts';

const DEADLINE_MS = 300;
let abortedSignals = 0;
/** Requests to /never announce themselves by X-Request-ID, so a test knows one is in its handler. */
const inNever = new Map<string, Latch>();
/** Opens when /late-send has tried its reply, after the deadline answered. */
const lateSendTried = latch();

const started = await startApp({ deadlineMs: DEADLINE_MS, adminToken: 'admin-token-0123456789' }, (app) => {
  app.get('/never', async (req) => {
    inNever.get(String(req.headers['x-request-id']))?.open();
    const ctx = currentContext();
    ctx?.signal.addEventListener('abort', () => abortedSignals++);
    await step('load-bots', () => new Promise(() => {}));
    return 'unreachable';
  });
  app.get('/never-sync', (_req, _reply) => {
    // A callback-style handler that forgets to reply.
  });
  app.get('/hook-hangs', { preHandler: async () => new Promise(() => {}) }, async () => 'unreachable');
  app.get('/fast', async () => ({ ok: true }));
  app.get('/aborting-step', async (req) => {
    await step('auth', () => sleep(5), { kind: 'auth' });
    await step('fetch-quotes', () => sleep(5000, req.hangproof?.signal));
    return 'unreachable';
  });
  app.get('/slow-route', { config: { hangproof: { deadlineMs: 1500 } } }, async (req) => {
    await sleep(600, req.hangproof?.signal);
    return { ok: true };
  });
  app.get('/budget', async (req) => ({ budgetMs: req.hangproof?.budgetMs }));
  app.get('/late-send', async (_req, reply) => {
    await new Promise((r) => setTimeout(r, DEADLINE_MS + 100));
    reply.send({ late: true });
    lateSendTried.open();
    return reply;
  });
});
after(() => started.app.close());

/**
 * Fetches `path`: the answer, how long it took, and the time this process's loop was starved
 * meanwhile (see measuringLoopStall), which a timing bound adds.
 */
function timed(path: string, init?: RequestInit): Promise<Took & { res: Response; body: any }> {
  return measuringFields(async () => {
    const res = await fetch(`${started.url}${path}`, init);
    return { res, body: await res.json() };
  });
}

// The first request of a fresh process also pays for the client's and the server's first use (a
// new connection, compiling the route): the timing tests below measure the deadline, not that.
before(async () => {
  assert.equal((await timed('/fast')).res.status, 200);
});

test('a handler that never resolves gets a 504 REQUEST_TIMEOUT within deadline + 250 ms', async () => {
  const took = await timed('/never');
  const { res, body } = took;
  assert.equal(res.status, 504);
  assert.equal(body.error.code, 'REQUEST_TIMEOUT');
  assert.equal(body.error.requestId, res.headers.get('x-request-id'));
  assert.ok(took.ms >= DEADLINE_MS - 5, `answered after ${took.ms} ms, before the deadline`);
  assertTookLessThan(took, DEADLINE_MS + 250, 'answered by the deadline');
  assert.equal(abortedSignals, 1, 'the handler saw its signal abort');
});

test('the timeout log line names the step in flight and the last completed step', async () => {
  const { res } = await timed('/never');
  const id = res.headers.get('x-request-id');
  const line = await started.logs.waitFor((l) => l.request_id === id && l.msg === 'request timed out');
  assert.equal(line.status, 504);
  assert.equal(line.error_code, 'REQUEST_TIMEOUT');
  assert.equal(line.step_in_flight, 'load-bots');
  assert.equal(line.route, '/never');
  assert.equal(line.level, 50, 'a 5xx is logged at error level');
});

test('a step whose work rejects at the abort is still named as the step in flight', async () => {
  const { res } = await timed('/aborting-step');
  assert.equal(res.status, 504);
  const id = res.headers.get('x-request-id');
  const line = await started.logs.waitFor((l) => l.request_id === id);
  assert.equal(line.step_in_flight, 'fetch-quotes');
  assert.equal(line.last_completed_step, 'auth');
});

test('the server keeps serving after timeouts', async () => {
  await Promise.all([timed('/never'), timed('/never')]);
  const { res, body } = await timed('/fast');
  assert.equal(res.status, 200);
  assert.deepEqual(body, { ok: true });
});

test('a callback-style handler that never replies and a hook that never ends both get the 504', async () => {
  for (const path of ['/never-sync', '/hook-hangs']) {
    const took = await timed(path);
    assert.equal(took.res.status, 504, path);
    assert.equal(took.body.error.code, 'REQUEST_TIMEOUT');
    assertTookLessThan(took, DEADLINE_MS + 250, `${path} answered by the deadline`);
  }
});

test('a reply sent after the deadline is discarded without crashing anything', async () => {
  const { res } = await timed('/late-send');
  assert.equal(res.status, 504);
  await lateSendTried.opened;
  const { res: again } = await timed('/fast');
  assert.equal(again.status, 200);
});

test('a route may set its own longer deadline', async () => {
  const { res } = await timed('/slow-route');
  assert.equal(res.status, 200);
});

test('a caller may shorten the deadline with X-Request-Timeout-Ms but never lengthen it', async () => {
  assert.equal((await timed('/budget', { headers: { 'x-request-timeout-ms': '120' } })).body.budgetMs, 120);
  assert.equal((await timed('/budget', { headers: { 'x-request-timeout-ms': '999999' } })).body.budgetMs, DEADLINE_MS);
  for (const bad of ['-5', 'abc', '1e3', '0', '12.5', '']) {
    assert.equal(
      (await timed('/budget', { headers: { 'x-request-timeout-ms': bad } })).body.budgetMs,
      DEADLINE_MS,
      bad,
    );
  }
  const shortened = await timed('/never', { headers: { 'x-request-timeout-ms': '100' } });
  assert.equal(shortened.res.status, 504);
  assertTookLessThan(shortened, 100 + 250, 'the shortened deadline answered');
});

test('a client that disconnects mid-request aborts the signal and is logged as 499', async () => {
  const id = 'client-leaves-1';
  const entered = latch();
  inNever.set(id, entered);
  const req = httpRequest(`${started.url}/never`, { headers: { 'x-request-id': id } });
  req.on('error', () => {});
  req.end();
  await entered.opened;
  req.destroy();
  const line = await started.logs.waitFor((l) => l.request_id === id);
  assert.equal(line.status, 499);
  assert.equal(line.error_code, 'CLIENT_CLOSED_REQUEST');
  assert.ok((line.duration_ms as number) < DEADLINE_MS, 'logged when the client left, not at the deadline');
});
