import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, test } from 'node:test';
import { BoundedGate, GateRefusedError } from '../../src/core/bounded-gate.js';
import { currentContext, runWithContext } from '../../src/core/context-storage.js';
import { RequestContext } from '../../src/core/request-context.js';
import { HangproofError } from '../../src/errors.js';
import { assertTookLessThan, measuringLoopStall } from '../support/loop-stall.ts';

/** A wait's outcome as a promise, with the context its callback ran in. */
function waitAt(
  gate: BoundedGate,
  waitMs: number,
  abort?: RequestContext,
): Promise<{ granted: boolean; reason: unknown; ranIn: RequestContext | undefined; at: number }> {
  return new Promise((resolve) =>
    gate.acquireWith(waitMs, abort, (granted, reason) =>
      resolve({ granted, reason, ranIn: currentContext(), at: performance.now() }),
    ),
  );
}

describe('bounded gate (the pool wait, the bulkhead and the overload queue)', () => {
  test('a released slot passes to the oldest waiter; a newcomer cannot take it in between', async () => {
    const gate = new BoundedGate(1, 10);
    assert.equal(gate.tryAcquire(), true);
    const order: number[] = [];
    const first = waitAt(gate, 5_000).then((r) => {
      order.push(1);
      return r;
    });
    const second = waitAt(gate, 5_000).then((r) => {
      order.push(2);
      return r;
    });
    assert.equal(gate.waiting, 2);
    gate.release();
    assert.equal(gate.tryAcquire(), false, 'the slot went to the queue, not to the newcomer');
    assert.equal((await first).granted, true);
    gate.release();
    assert.equal((await second).granted, true);
    assert.deepEqual(order, [1, 2]);
    assert.equal(gate.held, 1);
    assert.equal(gate.waiting, 0);
  });

  test('a waiter whose bound passes is refused, never early, and leaves the queue', async () => {
    const gate = new BoundedGate(1, 10);
    gate.tryAcquire();
    const started = performance.now();
    const took = await measuringLoopStall(() => waitAt(gate, 60));
    const outcome = took.value;
    const waited = outcome.at - started;
    assert.equal(outcome.granted, false);
    assert.ok(outcome.reason instanceof GateRefusedError);
    assert.equal(outcome.reason.reason, 'timeout');
    assert.ok(waited >= 59, `refused after ${waited.toFixed(1)} ms, before its 60 ms bound`);
    assertTookLessThan({ ms: waited, stallMs: took.stallMs }, 60 + 250, 'refused at its bound, not later');
    assert.equal(gate.waiting, 0);
    assert.equal(gate.refused, 1);
    // The slot it never got is not lost: the holder's release frees it for the next caller.
    gate.release();
    assert.equal(gate.tryAcquire(), true);
  });

  test("a request's abort ends its wait with the abort's reason and takes it out of the queue", async () => {
    const gate = new BoundedGate(1, 10);
    gate.tryAcquire();
    const ctx = new RequestContext({ requestId: 'gate-abort', budgetMs: 10_000 });
    const outcome = waitAt(gate, 5_000, ctx);
    const reason = new HangproofError('REQUEST_TIMEOUT');
    ctx.abort(reason);
    const { granted, reason: got } = await outcome;
    assert.equal(granted, false);
    assert.equal(got, reason);
    assert.equal(gate.waiting, 0);
    ctx.end();
  });

  test("a waiter granted by another request's release runs in its own request's context", async () => {
    const gate = new BoundedGate(1, 10);
    const holder = new RequestContext({ requestId: 'holder', budgetMs: 10_000 });
    const waiter = new RequestContext({ requestId: 'waiter', budgetMs: 10_000 });
    runWithContext(holder, () => gate.tryAcquire());
    const outcome = runWithContext(waiter, () => waitAt(gate, 5_000));
    runWithContext(holder, () => gate.release());
    const { granted, ranIn } = await outcome;
    assert.equal(granted, true);
    assert.equal(ranIn?.requestId, 'waiter');
    holder.end();
    waiter.end();
  });

  test('a wait ends in its caller’s async context: every AsyncLocalStorage store, not only hangproof’s', async () => {
    // An application's own AsyncLocalStorage, as a tracing library keeps its context.
    const trace = new AsyncLocalStorage<string>();
    const gate = new BoundedGate(1, 10);
    const seen: Record<string, string | undefined> = {};
    const wait = (name: string, waitMs: number): Promise<boolean> =>
      trace.run(
        name,
        () =>
          new Promise<boolean>((resolve) =>
            gate.acquireWith(waitMs, undefined, (granted) => {
              seen[name] = trace.getStore();
              resolve(granted);
            }),
          ),
      );
    trace.run('holder', () => gate.tryAcquire());
    const granted = wait('granted waiter', 5_000);
    const early = wait('early waiter', 10);
    // Its bound passes on the shared timer that the early waiter's bound re-arms, in its context.
    const late = wait('late waiter', 40);
    assert.deepEqual(await Promise.all([early, late]), [false, false]);
    trace.run('holder', () => gate.release());
    assert.equal(await granted, true);
    assert.deepEqual(seen, {
      'early waiter': 'early waiter',
      'late waiter': 'late waiter',
      'granted waiter': 'granted waiter',
    });
  });

  test('a full queue and a closed gate refuse at once, before acquireWith returns', () => {
    const gate = new BoundedGate(1, 1);
    gate.tryAcquire();
    const seen: string[] = [];
    gate.acquireWith(5_000, undefined, (granted) => seen.push(`queued ${granted}`));
    gate.acquireWith(5_000, undefined, (_granted, reason) => seen.push((reason as GateRefusedError).reason));
    assert.deepEqual(seen, ['queue-full']);
    gate.close();
    assert.deepEqual(seen, ['queue-full', 'queued false']);
    gate.acquireWith(5_000, undefined, (_granted, reason) => seen.push((reason as GateRefusedError).reason));
    assert.deepEqual(seen, ['queue-full', 'queued false', 'closed']);
  });
});
