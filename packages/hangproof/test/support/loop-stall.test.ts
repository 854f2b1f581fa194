import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { measuringLoopStall } from './loop-stall.ts';

/** Keeps the loop from running for `ms`, as a collection or a starved process would. */
function blockLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: nothing else may run
  }
}

test('a stall at the very start is counted (before the probe first fires)', async () => {
  const took = await measuringLoopStall(async () => {
    blockLoop(150);
    await sleep(30);
  });
  assert.ok(took.stallMs >= 120, `stall of ${Math.round(took.stallMs)} ms counted, 150 ms blocked`);
});

test('a stall just before the end is counted (after the probe last fired)', async () => {
  const took = await measuringLoopStall(async () => {
    await sleep(25);
    blockLoop(150);
  });
  assert.ok(took.stallMs >= 120, `stall of ${Math.round(took.stallMs)} ms counted, 150 ms blocked`);
});

test('waiting on a timer is not a stall', async () => {
  // The process may really be starved now and then (other test files start beside this one), so
  // the quietest of a few waits is judged: a probe that counted waiting would count every one.
  const counted: number[] = [];
  for (let i = 0; i < 5; i++) {
    const took = await measuringLoopStall(() => sleep(100));
    assert.ok(took.ms >= 99, `took ${took.ms} ms`);
    counted.push(took.stallMs);
  }
  const quietest = Math.min(...counted);
  assert.ok(quietest < 10, `stall counted in 100 ms waits: ${counted.map(Math.round).join(', ')} ms`);
});
