import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** How long something took, and the longest time this process's loop was starved meanwhile, in ms. */
export interface Took {
  readonly ms: number;
  readonly stallMs: number;
}

/** Period of the loop-delay probe, in ms. */
const PROBE_MS = 10;

/**
 * Runs `fn` and reports how long it took and how long this process's event loop was kept from
 * running meanwhile, in ms. A timing bound adds the stall (see assertTookLessThan): no timer, the
 * deadline's included, can fire while the loop is starved (a collection, or test files in
 * parallel on a loaded CI machine), so the bound then still tests the code and not the machine.
 * The stall is the sum of all the starved time, not the longest single stall: a late deadline
 * timer, then the answer's write and the client's read, can each wait behind a stall of their own.
 */
export async function measuringLoopStall<T>(fn: () => Promise<T>): Promise<Took & { value: T }> {
  const delay = monitorEventLoopDelay({ resolution: PROBE_MS });
  delay.enable();
  const started = performance.now();
  try {
    const value = await fn();
    // Each sample is one probe period as it ran: what the samples add past the period is starved time.
    const starvedMs = delay.count === 0 ? 0 : (delay.mean / 1e6 - PROBE_MS) * delay.count;
    return { value, ms: performance.now() - started, stallMs: Math.max(0, starvedMs) };
  } finally {
    delay.disable();
  }
}

/**
 * Asserts that `took` stayed under `boundMs` plus the time the loop was starved meanwhile (see
 * measuringLoopStall): a bound on the code under test, not on the machine.
 */
export function assertTookLessThan(took: Took, boundMs: number, message = 'took too long'): void {
  assert.ok(
    took.ms < boundMs + took.stallMs,
    `${message} (${Math.round(took.ms)} ms; bound ${boundMs} ms + ${Math.round(took.stallMs)} ms of loop stall)`,
  );
}
