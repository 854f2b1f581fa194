import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';

interface ExportedSpan {
  name: string;
  kind: number;
  scope: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, unknown>;
  status: number;
}
interface ChildReport {
  answers: { path: string; status: number; requestId: string | null }[];
  calleeSaw: (string | undefined)[];
  ownExports: number;
  spans: ExportedSpan[];
  stuckPair: number[];
  abortListenerTraces: Record<string, string | undefined>;
  queuedAnswers: number[];
  waitedAtGate: number;
  requestLines: { requestId: string; traceId: string | undefined; path: string; msg: string }[];
}

const SERVER = 1;
const CLIENT = 2;

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
});

after(async () => {
  await db?.drop();
});

/** Runs the child service on `adapter` (its own process: the instrumentations patch at load). */
async function runChild(adapter: 'fastify' | 'http'): Promise<ChildReport> {
  const child = fileURLToPath(new URL('./fixtures/otel-sdk-child.ts', import.meta.url));
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: db.url, ADAPTER: adapter };
  delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const { stdout } = await promisify(execFile)(process.execPath, ['--conditions=source', '--import', 'tsx', child], {
    env,
    timeout: 30_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as ChildReport;
}

// Fastify with the observe plugin, and a plain node:http listener with an observatory: the same traces.
for (const adapter of ['fastify', 'http'] as const) {
  describe(`on ${adapter === 'fastify' ? 'Fastify' : 'node:http'}`, () => {
    let report: ChildReport;
    before(async () => {
      report = await runChild(adapter);
    });

    /** The spans of the trace whose server span answered `path`. */
    function traceOf(path: string): { server: ExportedSpan; spans: ExportedSpan[] } {
      const server = report.spans.find((s) => s.kind === SERVER && s.attributes['url.path'] === path);
      assert.ok(
        server,
        `a server span for ${path} (got ${report.spans.map((s) => `${s.scope}:${s.name}`).join(', ')})`,
      );
      return { server, spans: report.spans.filter((s) => s.traceId === server.traceId) };
    }

    test('with the application’s own tracer provider, a request is one trace: the instrumentation’s server span, hangproof’s spans inside it', () => {
      const answer = report.answers.find((a) => a.path === '/bots/7');
      assert.equal(answer?.status, 200);
      const { server, spans } = traceOf('/bots/7');
      assert.equal(server.scope, '@opentelemetry/instrumentation-http');
      // The callee of the outbound call is served in the same process: its server span joins this
      // trace (through traceparent) under the span active at the call (fastify's handler span, or the
      // request span on node:http), and is the only other server span.
      const others = spans.filter((s) => s.kind === SERVER && s !== server);
      assert.deepEqual(
        others.map((s) => s.attributes['url.path']),
        ['/quote'],
        'no second server span for the request',
      );
      assert.ok(spans.some((s) => s.spanId === others[0]?.parentSpanId));
      assert.equal(
        report.spans.filter((s) => s.scope === 'hangproof' && s.kind === SERVER).length,
        0,
        'hangproof exports no request span of its own',
      );
      assert.equal(report.ownExports, 0, 'nor anything through its own exporter, though the OTLP variables are set');
      // The request span is enriched instead.
      assert.equal(server.attributes['hangproof.request_id'], answer?.requestId);
      assert.equal(server.attributes['hangproof.deadline_ms'], 2_000);

      const mine = spans.filter((s) => s.scope === 'hangproof');
      const load = mine.find((s) => s.name === 'load');
      const query = mine.find((s) => s.attributes['db.system.name'] === 'postgresql');
      const call = mine.find((s) => s.name === 'quotes');
      assert.ok(load && query && call, `step, query and call spans (got ${mine.map((s) => s.name).join(', ')})`);
      for (const s of [load, query, call])
        assert.equal(s.parentSpanId, server.spanId, `${s.name} is a child of the request span`);
      assert.equal(query.kind, CLIENT);
      assert.equal(query.attributes['db.operation.name'], 'SELECT');
      assert.equal(
        query.attributes['db.query.text'],
        'SELECT id,name FROM bots WHERE id=?',
        'the fingerprint, no value',
      );
      assert.equal(query.attributes['server.address'], new URL(db.url).hostname);
      assert.equal(query.attributes['server.port'], Number(new URL(db.url).port));
      // The pg instrumentation's own span is in the same trace too.
      assert.ok(spans.some((s) => s.scope === '@opentelemetry/instrumentation-pg'));
    });

    test('outbound calls from hangproof/deps carry the request’s traceparent', () => {
      const { server } = traceOf('/bots/7');
      const sent = report.calleeSaw[0];
      assert.ok(sent, 'the callee received a traceparent');
      assert.equal(sent.split('-')[1], server.traceId);
    });

    test('a request that times out: its server span says where it was and what it answered', () => {
      const answer = report.answers.find((a) => a.path === '/stuck');
      assert.equal(answer?.status, 504);
      const { server, spans } = traceOf('/stuck');
      assert.equal(spans.filter((s) => s.kind === SERVER).length, 1);
      assert.equal(server.attributes['hangproof.error_code'], 'REQUEST_TIMEOUT');
      assert.equal(server.attributes['hangproof.deadline_ms'], 300);
      assert.equal(server.attributes['hangproof.step_in_flight'], 'report');
      assert.equal(server.attributes['hangproof.cancelled_queries'], 0);
    });

    test('a query that waited for a pooled connection is traced in its own request, not in the one that handed it over', () => {
      assert.deepEqual(report.queuedAnswers, [200, 200, 200, 200]);
      assert.equal(report.waitedAtGate, 3, 'the three requests waited at the pool gate');
      // The pg instrumentation starts its span in whatever context is active when pg is called:
      // after the wait, that must be the waiter's, though the connection came from another request.
      const queuedQueries = (spans: ExportedSpan[]): ExportedSpan[] =>
        spans.filter(
          (s) =>
            s.scope === '@opentelemetry/instrumentation-pg' &&
            String(s.attributes['db.query.text']).includes('AS queued'),
        );
      for (const path of ['/queued/1', '/queued/2', '/queued/3']) {
        const { spans } = traceOf(path);
        assert.equal(queuedQueries(spans).length, 1, `${path}: its own query, and only its own, in its trace`);
      }
      assert.equal(queuedQueries(traceOf('/hold').spans).length, 0, 'none in the trace of the request that held it');
    });

    test('a timed-out request’s abort listeners run in its own trace, though one timer ends every deadline', () => {
      assert.deepEqual(report.stuckPair, [504, 504]);
      // The later deadline is reached by the timer the earlier one's firing re-arms.
      for (const path of ['/stuck/1', '/stuck/2'])
        assert.equal(report.abortListenerTraces[path], traceOf(path).server.traceId, path);
    });

    test('each request’s log line is written in its own trace, a timed-out one’s too', () => {
      const byPath = new Map(report.requestLines.map((l) => [l.path, l]));
      for (const path of ['/bots/7', '/stuck/1', '/stuck/2', '/hold', '/queued/1', '/queued/2', '/queued/3']) {
        const line = byPath.get(path);
        assert.ok(line, `a log line for ${path}`);
        const { server } = traceOf(path);
        assert.equal(line.requestId, server.attributes['hangproof.request_id']);
        assert.equal(line.traceId, server.traceId, `${path} (${line.msg}): the trace its log line names`);
      }
    });

    test('a request whose client left: its server span counts the query cancelled on the server', () => {
      const { server, spans } = traceOf('/leave');
      assert.equal(server.attributes['hangproof.error_code'], 'CLIENT_CLOSED_REQUEST');
      assert.equal(server.attributes['hangproof.step_in_flight'], 'export');
      assert.equal(server.attributes['hangproof.cancelled_queries'], 1);
      const query = spans.find((s) => s.scope === 'hangproof' && s.attributes['db.system.name'] === 'postgresql');
      assert.equal(query?.attributes['error.type'], 'CLIENT_CLOSED_REQUEST');
      assert.equal(query?.parentSpanId, server.spanId);
    });
  });
}
