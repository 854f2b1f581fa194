import type { AbortWatch, RequestContext } from '../core/index.js';

/** The time frame one operation runs in: the request's (or the readiness check's) deadline. */
export interface Scope {
  readonly ctx: RequestContext | undefined;
  /** What aborts the operation: the request context itself, or an explicit signal. */
  readonly abort: AbortWatch | undefined;
  /** An explicit signal (readiness checks); a request's is built on demand, see signalOf. */
  readonly signal?: AbortSignal | undefined;
  /** performance.now() deadline; Infinity outside a request. */
  readonly deadlineAt: number;
}

/** True when `err` is the scope's own abort reason (the request ended), not a database failure. */
export function isOwnAbort(scope: Scope, err: unknown): boolean {
  return scope.abort?.aborted === true && err === scope.abort.abortReason;
}

/** The scope's AbortSignal: built from the request context only where a real signal is needed. */
export function signalOf(scope: Scope): AbortSignal | undefined {
  return scope.ctx?.signal ?? scope.signal;
}
