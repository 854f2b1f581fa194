import assert from 'node:assert/strict';

/** How long something took, and the time this process's loop was starved meanwhile, in ms. */
export interface Took {
  readonly ms: number;
  readonly stallMs: number;
}

/** Period of the loop probe, in ms. */
const PROBE_MS = 10;
/** Lateness of one probe that is only the timers' own granularity, not a stall, in ms. */
const TIMER_SLACK_MS = 1;

/**
 * Runs `fn` and reports how long it took and how long this process's event loop was kept from
 * running meanwhile, in ms. A timing bound adds the stall (see assertTookLessThan): no timer, the
 * deadline's included, can fire while the loop is starved (a collection, first-call compilation,
 * or test files in parallel on a loaded CI machine), so the bound then still tests the code and
 * not the machine. The stall is all the starved time, not the longest single stall: a late
 * deadline timer, then the answer's write and the client's read, can each wait behind their own.
 *
 * Why a probe of its own and not perf_hooks' monitorEventLoopDelay: that histogram records the
 * gaps between its timer's firings only, so a stall before its first firing (right at the start,
 * where the deadline is set) or after its last one (just before the answer) is never counted.
 * Here the probe's due time is known from the start, and the end counts how overdue it is.
 */
export async function measuringLoopStall<T>(fn: () => Promise<T>): Promise<Took & { value: T }> {
  const started = performance.now();
  let starvedMs = 0;
  let dueAt = started + PROBE_MS;
  const lateness = (now: number): number => Math.max(0, now - dueAt - TIMER_SLACK_MS);
  const probe = setInterval(() => {
    const now = performance.now();
    starvedMs += lateness(now);
    dueAt = now + PROBE_MS;
  }, PROBE_MS);
  try {
    const value = await fn();
    const ended = performance.now();
    return { value, ms: ended - started, stallMs: starvedMs + lateness(ended) };
  } finally {
    clearInterval(probe);
  }
}

/** measuringLoopStall for work that answers an object: its fields, with `ms` and `stallMs` beside them. */
export async function measuringFields<T extends object>(fn: () => Promise<T>): Promise<Took & T> {
  const { value, ms, stallMs } = await measuringLoopStall(fn);
  return { ...value, ms, stallMs };
}

/**
 * Runs `fn` and reports its outcome (value or error), how long it took and the loop stall
 * meanwhile (see measuringLoopStall); never throws.
 */
export function measuringOutcome<T, E = unknown>(fn: () => Promise<T>): Promise<Took & { value?: T; error?: E }> {
  return measuringFields(async (): Promise<{ value?: T; error?: E }> => {
    try {
      return { value: await fn() };
    } catch (error) {
      return { error: error as E };
    }
  });
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
