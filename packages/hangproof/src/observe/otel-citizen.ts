import type { Context, Span as OtelSpan } from '@opentelemetry/api';
import type { QueryEvent, RequestContext } from '../core/index.js';
import type { OtelApiModule } from '../core/otel-api.js';
import { isGuardedQuery, queryEventAttributes, recordedSpanAttributes } from './otel-attributes.js';

/**
 * hangproof inside the application's own OpenTelemetry setup: no provider, no exporter, no
 * request span of its own. The request span is the HTTP instrumentation's, enriched; queries,
 * steps and calls become its children in the same trace.
 */
export interface CitizenTracer {
  /** At request start, in the request's OpenTelemetry context: finds the request span and tags it. */
  onRequestStart(ctx: RequestContext): void;
  /**
   * Just before the response closes (the instrumentation ends its span then): the outcome.
   * `clientLeft` when the response never finished.
   */
  onResponseClosing(ctx: RequestContext, clientLeft: boolean): void;
  /** A guarded query ended: its span, with its own start and end times. */
  onQuery(e: QueryEvent): void;
  /** The request ended: its steps and outbound calls, from what it recorded. */
  onRequestEnd(ctx: RequestContext): void;
}

/**
 * The context key under which `@opentelemetry/core` keeps the HTTP server span (RPC metadata).
 * Keys are `Symbol.for(description)`, so it is read without depending on the SDK. It names the
 * server span even when a framework instrumentation (fastify's hook spans) is the active span.
 */
const RPC_METADATA_KEY = 'OpenTelemetry SDK Context Key RPC_METADATA';

/** Epoch ms of a performance.now() reading: the SDK's own clock, so spans line up with the instrumentation's. */
const epochMs = (perfNow: number): number => performance.timeOrigin + perfNow;

/**
 * The cancel outcome of an aborted request: its guarded queries the abort stopped (the guard
 * cancels each on the server). Those that already ended failed with the abort's code; a client
 * that just left is seen before its abort reaches the queries, which are still running then.
 */
function cancelledQueries(ctx: RequestContext, reason: string): number {
  let n = 0;
  for (const s of ctx.spans) if (isGuardedQuery(s) && s.attrs?.error === reason) n++;
  for (let runs = ctx.queryRuns; runs !== undefined; runs = runs.next) n += runs.inFlight;
  return n;
}

export function createCitizenTracer(api: OtelApiModule): CitizenTracer {
  const tracer = api.trace.getTracer('hangproof');
  const rpcKey = api.createContextKey(RPC_METADATA_KEY);
  const requestSpans = new WeakMap<RequestContext, OtelSpan>();
  const { CLIENT, INTERNAL } = api.SpanKind;

  const parentOf = (ctx: RequestContext | undefined): Context | undefined => {
    const span = ctx === undefined ? undefined : requestSpans.get(ctx);
    if (span !== undefined) return api.trace.setSpan(api.ROOT_CONTEXT, span);
    // A request without a recording span (not sampled, or no instrumentation) records nothing.
    if (ctx?.kind === 'request') return undefined;
    // A query outside a request (a job, start-up) joins whatever trace is active, and starts none.
    const active = api.context.active();
    return api.trace.getSpan(active) === undefined ? undefined : active;
  };

  return {
    onRequestStart(ctx) {
      const active = api.context.active();
      const rpc = active.getValue(rpcKey) as { span?: OtelSpan } | undefined;
      const span = rpc?.span ?? api.trace.getSpan(active);
      if (span === undefined || !span.isRecording()) return;
      requestSpans.set(ctx, span);
      span.setAttributes({ 'hangproof.request_id': ctx.requestId, 'hangproof.deadline_ms': ctx.budgetMs });
    },

    onResponseClosing(ctx, clientLeft) {
      const span = requestSpans.get(ctx);
      if (span === undefined) return;
      const errorCode = clientLeft ? 'CLIENT_CLOSED_REQUEST' : ctx.errorCode;
      if (errorCode === undefined) return;
      span.setAttribute('hangproof.error_code', errorCode);
      // Steps unwind as the abort propagates: what ran at the abort answers "where was it?".
      const inFlight = ctx.stepsInFlightAtAbort.length > 0 ? ctx.stepsInFlightAtAbort : ctx.stepsInFlight;
      const step = inFlight.at(-1);
      if (step !== undefined) span.setAttribute('hangproof.step_in_flight', step);
      if (ctx.lastCompletedStep !== undefined)
        span.setAttribute('hangproof.last_completed_step', ctx.lastCompletedStep);
      const reason = clientLeft ? errorCode : ctx.abortReason?.code;
      if (reason !== undefined) span.setAttribute('hangproof.cancelled_queries', cancelledQueries(ctx, reason));
    },

    onQuery(e) {
      const parent = parentOf(e.ctx);
      if (parent === undefined) return;
      const span = tracer.startSpan(
        e.name,
        { kind: CLIENT, startTime: epochMs(e.startedAt), attributes: queryEventAttributes(e) },
        parent,
      );
      if (e.errorCode !== undefined) span.setStatus({ code: api.SpanStatusCode.ERROR, message: e.errorCode });
      span.end(epochMs(e.startedAt + e.durationMs));
    },

    onRequestEnd(ctx) {
      const parent = parentOf(ctx);
      if (parent === undefined || !requestSpans.has(ctx)) return;
      const start = ctx.startedAt;
      for (const s of ctx.spans) {
        // Guarded queries were exported as they ended, with their server.
        if (isGuardedQuery(s)) continue;
        const child = tracer.startSpan(
          s.name,
          {
            kind: s.kind === 'db' || s.kind === 'external' ? CLIENT : INTERNAL,
            startTime: epochMs(start + s.startMs),
            attributes: recordedSpanAttributes(s),
          },
          parent,
        );
        if (s.attrs?.failed === true) child.setStatus({ code: api.SpanStatusCode.ERROR });
        child.end(epochMs(start + s.startMs + s.durationMs));
      }
    },
  };
}
