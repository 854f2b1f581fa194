import assert from 'node:assert/strict';
import * as diagnostics from 'node:diagnostics_channel';
import { after, before, describe, test } from 'node:test';
import { type DependencyCallEvent, HangproofError } from 'hangproof';
import { createDependencies, type HttpDependencyOptions } from 'hangproof/deps';
import { waitUntil } from '../support/latch.js';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { inRequest, settle } from './helpers.js';
import { refusedUrl, startSilentTcpServer, startTestServer, type TestServer } from './servers.js';

let server: TestServer;
let silent: Awaited<ReturnType<typeof startSilentTcpServer>>;
let refused: string;
const deps = createDependencies();
let seq = 0;

before(async () => {
  server = await startTestServer();
  silent = await startSilentTcpServer();
  refused = await refusedUrl();
});

after(async () => {
  await deps.close();
  await server.close();
  await silent.close();
});

/** A fresh dependency per case, so breakers and budgets of one case never affect another. */
function dep(options: Partial<HttpDependencyOptions> = {}) {
  return deps.http(`dep-${++seq}`, { baseUrl: server.url, timeoutMs: 300, ...options });
}

/** How late past its bound a call may end on a loaded machine: far below the 2-3 s it would take unbounded. */
const SLACK_MS = 250;

const failures = [
  { what: 'accepts the request and never answers', path: '/hang', code: 'DEPENDENCY_TIMEOUT' },
  { what: 'answers after a long delay', path: '/slow?ms=3000', code: 'DEPENDENCY_TIMEOUT' },
  { what: 'resets the connection', path: '/reset', code: 'DEPENDENCY_UNAVAILABLE', reason: 'connection_reset' },
  {
    what: 'closes the socket without answering',
    path: '/destroy',
    code: 'DEPENDENCY_UNAVAILABLE',
    reason: 'connection_reset',
  },
  { what: 'answers 503', path: '/status/503', code: 'DEPENDENCY_UNAVAILABLE', reason: 'status_503' },
  { what: 'answers 500', path: '/status/500', code: 'DEPENDENCY_UNAVAILABLE', reason: 'status_500' },
] as const;

describe('outside a request a call ends within its timeout + 250 ms with the right code and dependency', () => {
  for (const f of failures) {
    test(`when the server ${f.what}`, async () => {
      const d = dep();
      const r = await settle(d.get(f.path));
      assert.equal(r.error?.code, f.code);
      assert.equal(r.error?.details?.dependency, d.name);
      if ('reason' in f) assert.equal(r.error?.details?.reason, f.reason);
      assertTookLessThan(r, 300 + SLACK_MS, 'answered in time');
    });
  }

  test('when the port accepts TCP connections but never speaks HTTP', async () => {
    const d = deps.http(`dep-${++seq}`, { baseUrl: silent.url, timeoutMs: 300 });
    const r = await settle(d.get('/anything'));
    assert.equal(r.error?.code, 'DEPENDENCY_TIMEOUT');
    assert.equal(r.error?.details?.dependency, d.name);
    assertTookLessThan(r, 300 + SLACK_MS, 'answered in time');
    assert.ok(silent.accepted() >= 1);
  });

  test('when the connection is refused', async () => {
    const d = deps.http(`dep-${++seq}`, { baseUrl: refused, timeoutMs: 300 });
    const r = await settle(d.get('/x'));
    assert.equal(r.error?.code, 'DEPENDENCY_UNAVAILABLE');
    assert.equal(r.error?.details?.reason, 'connection_refused');
    assertTookLessThan(r, 300 + SLACK_MS, 'answered in time');
  });
});

