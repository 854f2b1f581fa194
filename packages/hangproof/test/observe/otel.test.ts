import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { recordSpan, sleep, step } from 'hangproof';
import { startService } from './helpers.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}
interface OtlpBody {
  resourceSpans: { resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

/** OTLP/JSON ids are hex; accept base64 too, so the test does not depend on the encoder's choice. */
const hexId = (id: string | undefined): string | undefined =>
  id === undefined || id === '' ? undefined : /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');

const attr = (s: { attributes: OtlpSpan['attributes'] }, key: string): unknown => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : Object.values(v)[0];
};

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

test('with an OTLP endpoint set, each request is exported as a server span with its steps and queries as children', async (t) => {
  const received: { path: string; contentType: string; body: OtlpBody }[] = [];
  const collector = createServer(async (req, res) => {
    const text = await readBody(req);
    received.push({
      path: req.url ?? '',
      contentType: req.headers['content-type'] ?? '',
      body: JSON.parse(text) as OtlpBody,
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  t.after(() => collector.close());
  const port = (collector.address() as AddressInfo).port;

  const saved = { ...process.env };
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = `http://127.0.0.1:${port}/v1/traces`;
  process.env.OTEL_EXPORTER_OTLP_TIMEOUT = '2000';
  t.after(() => {
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = saved.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_TIMEOUT = saved.OTEL_EXPORTER_OTLP_TIMEOUT;
    if (saved.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT === undefined) delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    if (saved.OTEL_EXPORTER_OTLP_TIMEOUT === undefined) delete process.env.OTEL_EXPORTER_OTLP_TIMEOUT;
  });

  const { app, url } = await startService({ serviceName: 'desk-test', stallThresholdMs: 0 }, (app) => {
    app.get('/bots', async () => {
      await step('auth', () => sleep(5), { kind: 'auth' });
      const started = performance.now();
      await sleep(10);
      recordSpan('select_bots', started, performance.now() - started, { kind: 'db', attrs: { rows: 3 } });
      return { bots: 3 };
    });
  });
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await fetch(`${url}/bots`, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
  assert.equal(res.status, 200);
  const status = (await (
    await fetch(`${url}/status.json`, { headers: { 'x-admin-token': 'test-admin-token-0123456789' } })
  ).json()) as {
    service: { tracing: boolean };
  };
  assert.equal(status.service.tracing, true);
  await app.close(); // flushes the batch

  assert.ok(received.length >= 1, 'the collector received an export');
  assert.equal(received[0]?.path, '/v1/traces');
  assert.match(received[0]?.contentType ?? '', /application\/json/);
  const resourceSpans = received.flatMap((r) => r.body.resourceSpans);
  assert.equal(attr(resourceSpans[0]?.resource ?? { attributes: [] }, 'service.name'), 'desk-test');
  const spans = resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
  const root = spans.find((s) => s.name === 'GET /bots');
  assert.ok(root, `a request span was exported (got ${spans.map((s) => s.name).join(', ')})`);
  assert.equal(root.kind, 2, 'SERVER');
  assert.equal(hexId(root.traceId), traceId, 'the request joins the caller trace');
  assert.equal(hexId(root.parentSpanId), '00f067aa0ba902b7');
  assert.equal(attr(root, 'http.route'), '/bots');
  assert.equal(Number(attr(root, 'http.response.status_code')), 200);
  const auth = spans.find((s) => s.name === 'auth');
  const query = spans.find((s) => s.name === 'select_bots');
  assert.equal(hexId(auth?.parentSpanId), hexId(root.spanId));
  assert.equal(hexId(query?.parentSpanId), hexId(root.spanId));
  assert.equal(query?.kind, 3, 'CLIENT');
  assert.equal(attr(query as OtlpSpan, 'hangproof.kind'), 'db');
});

/** Runs the fixture service in a child process and returns the OpenTelemetry specifiers it imported. */
async function otelImportsOfChild(otlpEndpoint: string | undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hangproof-otel-'));
  const log = join(dir, 'imports.log');
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, HANGPROOF_IMPORT_LOG: log };
    delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
    delete env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    // Nothing listens there: the export fails quietly, which is all this test needs.
    if (otlpEndpoint !== undefined) {
      env.OTEL_EXPORTER_OTLP_ENDPOINT = otlpEndpoint;
      env.OTEL_EXPORTER_OTLP_TIMEOUT = '500';
    }
    const child = fileURLToPath(new URL('./fixtures/observe-child.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--conditions=source', '--import', 'tsx', child], {
      env,
      timeout: 30_000,
    });
    assert.deepEqual(JSON.parse(stdout), { status: 200 });
    return await readFile(log, 'utf8').catch(() => '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('without OTLP variables no OpenTelemetry package is even imported', async () => {
  assert.equal(await otelImportsOfChild(undefined), '');
  // The same child with the variable set does import the SDK: the probe sees imports.
  assert.match(await otelImportsOfChild('http://127.0.0.1:9'), /@opentelemetry\/sdk-trace-base/);
});
