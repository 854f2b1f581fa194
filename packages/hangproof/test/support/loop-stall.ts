import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Runs `fn` and reports the longest time this process's event loop was kept from running
 * meanwhile, in ms. A timing bound in a test adds it: no timer, the deadline's included, can fire
 * while the loop is starved (a collection, or test files in parallel on a loaded CI machine), so
 * the bound then still tests the code and not the machine.
 */
export async function measuringLoopStall<T>(fn: () => Promise<T>): Promise<{ value: T; stallMs: number }> {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  try {
    const value = await fn();
    // The histogram counts from its 10 ms sampling timer: what it adds is the delay past that.
    return { value, stallMs: Math.max(0, delay.max / 1e6 - 10) };
  } finally {
    delay.disable();
  }
}