describe('inside a request a call ends within min(timeout, remaining budget) + 250 ms', () => {
  for (const f of failures) {
    test(`when the server ${f.what}`, async () => {
      const d = dep({ timeoutMs: 2000 });
      const r = await inRequest(250, () => settle(d.get(f.path)));
      assert.equal(r.error?.code, f.code);
      assert.equal(r.error?.details?.dependency, d.name);
      assertTookLessThan(r, 250 + SLACK_MS, 'answered in time');
    });
  }

  test('the dependency timeout binds when it is shorter than the request budget', async () => {
    const d = dep({ timeoutMs: 200 });
    const r = await inRequest(5000, () => settle(d.get('/hang')));
    assert.equal(r.error?.code, 'DEPENDENCY_TIMEOUT');
    assert.ok(r.ms >= 190, `took ${r.ms.toFixed(1)} ms`);
    assertTookLessThan(r, 200 + SLACK_MS, 'answered in time');
  });

  test('the call ends before the request deadline, leaving the reserve to answer with a clear error', async () => {
    const d = dep({ timeoutMs: 5000, reserveMs: 400 });
    const r = await inRequest(1000, async (ctx) => {
      const out = await settle(d.get('/hang'));
      return { ...out, aborted: ctx.signal.aborted };
    });
    assert.equal(r.error?.code, 'DEPENDENCY_TIMEOUT');
    assert.equal(r.aborted, false, 'the request itself has not timed out yet');
    // Ends at ~600 ms (the budget less the reserve); the bound stays below the 1000 ms deadline.
    assertTookLessThan(r, 1000 - 400 + SLACK_MS, 'answered in time');
  });

  test('a request whose budget is already spent fails at once without calling the dependency', async () => {
    const d = dep({ timeoutMs: 5000, reserveMs: 2000 });
    const before = server.count('/ok');
    // 1500 ms left, less than the 2000 ms reserve: nothing is left for the call.
    const r = await inRequest(1500, () => settle(d.get('/ok')));
    assert.equal(r.error?.code, 'DEPENDENCY_TIMEOUT');
    assert.equal(server.count('/ok'), before);
    assertTookLessThan(r, SLACK_MS, 'answered without waiting out the 1500 ms left of the request');
  });

  test("a caller whose request is aborted mid-call gets the request's own reason, not a dependency failure", async () => {
    const d = dep({ timeoutMs: 2000, breaker: { minimumCalls: 1, failureRatio: 0.1 } });
    const reason = new HangproofError('REQUEST_TIMEOUT');
    const r = await inRequest(5000, (ctx) => {
      setTimeout(() => ctx.abort(reason), 100);
      return settle(d.get('/hang'));
    });
    assert.equal(r.error, reason);
    assertTookLessThan(r, 100 + SLACK_MS, 'answered in time');
    assert.equal(d.dependency.breakerState, 'closed', 'a local abort is not a dependency failure');
    const status = d.dependency.status();
    assert.deepEqual(status.calls.failed, { REQUEST_TIMEOUT: 1 });
  });
});

test('one call timing out never aborts another call to the same dependency', async () => {
  const d = dep({ timeoutMs: 3000 });
  const settled: string[] = [];
  const hangsBefore = server.count('/hang');
  // The first call's time is 400 ms (its request's budget less the reserve); the second's is 3 s.
  const first = inRequest(500, () => settle(d.get('/hang'))).finally(() => settled.push('first'));
  await waitUntil('the first call to reach the server', () => server.count('/hang') > hangsBefore);
  // Answered 800 ms after it arrives: after the first call, sent earlier, timed out at 400.
  const second = settle(d.get('/slow?ms=800')).finally(() => settled.push('second'));
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.error?.code, 'DEPENDENCY_TIMEOUT');
  assert.deepEqual(settled, ['first', 'second'], 'the second call was in flight when the first timed out');
  assert.equal(b.error, undefined);
  assert.equal(b.value?.status, 200);
});

test('the remaining budget and the request id reach the downstream server, within the caller budget', async () => {
  const d = dep({ timeoutMs: 2000 });
  const r = await inRequest(
    800,
    async (ctx) => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const remainingAtCall = ctx.remainingMs();
      const res = await d.get('/ok');
      return { remainingAtCall, res };
    },
    'req-budget-42',
  );
  assert.equal(r.res.status, 200);
  const seen = server.seen.filter((s) => s.path === '/ok' && s.headers['x-request-id'] === 'req-budget-42');
  assert.equal(seen.length, 1);
  const header = Number(seen[0]?.headers['x-request-timeout-ms']);
  assert.ok(Number.isInteger(header) && header > 0, `header ${header}`);
  assert.ok(header <= r.remainingAtCall, `header ${header} > remaining ${r.remainingAtCall}`);
  assert.ok(header <= r.remainingAtCall - 100 + 1, 'the reserve is kept back');
});

