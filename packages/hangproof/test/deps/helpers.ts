import { RequestContext, runWithContext } from 'hangproof';

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

/** Settles `work` and reports how long it took and what it threw. */
export async function settle<T>(
  work: Promise<T>,
): Promise<{ ms: number; value?: T; error?: { code?: string; details?: Record<string, unknown> } & Error }> {
  const started = performance.now();
  try {
    const value = await work;
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error: error as { code?: string } & Error };
  }
}
