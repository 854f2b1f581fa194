// Preloaded with `--import` in the db suite's `otel` scenario: OpenTelemetry's Node SDK must patch
// http, fastify and pg before the server imports them. Spans go through a BatchSpanProcessor to
// an exporter that drops them, so the figures show instrumentation cost without any network.
import { register } from 'node:module';
import { FastifyInstrumentation } from '@opentelemetry/instrumentation-fastify';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

// ESM imports of fastify and pg are patched through import-in-the-middle's loader hook.
register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);

/** Counts spans per instrumentation so a run can prove all three were active. */
export const exportedSpans = new Map();
const droppingExporter = {
  export(spans, done) {
    for (const s of spans) {
      const scope = s.instrumentationScope?.name ?? 'unknown';
      exportedSpans.set(scope, (exportedSpans.get(scope) ?? 0) + 1);
    }
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
  forceFlush: () => Promise.resolve(),
};

const sdk = new NodeSDK({
  serviceName: 'bench-db',
  spanProcessors: [new BatchSpanProcessor(droppingExporter)],
  instrumentations: [new HttpInstrumentation(), new FastifyInstrumentation(), new PgInstrumentation()],
  // No metrics or logs pipelines, no resource detectors doing I/O.
  metricReaders: [],
  logRecordProcessors: [],
  resourceDetectors: [],
});
sdk.start();

// BENCH_OTEL_VERBOSE=1 prints the span counts every 5 s, to check every instrumentation is active.
if (process.env.BENCH_OTEL_VERBOSE === '1') {
  setInterval(
    () => process.stderr.write(`otel spans: ${JSON.stringify(Object.fromEntries(exportedSpans))}\n`),
    5_000,
  ).unref();
}
