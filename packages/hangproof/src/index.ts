/** hangproof core: request context, deadlines, spans and the error catalogue (framework-agnostic). */
// The core's public surface, listed: its other modules (gates, reservoirs, the request log) are
// internals the layers share, not semver surface.
export { type AbortWatch, watchSignal } from './core/abort-watch.js';
export { raceAbort, sleep } from './core/abortable.js';
export { currentSignal, operationBudgetMs } from './core/budget.js';
export { currentContext, runWithContext } from './core/context-storage.js';
export {
  type BreakerStateEvent,
  channels,
  type DependencyCallEvent,
  type EvidenceEvent,
  type PoolAcquireEvent,
  type QueryEvent,
  type RequestEndEvent,
} from './core/diagnostics.js';
export type { LatencySummary } from './core/latency-reservoir.js';
export { queryId } from './core/query-shape.js';
export { MAX_SPANS_PER_REQUEST, RequestContext, type RequestContextInit, type Span } from './core/request-context.js';
export {
  type AdmissionControl,
  type AdmissionDecision,
  type LifecycleOptions,
  RequestLifecycle,
  type RequestStart,
} from './core/request-lifecycle.js';
export { runWithBudget } from './core/run-with-budget.js';
export { annotate, recordSpan, type SpanOptions, setUserId, step } from './core/step.js';
export { parseTimeoutHeader } from './core/timeout-header.js';
export * from './errors.js';
export * from './log-events.js';
export type { StatusDocument } from './observe/status-document.js';
