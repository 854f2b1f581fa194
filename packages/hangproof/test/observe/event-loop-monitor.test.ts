import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as loopTurn } from 'node:timers/promises';
import { EventLoopMonitor, type LoopSample } from '../../src/observe/event-loop-monitor.js';

/**
 * A monitor that sheds past 100 ms of mean delay (and past `maxHeapUsedBytes`, 0: never); its own
 * timer never samples during a test.
 */
function startMonitor(t: { after(fn: () => void): void }, maxHeapUsedBytes = 0): EventLoopMonitor {
  const monitor = new EventLoopMonitor({ sampleIntervalMs: 60_000, maxEventLoopDelayMs: 100, maxHeapUsedBytes });
  t.after(() => monitor.stop());
  return monitor;
}

/**
 * Starts a new sample window, then turns the loop for two periods of the delay probe (20 ms
 * each): the probe's first firing after a reset only sets its reference point, so a block before
 * it would not be recorded.
 */
async function newWindow(monitor: EventLoopMonitor): Promise<void> {
  monitor.sample();
  for (const until = performance.now() + 40; performance.now() < until; ) await loopTurn();
}

function blockLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}

/**
 * Samples until a sample holds a delay of `atLeastMs` (the probe records a block when it next
 * fires, within its 20 ms resolution), bounded by 2 s.
 */
async function sampleHolding(monitor: EventLoopMonitor, atLeastMs: number): Promise<LoopSample> {
  for (const until = performance.now() + 2_000; performance.now() < until; ) {
    await loopTurn();
    const s = monitor.sample();
    if (s.maxMs >= atLeastMs) return s;
  }
  throw new Error(`no sample held a delay of ${atLeastMs} ms within 2 s`);
}

/** Blocks the loop 400 ms in a new window and returns the sample holding it; `afterBlock` runs in between. */
async function sampleOfBlock(monitor: EventLoopMonitor, afterBlock = (): void => {}): Promise<LoopSample> {
  await newWindow(monitor);
  blockLoop(400);
  afterBlock();
  return sampleHolding(monitor, 300);
}

test('a block of the loop past the limit raises pressure', async (t) => {
  const monitor = startMonitor(t);
  await sampleOfBlock(monitor);
  assert.equal(monitor.pressure, 'event_loop');
});

test('a block before the service starts serving (startup) raises no pressure; one after it does', async (t) => {
  const monitor = startMonitor(t);
  let servingAt = 0;
  const startup = await sampleOfBlock(monitor, () => {
    servingAt = performance.now();
    monitor.servingFrom(servingAt);
  });
  assert.ok(startup.meanMs > 100, `the startup block is in the sample (mean ${startup.meanMs} ms)`);
  assert.equal(monitor.pressure, undefined, 'startup is not load');

  // Samples whose window began at least two probe periods after serving began are judged again.
  while (performance.now() < servingAt + 40) await loopTurn();
  await sampleOfBlock(monitor);
  assert.equal(monitor.pressure, 'event_loop');
});

test('serving drops a pressure that startup already raised', async (t) => {
  const monitor = startMonitor(t);
  await sampleOfBlock(monitor);
  assert.equal(monitor.pressure, 'event_loop');
  monitor.servingFrom();
  assert.equal(monitor.pressure, undefined);
});

test('the heap is judged right after serving begins: a heap over its limit is one now', async (t) => {
  const monitor = startMonitor(t, 1);
  monitor.servingFrom();
  monitor.sample();
  assert.equal(monitor.pressure, 'heap');
});
