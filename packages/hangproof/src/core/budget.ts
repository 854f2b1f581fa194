import { currentContext } from './context-storage.js';

/**
 * The time one operation (a query, a pool acquire, an outbound call) may take now:
 * `min(limitMs, remaining request budget - reserveMs)`, never below 0. The reserve leaves the
 * request time to turn the failure into a clear error before its own deadline fires.
 * Outside a request or job the configured `limitMs` applies alone.
 */
export function operationBudgetMs(limitMs: number, reserveMs = 0): number {
  const ctx = currentContext();
  if (ctx === undefined) return limitMs;
  return Math.max(0, budgetUntil(ctx.deadlineAt, limitMs, reserveMs));
}

/**
 * The budget formula, the one place it is written: `min(limitMs, time left until deadlineAt -
 * reserveMs)` in ms, where deadlineAt is a performance.now() time (Infinity: no deadline). Negative
 * once the reserve is eaten into; callers compare it with the least time an operation needs.
 * `now`: the caller's own reading of performance.now(), when it has one (one clock read per event).
 */
export function budgetUntil(deadlineAt: number, limitMs: number, reserveMs: number, now = performance.now()): number {
  return Math.min(limitMs, deadlineAt - now - reserveMs);
}

/** The signal of the current request or job, if there is one. */
export function currentSignal(): AbortSignal | undefined {
  return currentContext()?.signal;
}
