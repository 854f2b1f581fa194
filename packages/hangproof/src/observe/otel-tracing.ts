import type { RequestContext, RequestEndEvent } from '../core/index.js';
import { importOptionalPeers } from '../missing-peer.js';
import { recordedSpanAttributes } from './otel-attributes.js';

/** The OpenTelemetry packages trace export loads; optional peer dependencies of hangproof. */
export const OTEL_PEERS = [
  '@opentelemetry/api',
  '@opentelemetry/sdk-trace-base',
  '@opentelemetry/exporter-trace-otlp-http',
  '@opentelemetry/resources',
] as const;

/** Exports each finished request as a span tree. */
export interface RequestTracer {
  /** Remembers the caller's `traceparent`, so the request span joins the caller's trace. */
  noteParent(ctx: RequestContext, traceparent: string): void;
  onRequestEnd(e: RequestEndEvent): void;
  /** Flushes and stops, waiting at most `timeoutMs`. */
  shutdown(timeoutMs: number): Promise<void>;
}

/**
 * True when the standard OTLP variables ask for trace export: `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set, and `OTEL_SDK_DISABLED` not `true`.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** W3C trace context, version 00: `00-<trace id>-<parent span id>-<flags>`. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Builds hangproof's own OpenTelemetry exporter, the fallback for a service that registered no
 * tracer provider of its own (see otel-citizen.ts for one that did). The SDK packages (optional
 * peer dependencies) are imported here,
 * dynamically, and this module is itself only imported when tracing is requested: a service
 * without the OTLP variables loads no OpenTelemetry code at all. Spans are built from what the
 * request already recorded (ctx.spans) when it ends, so tracing adds nothing to the request path
 * itself. The exporter reads the endpoint, headers and timeouts from the standard OTEL_* variables.
 * Nothing is registered globally, so a service's own OpenTelemetry setup is left alone.
 */
export async function createOtelTracer(serviceName: string): Promise<RequestTracer> {
  const [api, base, exporterModule, resources] = await importOptionalPeers(
    'OpenTelemetry tracing (OTEL_EXPORTER_OTLP_* is set)',
    OTEL_PEERS,
    () =>
      Promise.all([
        import('@opentelemetry/api'),
        import('@opentelemetry/sdk-trace-base'),
        import('@opentelemetry/exporter-trace-otlp-http'),
        import('@opentelemetry/resources'),
      ]),
  );
  const provider = new base.BasicTracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': serviceName }),
    spanProcessors: [new base.BatchSpanProcessor(new exporterModule.OTLPTraceExporter())],
  });
  const tracer = provider.getTracer('hangproof');
  const parents = new WeakMap<RequestContext, string>();
  const kinds = { client: api.SpanKind.CLIENT, internal: api.SpanKind.INTERNAL };

  return {
    noteParent(ctx, traceparent) {
      parents.set(ctx, traceparent);
    },
    onRequestEnd(e) {
      const { ctx } = e;
      let parentContext = api.ROOT_CONTEXT;
      const traceparent = parents.get(ctx);
      if (traceparent !== undefined) {
        const m = TRACEPARENT.exec(traceparent);
        if (m !== null && api.isSpanContextValid({ traceId: m[1] as string, spanId: m[2] as string, traceFlags: 0 })) {
          parentContext = api.trace.setSpanContext(api.ROOT_CONTEXT, {
            traceId: m[1] as string,
            spanId: m[2] as string,
            traceFlags: Number.parseInt(m[3] as string, 16) & 1,
            isRemote: true,
          });
        }
      }
      const start = ctx.startedAtEpochMs;
      const root = tracer.startSpan(
        e.route === '' ? e.method : `${e.method} ${e.route}`,
        {
          kind: api.SpanKind.SERVER,
          startTime: start,
          attributes: {
            'http.request.method': e.method,
            'http.route': e.route,
            'http.response.status_code': e.statusCode,
            'hangproof.request_id': ctx.requestId,
            'hangproof.deadline_ms': ctx.budgetMs,
            ...(e.errorCode === undefined ? {} : { 'hangproof.error_code': e.errorCode }),
          },
        },
        parentContext,
      );
      const inRoot = api.trace.setSpan(api.ROOT_CONTEXT, root);
      for (const s of ctx.spans) {
        const child = tracer.startSpan(
          s.name,
          {
            kind: s.kind === 'db' || s.kind === 'external' ? kinds.client : kinds.internal,
            startTime: start + s.startMs,
            attributes: recordedSpanAttributes(s),
          },
          inRoot,
        );
        if (s.attrs?.failed === true) child.setStatus({ code: api.SpanStatusCode.ERROR });
        child.end(start + s.startMs + s.durationMs);
      }
      if (e.errorCode !== undefined || e.statusCode >= 500) {
        root.setStatus({ code: api.SpanStatusCode.ERROR, message: e.errorCode ?? String(e.statusCode) });
      }
      root.end(start + e.durationMs);
    },
    async shutdown(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch(() => {}),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
