import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HangproofError } from 'hangproof';
import { countdown, latch } from '../support/latch.ts';
import { json, startApp } from '../support/start-app.ts';

const ADMIN = 'admin-token-0123456789';
/** The /healthz test parks 100 requests; this opens when all are in the handler. */
const PARKED = 100;
const allParked = countdown(PARKED);
/** The parked requests stay in their handler until the test has measured /healthz. */
const unpark = latch();
const SLOW_WARN_MS = 200;
const started = await startApp({ deadlineMs: 2000, adminToken: ADMIN, slowWarnMs: SLOW_WARN_MS }, (app) => {
  app.post('/echo', async (req) => ({ got: req.body }));
  app.get('/boom', async () => {
    throw new Error('SELECT secret FROM users WHERE password = hunter2');
  });
  app.get('/dep', async () => {
    throw new HangproofError('DEPENDENCY_UNAVAILABLE', { details: { dependency: 'broker' }, retryAfterSec: 2 });
  });
  app.get('/parked', async (req) => {
    allParked.arrive();
    const signal = req.hangproof?.signal as AbortSignal;
    await Promise.race([unpark.opened, sleep(2000, undefined, { signal })]);
    return { ok: true };
  });
  app.get('/spans', async (req) => {
    req.hangproof?.addSpan({ name: 'q1', kind: 'db', startMs: 1, durationMs: 2.5 });
    return { ok: true };
  });
  app.get('/slow-spans', async (req) => {
    req.hangproof?.addSpan({ name: 'q1', kind: 'db', startMs: 1, durationMs: 2.5 });
    await sleep(SLOW_WARN_MS + 20);
    return { ok: true };
  });
});
after(() => started.app.close());
after(unpark.open);
const url = started.url;

test('a valid incoming X-Request-ID is echoed; an invalid one is replaced', async () => {
  const ok = await fetch(`${url}/healthz`, { headers: { 'x-request-id': 'abc-123:x.y_z' } });
  assert.equal(ok.headers.get('x-request-id'), 'abc-123:x.y_z');
  for (const bad of ['has space', 'x'.repeat(129), 'semi;colon', 'slash/ed']) {
    const res = await fetch(`${url}/healthz`, { headers: { 'x-request-id': bad } });
    const id = res.headers.get('x-request-id') ?? '';
    assert.notEqual(id, bad);
    assert.match(id, /^[A-Za-z0-9._:-]{1,128}$/);
  }
});

test('an unknown route, bad JSON and an oversized body get the error shape', async () => {
  const notFound = await fetch(`${url}/nope`);
  assert.equal(notFound.status, 404);
  assert.equal((await json(notFound)).error.code, 'NOT_FOUND');

  const badJson = await fetch(`${url}/echo`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"a":',
  });
  assert.equal(badJson.status, 400);
  const badBody = await json(badJson);
  assert.equal(badBody.error.code, 'BAD_REQUEST');
  assert.equal(typeof badBody.error.requestId, 'string');

  const big = await fetch(`${url}/echo`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ blob: 'x'.repeat(100 * 1024) }),
  });
  assert.equal(big.status, 413);
  assert.equal((await json(big)).error.code, 'PAYLOAD_TOO_LARGE');
});

test('over-long headers get the error shape from the HTTP parser, not a crash', async () => {
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    let data = '';
    socket.on('data', (c) => {
      data += c;
    });
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
  });
  assert.match(raw, /^HTTP\/1\.1 431 /);
  const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  assert.equal(body.error.code, 'HEADERS_TOO_LARGE');
  assert.equal((await fetch(`${url}/healthz`)).status, 200, 'the server still serves');
});

test('a thrown non-hangproof error becomes INTERNAL without leaking its message', async () => {
  const res = await fetch(`${url}/boom`);
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.equal(JSON.parse(text).error.code, 'INTERNAL');
  assert.doesNotMatch(text, /SELECT|hunter2|at .*\.ts/);
  const line = await started.logs.waitFor((l) => l.route === '/boom');
  assert.match(JSON.stringify(line.err), /hunter2/, 'the log keeps the detail');
});

test('a hangproof error keeps its status, details and Retry-After', async () => {
  const res = await fetch(`${url}/dep`);
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('retry-after'), '2');
  const body = await json(res);
  assert.equal(body.error.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(body.error.dependency, 'broker');
});

test('Server-Timing appears with the admin token and not without it (or with a wrong one)', async () => {
  const admin = await fetch(`${url}/spans`, { headers: { 'x-admin-token': ADMIN } });
  const timing = admin.headers.get('server-timing') ?? '';
  assert.match(timing, /q1;dur=2\.5/);
  assert.match(timing, /db;dur=2\.5/);
  assert.match(timing, /serialization;dur=/);
  assert.match(timing, /total;dur=/);
  assert.equal((await fetch(`${url}/spans`)).headers.get('server-timing'), null);
  assert.equal(
    (await fetch(`${url}/spans`, { headers: { 'x-admin-token': `${ADMIN}x` } })).headers.get('server-timing'),
    null,
  );
});

test('/healthz stays fast while 100 requests are parked on a slow handler', async () => {
  const parked = Array.from({ length: PARKED }, () => fetch(`${url}/parked`).then((r) => r.status));
  await allParked.reached;
  const timings: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/healthz`);
    timings.push(performance.now() - t0);
    assert.equal(res.status, 200);
  }
  timings.sort((a, b) => a - b);
  const p50 = timings[10] as number;
  // A /healthz queued behind the parked requests would not be answered until they are released.
  assert.ok(p50 < 250, `healthz median ${p50.toFixed(1)} ms while 100 requests are parked`);
  assert.ok(started.app.hangproof.inFlight().size >= PARKED, 'the parked requests were really in flight');
  unpark.open();
  assert.deepEqual(new Set(await Promise.all(parked)), new Set([200]));
});

test('one structured log line per request carries scalar fields and per-kind totals, no span list', async () => {
  const res = await fetch(`${url}/spans?token=secret`, { headers: { 'x-request-id': 'log-line-1' } });
  await res.text();
  const line = await started.logs.waitFor((l) => l.request_id === 'log-line-1');
  for (const key of ['method', 'route', 'path', 'status', 'duration_ms', 'deadline_ms', 'db_count', 'db_ms']) {
    assert.ok(key in line, `log line has ${key}`);
  }
  assert.equal(line.level, 30);
  assert.equal(line.msg, 'request completed');
  assert.equal(line.route, '/spans');
  assert.equal(line.path, '/spans', 'the query string (which may carry tokens) is left out');
  assert.equal(line.db_count, 1);
  assert.equal(line.db_ms, 2.5);
  assert.equal(line.deadline_ms, 2000);
  assert.ok(!('spans' in line), 'a healthy request logs no span list');
  assert.equal(started.logs.find((l) => l.request_id === 'log-line-1').length, 1);
});

test('a slow request logs at warn with its start and end times and its span list', async () => {
  const res = await fetch(`${url}/slow-spans`, { headers: { 'x-request-id': 'log-line-slow' } });
  await res.text();
  const line = await started.logs.waitFor((l) => l.request_id === 'log-line-slow');
  assert.equal(line.level, 40);
  for (const key of ['start_ts', 'end_ts', 'spans']) assert.ok(key in line, `slow line has ${key}`);
  const spans = line.spans as { name: string; kind: string; dur_ms: number }[];
  assert.deepEqual(
    spans.map((s) => [s.name, s.kind]),
    [
      ['q1', 'db'],
      ['serialization', 'serialization'],
    ],
  );
});
