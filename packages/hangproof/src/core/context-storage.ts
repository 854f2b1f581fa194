import { AsyncLocalStorage } from 'node:async_hooks';
import type { RequestContext } from './request-context.js';
import { anchorTickShape } from './tick-shape-anchor.js';

/**
 * One AsyncLocalStorage for the whole library, shared across copies through a global symbol so a
 * service that ends up with two copies of hangproof still sees one context.
 */
const kStorage = Symbol.for('hangproof.context-storage');
const holder = globalThis as unknown as Record<symbol, AsyncLocalStorage<RequestContext> | undefined>;
const storage: AsyncLocalStorage<RequestContext> = holder[kStorage] ?? new AsyncLocalStorage<RequestContext>();
holder[kStorage] = storage;

// The library lives on ticks (every request runs about ten): keep process.nextTick cheap for the
// whole process from the moment it is loaded, before a service's start-up collections can undo it.
anchorTickShape();

/** The context of the request (or job) running now, if any. */
export function currentContext(): RequestContext | undefined {
  return storage.getStore();
}

/** Runs `fn` with `ctx` as the current context for it and everything it awaits. */
export function runWithContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}