test('outside a request the budget header is the dependency timeout and no request id is sent', async () => {
  const d = dep({ timeoutMs: 700 });
  const before = server.seen.length;
  await d.get('/ok');
  const seen = server.seen.slice(before).find((s) => s.path === '/ok');
  assert.ok(seen !== undefined);
  assert.ok(Number(seen.headers['x-request-timeout-ms']) <= 700);
  assert.equal(seen.headers['x-request-id'], undefined);
});

test('each call records an external span named after the dependency and is published on the channel', async () => {
  const d = dep();
  const events: DependencyCallEvent[] = [];
  const onCall = (m: unknown): void => {
    const e = m as DependencyCallEvent;
    if (e.dependency === d.name) events.push(e);
  };
  diagnostics.subscribe('hangproof:deps:call', onCall);
  try {
    const spans = await inRequest(2000, async (ctx) => {
      const res = await d.get('/ok');
      assert.deepEqual(res.json(), { ok: true });
      await d.get('/status/503').catch(() => {});
      return ctx.spans;
    });
    const mine = spans.filter((s) => s.name === d.name);
    assert.equal(mine.length, 2);
    assert.ok(mine.every((s) => s.kind === 'external'));
    assert.deepEqual(
      events.map((e) => e.outcome),
      ['ok', 'DEPENDENCY_UNAVAILABLE'],
    );
  } finally {
    diagnostics.unsubscribe('hangproof:deps:call', onCall);
  }
});

test('a 4xx answer is returned to the caller, not turned into a failure', async () => {
  const d = dep();
  const res = await d.get('/status/404');
  assert.equal(res.status, 404);
  assert.equal(res.ok, false);
  assert.equal(d.dependency.status().calls.ok, 1);
});

test('a response body larger than maxResponseBytes fails the call instead of filling memory', async () => {
  const d = dep({ maxResponseBytes: 1024 });
  const r = await settle(d.get('/big?bytes=100000'));
  assert.equal(r.error?.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(r.error?.details?.reason, 'response_too_large');
});

test('a non-HTTP call that ignores its signal still ends at its timeout', async () => {
  const sdk = deps.define(`sdk-${++seq}`, { timeoutMs: 200 });
  const r = await settle(sdk.call(() => new Promise(() => {})));
  assert.equal(r.error?.code, 'DEPENDENCY_TIMEOUT');
  assert.equal(r.error?.details?.dependency, sdk.name);
  assertTookLessThan(r, 200 + SLACK_MS, 'answered in time');
});

test('a non-HTTP error that isFailure rejects passes through unchanged and is not counted', async () => {
  class NotFound extends Error {}
  const sdk = deps.define(`sdk-${++seq}`, {
    timeoutMs: 200,
    isFailure: (e) => !(e instanceof NotFound),
    breaker: { minimumCalls: 1, failureRatio: 0.1 },
  });
  const notFound = new NotFound('no such user');
  await assert.rejects(
    deps.call(sdk.name, async () => {
      throw notFound;
    }),
    (e) => e === notFound,
  );
  assert.equal(sdk.breakerState, 'closed');
});

test('invalid options fail at declaration with an error naming the value', () => {
  assert.throws(() => deps.http('bad-1', { baseUrl: server.url, timeoutMs: -1 }), RangeError);
  assert.throws(() => deps.http('bad-2', { baseUrl: 'ftp://x' }), TypeError);
  assert.throws(() => deps.http('bad-3', { baseUrl: server.url, timeoutMs: 100, attemptTimeoutMs: 200 }), RangeError);
  assert.throws(() => deps.http('bad-4', { baseUrl: server.url, breaker: { failureRatio: 1 } }), RangeError);
  assert.throws(() => deps.http('bad name', { baseUrl: server.url }), TypeError);
  assert.throws(
    () => deps.define('bad-5', { health: { intervalMs: 100, timeoutMs: 100, probe: async () => {} } }),
    RangeError,
  );
});
