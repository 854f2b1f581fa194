import { RequestContext, runWithContext } from 'hangproof';
import { measuringOutcome, type Took } from '../support/loop-stall.ts';

/** Runs `fn` inside a fresh request context with `budgetMs`, ending the context afterwards. */
export async function inRequest<T>(
  budgetMs: number,
  fn: (ctx: RequestContext) => Promise<T>,
  requestId = 'req-test-1',
): Promise<T> {
  const ctx = new RequestContext({ requestId, budgetMs, name: 'GET /test' });
  try {
    return await runWithContext(ctx, () => fn(ctx));
  } finally {
    ctx.end();
  }
}

/** Settles `work` and reports how long it took, the loop stall meanwhile and what it threw. */
export function settle<T>(
  work: Promise<T>,
): Promise<Took & { value?: T; error?: { code?: string; details?: Record<string, unknown> } & Error }> {
  return measuringOutcome(() => work);
}
