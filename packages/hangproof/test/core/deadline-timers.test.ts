import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { DeadlineTimers } from '../../src/core/deadline-timers.js';

/** A target that records when its deadline came and resolves once it has. */
function target(): { onDeadline(): void; firedAt: number | undefined; fired: Promise<void> } {
  let resolve: () => void = () => {};
  const t = {
    firedAt: undefined as number | undefined,
    fired: new Promise<void>((r) => {
      resolve = r;
    }),
    onDeadline(): void {
      t.firedAt = performance.now();
      resolve();
    },
  };
  return t;
}

describe('deadline timers (one timer for every request)', () => {
  test('each deadline fires once, never early and within a generous bound, whatever the order of durations', async () => {
    const timers = new DeadlineTimers();
    const start = performance.now();
    const durations = [120, 30, 75, 30, 5, 200];
    const targets = durations.map((ms) => ({ ms, t: target(), entry: undefined as unknown }));
    for (const x of targets) x.entry = timers.schedule(x.t, x.ms);
    assert.equal(timers.size, durations.length);
    await Promise.all(targets.map((x) => x.t.fired));
    for (const { ms, t } of targets) {
      const after = (t.firedAt as number) - start;
      assert.ok(after >= ms - 1, `a ${ms} ms deadline fired after ${after.toFixed(1)} ms`);
      assert.ok(after < ms + 250, `a ${ms} ms deadline fired only after ${after.toFixed(1)} ms`);
    }
    assert.equal(timers.size, 0);
  });

  test('a cancelled deadline never fires; the others still do', async () => {
    const timers = new DeadlineTimers();
    const cancelled = target();
    const kept = target();
    const entry = timers.schedule(cancelled, 20);
    timers.schedule(kept, 60);
    timers.cancel(entry);
    timers.cancel(entry);
    await kept.fired;
    assert.equal(cancelled.firedAt, undefined);
    assert.equal(timers.size, 0);
  });

  test('a target runs in the async context it was scheduled in, not in the one that armed the shared timer', async () => {
    // An application's own AsyncLocalStorage, as a tracing library keeps its context.
    const trace = new AsyncLocalStorage<string>();
    const timers = new DeadlineTimers();
    const first = target();
    const second = target();
    const seen: (string | undefined)[] = [];
    const record = (t: ReturnType<typeof target>) => ({
      onDeadline(): void {
        seen.push(trace.getStore());
        t.onDeadline();
      },
    });
    // The first arms the timer; the second, due later, is reached by the timer the first's
    // firing re-arms, inside the first's context.
    trace.run('first request', () => timers.schedule(record(first), 10));
    trace.run('second request', () => timers.schedule(record(second), 40));
    await Promise.all([first.fired, second.fired]);
    assert.deepEqual(seen, ['first request', 'second request']);
  });

  test('a pending deadline keeps the process alive; once every deadline is cancelled it does not', () => {
    const url = new URL('../../src/core/deadline-timers.ts', import.meta.url).href;
    const run = (body: string): { status: number | null; ms: number } => {
      const started = performance.now();
      const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', body], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(child.error, undefined);
      return { status: child.status, ms: performance.now() - started };
    };
    const pending = run(
      `const { deadlineTimers } = await import('${url}'); deadlineTimers.schedule({ onDeadline() { process.exitCode = 7; } }, 300);`,
    );
    assert.equal(pending.status, 7, 'the process waited for the deadline');
    const cancelled = run(
      `const { deadlineTimers } = await import('${url}'); const e = deadlineTimers.schedule({ onDeadline() { process.exitCode = 7; } }, 60_000); deadlineTimers.cancel(e);`,
    );
    assert.equal(cancelled.status, 0, 'the cancelled deadline never fired');
    assert.ok(cancelled.ms < 20_000, `the process stayed ${Math.round(cancelled.ms)} ms for a cancelled deadline`);
  });
});
