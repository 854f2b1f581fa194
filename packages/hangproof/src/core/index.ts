export { type AbortWatch, watchSignal } from './abort-watch.js';
export { raceAbort, sleep } from './abortable.js';
export { BoundedGate, type GateRefusal, GateRefusedError } from './bounded-gate.js';
export { budgetUntil, currentSignal, operationBudgetMs } from './budget.js';
export { currentContext, runWithContext } from './context-storage.js';
export {
  type BreakerStateEvent,
  channels,
  type DependencyCallEvent,
  type EvidenceEvent,
  type PoolAcquireEvent,
  publish,
  publishEvidence,
  type QueryEvent,
  type RequestEndEvent,
} from './diagnostics.js';
export { type EvidenceLogger, logEvidence } from './evidence-log.js';
export { InFlightRequests } from './in-flight-requests.js';
export { LatencyReservoir, type LatencySummary } from './latency-reservoir.js';
export { type QueryShape, queryId } from './query-shape.js';
export {
  MAX_SPANS_PER_REQUEST,
  RequestContext,
  type RequestContextInit,
  type ShapeRuns,
  type Span,
} from './request-context.js';
export { isValidRequestId, MAX_REQUEST_ID_LENGTH, resolveRequestId } from './request-id.js';
export {
  type AdmissionControl,
  type AdmissionDecision,
  type LifecycleOptions,
  RequestLifecycle,
  type RequestStart,
  refusalBody,
} from './request-lifecycle.js';
export { type LogThresholds, levelFor, RequestLog } from './request-log.js';
export { runWithBudget } from './run-with-budget.js';
export { formatServerTiming } from './server-timing.js';
export { annotate, recordSpan, type SpanOptions, setUserId, step } from './step.js';
export { parseTimeoutHeader } from './timeout-header.js';
