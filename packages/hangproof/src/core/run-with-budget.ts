import { raceAbort } from './abortable.js';
import { runWithContext } from './context-storage.js';
import { RequestContext } from './request-context.js';
import { newRequestId } from './request-id.js';

/**
 * Runs background work (a job, a script step) under its own deadline, with the same context a
 * request has: queries and calls inside it get bounded budgets and the signal aborts at the
 * deadline. Rejects with REQUEST_TIMEOUT at the deadline even if `fn` ignores its signal.
 */
export async function runWithBudget<T>(
  name: string,
  budgetMs: number,
  fn: (signal: AbortSignal, ctx: RequestContext) => Promise<T>,
): Promise<T> {
  const ctx = new RequestContext({ requestId: `job:${name}:${newRequestId()}`, budgetMs, kind: 'job', name });
  try {
    return await runWithContext(ctx, () => raceAbort(fn(ctx.signal, ctx), ctx.signal));
  } finally {
    ctx.end();
  }
}
