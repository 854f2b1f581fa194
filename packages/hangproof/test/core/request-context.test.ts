import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  currentContext,
  HangproofError,
  operationBudgetMs,
  RequestContext,
  runWithBudget,
  runWithContext,
  sleep,
  step,
  watchSignal,
} from 'hangproof';
import pg from 'pg';

test('the signal aborts with REQUEST_TIMEOUT once the budget is spent', async () => {
  const ctx = new RequestContext({ requestId: 'r1', budgetMs: 30 });
  await assert.rejects(sleep(1000, ctx.signal), { code: 'REQUEST_TIMEOUT' });
  assert.equal(ctx.remainingMs(), 0);
});

test('operation budgets never exceed what is left of the request, minus the reserve', async () => {
  const ctx = new RequestContext({ requestId: 'r2', budgetMs: 200 });
  runWithContext(ctx, () => {
    const budget = operationBudgetMs(5000, 50);
    assert.ok(budget <= 150 && budget > 100, `budget ${budget}`);
  });
  assert.equal(operationBudgetMs(5000, 50), 5000, 'outside a request the configured limit applies');
  ctx.end();
});

test('a step records a span and becomes the last completed step; a failing one is named in flight until it ends', async () => {
  const ctx = new RequestContext({ requestId: 'r3', budgetMs: 1000 });
  await runWithContext(ctx, async () => {
    await step('auth', async () => sleep(5), { kind: 'auth' });
    const pending = step('load', () => sleep(20));
    assert.equal(currentContext()?.stepInFlight, 'load');
    await pending;
  });
  assert.deepEqual(
    ctx.spans.map((s) => s.name),
    ['auth', 'load'],
  );
  assert.equal(ctx.lastCompletedStep, 'load');
  assert.equal(ctx.stepInFlight, undefined);
  ctx.end();
});

test('runWithBudget rejects at the deadline even when the work ignores its signal', async () => {
  const started = performance.now();
  await assert.rejects(
    runWithBudget('stuck-job', 50, () => new Promise(() => {})),
    { code: 'REQUEST_TIMEOUT' },
  );
  assert.ok(performance.now() - started < 300);
});

test('the harness database is a real Postgres', async () => {
  const c = new pg.Client({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 5000 });
  await c.connect();
  const { rows } = await c.query('SHOW server_version_num');
  await c.end();
  assert.ok(Number(rows[0].server_version_num) >= 180000);
});

test('watchAbort calls each watcher once with the reason, and not after it stopped watching', () => {
  const ctx = new RequestContext({ requestId: 'watch-1', budgetMs: 10_000 });
  const seen: unknown[] = [];
  ctx.watchAbort((reason) => seen.push(reason));
  const stop = ctx.watchAbort(() => seen.push('stopped watcher'));
  stop();
  const reason = new HangproofError('CLIENT_CLOSED_REQUEST');
  ctx.abort(reason);
  ctx.abort(new HangproofError('REQUEST_TIMEOUT'));
  assert.deepEqual([...seen], [reason]);
  // Like an AbortSignal listener: a watcher added after the abort is not called; check `aborted`.
  ctx.watchAbort(() => seen.push('late'));
  assert.equal(ctx.aborted, true);
  assert.equal(ctx.abortReason, reason);
  assert.deepEqual(seen, [reason]);
  ctx.end();
});

test('a watcher added twice is called once, and one stopped by an earlier watcher during the abort is skipped', () => {
  const ctx = new RequestContext({ requestId: 'watch-3', budgetMs: 10_000 });
  const seen: string[] = [];
  let stopSecond: () => void = () => {};
  const third = (): number => seen.push('third');
  const twice = (): number => seen.push('twice');
  ctx.addAbortWatcher(() => {
    seen.push('first');
    stopSecond();
    ctx.unwatchAbort(third);
  });
  stopSecond = ctx.watchAbort(() => seen.push('second'));
  ctx.addAbortWatcher(third);
  ctx.addAbortWatcher(twice);
  ctx.addAbortWatcher(twice);
  ctx.abort(new HangproofError('REQUEST_TIMEOUT'));
  assert.deepEqual(seen, ['first', 'twice']);
  ctx.end();
});

test('an ended context calls no watcher, whether added before or after end()', () => {
  const ctx = new RequestContext({ requestId: 'watch-2', budgetMs: 10_000 });
  const seen: string[] = [];
  ctx.watchAbort(() => seen.push('before end'));
  ctx.end();
  const stop = ctx.watchAbort(() => seen.push('after end'));
  stop();
  ctx.abort(new HangproofError('REQUEST_TIMEOUT'));
  assert.deepEqual(seen, []);
  assert.equal(ctx.aborted, false);
});

test('end() lets go of the watchers, so a context kept after its request does not keep the reply alive', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const ctx = new RequestContext({ requestId: 'watch-4', budgetMs: 10_000 });
  const held = ((): WeakRef<object> => {
    const reply = { body: 'x'.repeat(1024) };
    ctx.watchAbort(() => reply.body.length);
    return new WeakRef(reply);
  })();
  ctx.end();
  await setImmediatePromise();
  gc();
  assert.equal(
    held.deref(),
    undefined,
    'the watcher (and the reply it closes over) is still held by the ended context',
  );
  assert.equal(ctx.ended, true);
});

test('a watcher stopped by an earlier watcher during the abort is not called', () => {
  const ctx = new RequestContext({ requestId: 'watch-3', budgetMs: 10_000 });
  const seen: string[] = [];
  let stopSecond = (): void => {};
  ctx.watchAbort(() => {
    seen.push('first');
    stopSecond();
  });
  stopSecond = ctx.watchAbort(() => seen.push('second'));
  ctx.abort(new HangproofError('CLIENT_CLOSED_REQUEST'));
  ctx.end();
  assert.deepEqual(seen, ['first']);
});

test('watchSignal adapts an AbortSignal to the same contract', () => {
  const controller = new AbortController();
  const watch = watchSignal(controller.signal);
  assert.ok(watch !== undefined);
  const seen: unknown[] = [];
  watch.watchAbort((reason) => seen.push(reason));
  const stop = watch.watchAbort(() => seen.push('stopped watcher'));
  stop();
  assert.equal(watch.aborted, false);
  controller.abort('gone');
  assert.deepEqual(seen, ['gone']);
  assert.equal(watch.aborted, true);
  assert.equal(watch.abortReason, 'gone');
  assert.equal(watchSignal(undefined), undefined);
});
