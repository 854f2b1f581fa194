import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { currentContext, HangproofError, sleep } from 'hangproof';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { pino } from 'pino';
import { compareSummaries, type LoadSummary } from '../src/load/load-summary.js';
import { isLoopbackHost } from '../src/load/loopback.js';
import { scheduledBy } from '../src/load/open-loop.js';
import { closedPort, runCli, startSilentServer } from './run-cli.js';

const DEADLINE_MS = 300;
let started: { app: FastifyInstance; url: string };
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hangproof-load-'));
  // A real Fastify server with the plugin on loopback; its logs are not read here.
  const app = Fastify(serverOptions({ maxDeadlineMs: DEADLINE_MS, bodyLimitBytes: 64 * 1024 }));
  await app.register(hangproof, { logger: pino({ level: 'silent' }), deadlineMs: DEADLINE_MS, quietProbes: true });
  app.get('/fast', async () => ({ ok: true }));
  app.get('/slow', async () => {
    await sleep(5000, currentContext()?.signal);
    return { unreachable: true };
  });
  app.get('/error', async () => {
    throw new HangproofError('DEPENDENCY_UNAVAILABLE', { details: { dependency: 'quotes' } });
  });
  app.post('/echo', async (req) => req.body);
  started = { app, url: await app.listen({ port: 0, host: '127.0.0.1' }) };
});

after(async () => {
  await started.app.close();
  await rm(dir, { recursive: true, force: true });
});

describe('hangproof load', () => {
  test('a slow route answers 504 REQUEST_TIMEOUT near its deadline, at the offered rate', async () => {
    const run = await runCli(['load', `${started.url}/slow`, '--rate', '40', '--duration', '2s', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const s = run.json();
    assert.ok(s.sent >= 70 && s.sent <= 82, `sent ${s.sent} of 80 scheduled`);
    assert.equal(s.statuses['504'], s.sent);
    assert.equal(s.errorCodes.REQUEST_TIMEOUT, s.sent);
    assert.ok(s.latencyMs.p50 >= DEADLINE_MS - 20, `p50 ${s.latencyMs.p50}`);
    assert.ok(s.latencyMs.p99 < DEADLINE_MS + 250, `p99 ${s.latencyMs.p99} within deadline + 250 ms`);
    assert.equal(s.errorRate, 1);
  });

  test('error codes of failing routes are counted from the JSON error bodies', async () => {
    const run = await runCli(['load', `${started.url}/error`, '--rate', '20', '--duration', '1s', '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json().errorCodes.DEPENDENCY_UNAVAILABLE, run.json().sent);
    assert.equal(run.json().statuses['503'], run.json().sent);
  });

  test('a POST with a body and headers is sent as given', async () => {
    const run = await runCli([
      'load',
      `${started.url}/echo`,
      '--method',
      'POST',
      '--body',
      '{"a":1}',
      '-H',
      'x-test: 1',
      '--rate',
      '10',
      '--duration',
      '1s',
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json().statuses['200'], run.json().sent);
  });

  test('--compare exits 1 when latency regressed against an earlier run, 0 when it did not', async () => {
    const beforeFile = join(dir, 'before.json');
    const base = await runCli(['load', `${started.url}/fast`, '--rate', '20', '--duration', '1s', '--out', beforeFile]);
    assert.equal(base.code, 0, base.stderr);
    assert.match(base.stdout, /p99/);
    const worse = await runCli([
      'load',
      `${started.url}/slow`,
      '--rate',
      '20',
      '--duration',
      '1s',
      '--compare',
      beforeFile,
      '--json',
    ]);
    assert.equal(worse.code, 1, worse.stderr);
    assert.ok(
      worse
        .json()
        .compare.some((d: { metric: string; regression: boolean }) => d.metric === 'latency p95 (ms)' && d.regression),
    );
    assert.ok(
      worse
        .json()
        .compare.some((d: { metric: string; regression: boolean }) => d.metric === 'error rate (%)' && d.regression),
    );
  });

  test('a broken --max-p99-ms promise exits 1', async () => {
    const run = await runCli([
      'load',
      `${started.url}/slow`,
      '--rate',
      '10',
      '--duration',
      '1s',
      '--max-p99-ms',
      '100',
      '--json',
    ]);
    assert.equal(run.code, 1);
    assert.equal(run.json().brokenPromises.length, 1);
  });

  test('a remote target is refused without --allow-remote', async () => {
    const run = await runCli(['load', 'http://example.com/', '--json']);
    assert.equal(run.code, 2);
    assert.equal(run.json().error.code, 'REMOTE_TARGET');
  });

  test('a closed port or a server that never answers ends with one line and exit 2 within a few seconds', async (t) => {
    const port = await closedPort();
    const silent = await startSilentServer();
    t.after(() => silent.close());
    const runs = await Promise.all([
      runCli(['load', `http://127.0.0.1:${port}/`, '--duration', '5s']),
      runCli(['load', `${silent.url}/`, '--duration', '5s']),
    ]);
    for (const run of runs) {
      assert.equal(run.code, 2, run.stderr);
      assert.ok(run.durationMs < 8000, `ended in ${Math.round(run.durationMs)} ms`);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    }
  });

  test('without preflight a silent server is measured as timeouts, each bounded by --timeout-ms', async (t) => {
    const silent = await startSilentServer();
    t.after(() => silent.close());
    const run = await runCli([
      'load',
      `${silent.url}/`,
      '--no-preflight',
      '--rate',
      '10',
      '--duration',
      '1s',
      '--timeout-ms',
      '500',
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json().networkErrors.TIMEOUT, run.json().sent);
    assert.ok(run.json().latencyMs.max < 500 + 250);
  });
});

describe('load internals', () => {
  test('a ramp schedules the integral of its rate', () => {
    assert.equal(scheduledBy({ startRps: 10, endRps: 10, durationMs: 2000 }, 1000), 10);
    assert.equal(scheduledBy({ startRps: 0, endRps: 100, durationMs: 2000 }, 2000), 100);
    assert.equal(scheduledBy({ startRps: 0, endRps: 100, durationMs: 2000 }, 1000), 25);
  });

  test('only loopback hosts count as local', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['10.0.0.1', 'example.com', '128.0.0.1']) assert.ok(!isLoopbackHost(h), h);
  });

  test('a small change on a fast route is not a regression', () => {
    const base = {
      startRps: 10,
      endRps: 10,
      errorRate: 0,
      throughputRps: 10,
      latencyMs: { p50: 1, p95: 2, p99: 3, max: 4, mean: 1 },
    } as LoadSummary;
    const after = { ...base, latencyMs: { p50: 2, p95: 4, p99: 6, max: 9, mean: 2 } } as LoadSummary;
    assert.ok(compareSummaries(base, after).every((d) => !d.regression));
  });
});
