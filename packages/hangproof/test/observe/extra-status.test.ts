import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { sleep } from 'hangproof';
import { hangproof } from 'hangproof/fastify';
import { observe, type StatusWarning } from 'hangproof/observe';
import { pino } from 'pino';
import { resolveObserveOptions } from '../../src/observe/options.ts';
import { assertTookLessThan, measuringFields, type Took } from '../support/loop-stall.ts';
import { ADMIN_TOKEN, admin, memoryLogger, startService } from './helpers.js';

interface StatusJson {
  service: { name: string; pid: number };
  endpoints: { route: string }[];
  warnings: StatusWarning[];
  [key: string]: unknown;
}

function readStatus(url: string): Promise<Took & { status: number; body: StatusJson }> {
  return measuringFields(async () => {
    const res = await fetch(`${url}/status.json`, { headers: admin, signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: (await res.json()) as StatusJson };
  });
}

test('fields returned by extraStatus appear at the top level of status.json next to observe’s own', async (t) => {
  const signals: AbortSignal[] = [];
  const { app, url } = await startService(
    {
      extraStatus: async (signal) => {
        signals.push(signal);
        await sleep(20, signal);
        return { cluster: { instancesUp: 2, instances: [{ id: 'a' }, { id: 'b' }] }, region: 'eu-west' };
      },
    },
    (app) => app.get('/bots', async () => 'ok'),
  );
  t.after(() => app.close());
  await fetch(`${url}/bots`);

  const concurrent = await Promise.all(Array.from({ length: 5 }, () => readStatus(url)));
  for (const { status, body } of concurrent) {
    assert.equal(status, 200);
    assert.deepEqual(body.cluster, { instancesUp: 2, instances: [{ id: 'a' }, { id: 'b' }] });
    assert.equal(body.region, 'eu-west');
    assert.ok(
      body.endpoints.some((e) => e.route === '/bots'),
      'observe’s own data is still there',
    );
    assert.deepEqual(body.warnings, []);
  }
  assert.equal(signals.length, 1, 'concurrent readers share one extraStatus call');
  assert.ok(signals[0] instanceof AbortSignal && !signals[0].aborted);

  // observe's own snapshot API stays synchronous and without the extra fields.
  assert.equal(app.observe.snapshot().cluster, undefined);
});

test('a hanging extraStatus is cut at its timeout and the snapshot is served without it, with a warning', async (t) => {
  const { logger, lines } = memoryLogger();
  let signal: AbortSignal | undefined;
  let calls = 0;
  const { app, url } = await startService(
    {
      logger,
      extraStatusTimeoutMs: 300,
      // Ignores its signal on purpose: the cut must not depend on the source's cooperation.
      extraStatus: (s) => {
        calls++;
        signal = s;
        return new Promise<Record<string, unknown>>(() => {});
      },
    },
    () => {},
  );
  t.after(() => app.close());

  const first = await readStatus(url);
  assert.equal(first.status, 200);
  assert.ok(first.ms >= 250, `answered in ${Math.round(first.ms)} ms, before the 300 ms cut`);
  assertTookLessThan(first, 300 + 700, 'answered at the 300 ms cut');
  assert.equal(first.body.cluster, undefined);
  assert.equal(first.body.service.pid, process.pid);
  assert.deepEqual(first.body.warnings, [{ source: 'extraStatus', reason: 'timeout', timeoutMs: 300 }]);
  assert.equal(signal?.aborted, true, 'the signal given to extraStatus aborted at the timeout');

  // The next snapshot (after the 1 s cache) times out again, but the failure is logged only once.
  await sleep(1_100);
  const second = await readStatus(url);
  assert.equal(calls, 2, 'the second snapshot was taken anew, not served from the cache');
  assert.equal(second.body.warnings[0]?.reason, 'timeout');
  assert.equal(lines.filter((l) => l.event === 'status_extra_failed').length, 1);
});

test('an extraStatus that throws is left out with an error warning naming the error class only', async (t) => {
  const { app, url } = await startService(
    {
      extraStatus: () => {
        throw new TypeError('secret detail that must not reach the page');
      },
    },
    () => {},
  );
  t.after(() => app.close());
  const { status, body } = await readStatus(url);
  assert.equal(status, 200);
  assert.deepEqual(body.warnings, [{ source: 'extraStatus', reason: 'error', error: 'TypeError' }]);
});

test('a key observe already uses is ignored, reported under warnings and logged once', async (t) => {
  const { logger, lines } = memoryLogger();
  let calls = 0;
  const { app, url } = await startService(
    {
      logger,
      extraStatus: () => {
        calls++;
        return { service: { name: 'impostor' }, warnings: ['fake'], cluster: { instancesUp: 1 } };
      },
    },
    () => {},
  );
  t.after(() => app.close());

  const first = await readStatus(url);
  assert.equal(first.status, 200);
  assert.equal(first.body.service.pid, process.pid, 'observe’s service field is kept');
  assert.notEqual(first.body.service.name, 'impostor');
  assert.deepEqual(first.body.cluster, { instancesUp: 1 }, 'the other keys are still added');
  assert.deepEqual(first.body.warnings, [
    { source: 'extraStatus', reason: 'key_collision', keys: ['service', 'warnings'] },
  ]);

  await sleep(1_100);
  const second = await readStatus(url);
  assert.equal(calls, 2, 'the second snapshot was taken anew, not served from the cache');
  assert.equal(second.body.warnings[0]?.reason, 'key_collision');
  const logged = lines.filter((l) => l.event === 'status_extra_key_collision');
  assert.equal(logged.length, 1);
  assert.deepEqual(logged[0]?.keys, ['service', 'warnings']);
});

test('a value that cannot become JSON is left out without breaking status.json', async (t) => {
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  const { app, url } = await startService({ extraStatus: () => ({ cycle, fine: { n: 1 } }) }, () => {});
  t.after(() => app.close());
  const { status, body } = await readStatus(url);
  assert.equal(status, 200);
  assert.deepEqual(body.fine, { n: 1 });
  assert.equal(body.cycle, undefined);
  assert.deepEqual(body.warnings, [{ source: 'extraStatus', reason: 'not_serializable', keys: ['cycle'] }]);
});

test('extraStatus options are validated when observe is registered', async () => {
  assert.equal(resolveObserveOptions({}).extraStatusTimeoutMs, 500);
  assert.throws(() => resolveObserveOptions({ extraStatusTimeoutMs: 0 }), RangeError);
  assert.throws(() => resolveObserveOptions({ extraStatusTimeoutMs: 1.5 }), RangeError);
  assert.throws(
    () => resolveObserveOptions({ extraStatus: 'cluster' as unknown as () => Record<string, unknown> }),
    TypeError,
  );

  // A timeout at or above the request deadline would turn a slow extraStatus into a 504.
  const app = Fastify();
  await app.register(hangproof, { deadlineMs: 400, adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }) });
  await assert.rejects(
    (async () => {
      await app.register(observe, {
        logger: pino({ level: 'silent' }),
        defaultMetrics: false,
        extraStatus: () => ({}),
        extraStatusTimeoutMs: 400,
      });
      await app.ready();
    })(),
    RangeError,
  );
  await app.close().catch(() => {});
});
