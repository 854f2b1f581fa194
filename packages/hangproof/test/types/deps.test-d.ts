/** Type tests of `hangproof/deps` (compiled by `npm run typecheck`, never run). */
import { createDependencies, type Dependencies, type DependencyStatus, type HttpDependency } from 'hangproof/deps';

export async function depsSurface(): Promise<void> {
  const deps: Dependencies = createDependencies();
  const quotes: HttpDependency = deps.http('quotes', { baseUrl: 'http://127.0.0.1:9', timeoutMs: 500 });
  void quotes;
  const statuses: readonly DependencyStatus[] = deps.status().dependencies;
  void statuses;
  // @ts-expect-error an HTTP dependency needs its baseUrl
  deps.http('quotes', { timeoutMs: 500 });
}

// @ts-expect-error the bulkhead is an internal of a dependency
export type NoBulkhead = typeof import('hangproof/deps').Bulkhead;
// @ts-expect-error the retry budget is an internal of a dependency
export type NoRetryBudget = typeof import('hangproof/deps').RetryBudget;
