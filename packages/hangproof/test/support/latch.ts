/**
 * Synchronisation for tests: wait for the thing itself (a handler entered, a state reached), never
 * for a guessed number of milliseconds. Every wait here has a bound.
 */

/** A one-shot signal: a handler calls `open()` when it is entered; the test awaits `opened`. */
export interface Latch {
  readonly opened: Promise<void>;
  open(): void;
}

export function latch(): Latch {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** Opens after `count` calls of `arrive()`: "two requests are in their handlers". */
export function countdown(count: number): { readonly reached: Promise<void>; arrive(): void } {
  const l = latch();
  let left = count;
  return {
    reached: l.opened,
    arrive() {
      left--;
      if (left === 0) l.open();
    },
  };
}

/**
 * Polls `check` every `everyMs` until it returns true; throws naming `what` if `timeoutMs` passes
 * first. For states a test can observe but not be told about (a gauge, a sampled metric).
 */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  everyMs = 10,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > until) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
