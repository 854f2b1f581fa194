import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { sleep } from 'hangproof';
import { createDatabase } from 'hangproof/pg';
import { createTestDatabase } from 'hangproof/testing';
import { pino } from 'pino';
import { countdown, latch, waitUntil } from '../support/latch.js';
import { assertTookLessThan, measuringLoopStall } from '../support/loop-stall.ts';
import { admin, busyLoop, startService } from './helpers.js';

interface ErrorJson {
  error: { code: string; reason?: string };
}

test('beyond the in-flight limit a request gets 503 OVERLOADED with Retry-After at once, and probes still answer', async (t) => {
  const inHandler = countdown(2);
  const release = latch();
  let hooksRun = 0;
  const { app, url } = await startService({ maxInFlight: 2, maxQueued: 0, retryAfterSec: 3 }, (app) => {
    // The application's own hook: a refused request never reaches Fastify, so never runs it.
    app.addHook('onRequest', (_req, _reply, done) => {
      hooksRun++;
      done();
    });
    app.get('/work', async () => {
      inHandler.arrive();
      await release.opened;
      return 'done';
    });
  });
  t.after(() => app.close());
  t.after(release.open);

  const busy = [fetch(`${url}/work`), fetch(`${url}/work`)];
  await inHandler.reached;
  const hooksBefore = hooksRun;
  const took = await measuringLoopStall(() => fetch(`${url}/work`));
  const refused = took.value;
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('retry-after'), '3');
  const body = (await refused.json()) as ErrorJson;
  assert.equal(body.error.code, 'OVERLOADED');
  assert.equal(body.error.reason, 'concurrency');
  assertTookLessThan(took, 200, 'refused at once, not after the others');
  assert.equal(hooksRun, hooksBefore, 'refused before Fastify routed it: no hook of the application ran');
  assert.match(refused.headers.get('x-request-id') ?? '', /^[A-Za-z0-9._:-]+$/);

  assert.equal((await fetch(`${url}/healthz`)).status, 200, '/healthz is exempt');
  assert.equal((await fetch(`${url}/metrics`, { headers: admin })).status, 200, '/metrics is exempt');
  release.open();
  assert.deepEqual(
    (await Promise.all(busy)).map((r) => r.status),
    [200, 200],
  );
  assert.equal((await fetch(`${url}/work`)).status, 200, 'slots are given back when requests end');

  const metrics = await (await fetch(`${url}/metrics`, { headers: admin })).text();
  assert.match(metrics, /hangproof_requests_shed_total\{reason="concurrency"\} 1/);
});

test('a request waits at most queueWaitMs for a slot: served if one frees in time, 503 otherwise', async (t) => {
  let entered = latch();
  const { app, url } = await startService({ maxInFlight: 1, maxQueued: 1, queueWaitMs: 300 }, (app) => {
    app.get('/work', async (req) => {
      const ms = Number((req.query as { ms?: string }).ms ?? 0);
      entered.open();
      await sleep(ms);
      return 'done';
    });
  });
  t.after(() => app.close());
  const queuedNow = async (): Promise<number> =>
    ((await (await fetch(`${url}/status.json`, { headers: admin })).json()) as { overload: { queued: number } })
      .overload.queued;

  // The slot frees after ~100 ms, within the 300 ms wait: the queued request is served.
  const first = fetch(`${url}/work?ms=100`);
  await entered.opened;
  const queued = await fetch(`${url}/work?ms=0`);
  assert.equal(queued.status, 200);
  assert.equal((await first).status, 200);

  // The slot is held for 1500 ms: the queued request gives up after ~300 ms, and with the queue
  // full a third one is refused at once.
  entered = latch();
  const long = fetch(`${url}/work?ms=1500`);
  await entered.opened;
  const started = performance.now();
  const waiting = fetch(`${url}/work?ms=0`);
  await waitUntil('the second request to queue', async () => (await queuedNow()) === 1);
  const third = await fetch(`${url}/work?ms=0`);
  assert.equal(third.status, 503);
  assert.equal(((await third.json()) as ErrorJson).error.reason, 'concurrency');
  const timedOut = await waiting;
  const waitedMs = performance.now() - started;
  assert.equal(timedOut.status, 503);
  assert.equal(((await timedOut.json()) as ErrorJson).error.reason, 'queue_timeout');
  assert.ok(waitedMs >= 250 && waitedMs < 300 + 400, `waited about queueWaitMs (${Math.round(waitedMs)} ms)`);
  assert.equal((await long).status, 200);
});

/** A GET on a connection of its own: its status once answered, and the socket to leave with. */
function rawGet(url: string, path: string): { socket: Socket; status: Promise<number> } {
  const { port } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  const status = new Promise<number>((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => resolve(Number(chunk.toString('latin1').split(' ')[1])));
    socket.once('close', () => reject(new Error(`no answer to ${path}`)));
  });
  status.catch(() => {});
  return { socket, status };
}

test('a queued request whose client leaves gives its place in the queue back at once', async (t) => {
  const entered = latch();
  const release = latch();
  // /status.json is reused for up to a second: the deadline leaves the holder time to be seen.
  const { app, url } = await startService(
    { maxInFlight: 1, maxQueued: 1, queueWaitMs: 10_000 },
    (app) => {
      app.get('/work', async () => {
        entered.open();
        await release.opened;
        return 'done';
      });
    },
    15_000,
  );
  t.after(() => app.close());
  t.after(release.open);
  const queuedNow = async (): Promise<number> =>
    ((await (await fetch(`${url}/status.json`, { headers: admin })).json()) as { overload: { queued: number } })
      .overload.queued;

  // Each request on a connection of its own, so none waits behind another on the client side.
  const holder = rawGet(url, '/work');
  await entered.opened;
  const leaving = rawGet(url, '/work');
  await waitUntil('the second request to queue', async () => (await queuedNow()) === 1);
  leaving.socket.destroy();
  // Long before its 10 s wait ends the queue is empty again: a newcomer queues instead of being
  // refused with the queue full, and gets the slot when it frees.
  await waitUntil('the queue to empty', async () => (await queuedNow()) === 0);
  const next = rawGet(url, '/work');
  await waitUntil('the newcomer to queue', async () => (await queuedNow()) === 1);
  release.open();
  assert.equal(await holder.status, 200);
  assert.equal(await next.status, 200);
});

test('requests are shed while the heap in use is above maxHeapUsedBytes', async (t) => {
  const { app, url } = await startService({ maxHeapUsedBytes: 1, sampleIntervalMs: 20 }, (app) => {
    app.get('/work', async () => 'done');
  });
  t.after(() => app.close());
  // The heap is sampled every 20 ms: wait for the first sample to take effect.
  let res = await fetch(`${url}/work`);
  await waitUntil('a request to be shed', async () => {
    if (res.status === 503) return true;
    await res.arrayBuffer();
    res = await fetch(`${url}/work`);
    return false;
  });
  assert.equal(((await res.json()) as ErrorJson).error.reason, 'heap');
  assert.equal((await fetch(`${url}/readyz`)).status, 200, '/readyz is exempt');
});

test('requests are shed while the event loop lags past maxEventLoopDelayMs, and admitted again once it recovers', async (t) => {
  const { app, url } = await startService(
    { maxEventLoopDelayMs: 30, sampleIntervalMs: 200, stallThresholdMs: 0, maxInFlight: 0 },
    (app) => {
      app.get('/block', async (req) => busyLoop(Number((req.query as { ms?: string }).ms ?? 0)));
      app.get('/work', async () => 'done');
    },
  );
  t.after(() => app.close());
  assert.equal((await fetch(`${url}/work`)).status, 200);

  // Five clients each run five 60 ms blocks back to back: ~1.5 s of a loop that barely turns.
  let loadDone = false;
  const load = Promise.all(
    Array.from({ length: 5 }, async () => {
      for (let i = 0; i < 5; i++) await fetch(`${url}/block?ms=60`);
    }),
  ).finally(() => {
    loadDone = true;
  });
  const reasons: string[] = [];
  while (!loadDone) {
    const res = await fetch(`${url}/work`);
    if (res.status === 503) reasons.push(((await res.json()) as ErrorJson).error.reason ?? '');
    else await res.arrayBuffer();
    await sleep(50);
  }
  await load;
  assert.ok(reasons.length > 0, 'some requests were shed during the lag');
  assert.ok(reasons.every((r) => r === 'event_loop'));

  // A few quiet samples later the pressure is gone.
  await waitUntil('requests to be admitted again', async () => {
    const res = await fetch(`${url}/work`);
    await res.arrayBuffer();
    return res.status === 200;
  });
});

test('with adaptiveLimit the limit shrinks once requests queue for the database, and the excess gets 503 at once', async (t) => {
  const testDb = await createTestDatabase();
  const db = createDatabase({ connectionString: testDb.url, max: 2, logger: pino({ level: 'silent' }) });
  const { app, url } = await startService(
    {
      maxInFlight: 100,
      maxQueued: 0,
      adaptiveLimit: { initialLimit: 30, minLimit: 2, windowMs: 50, minWindowSamples: 5 },
    },
    (app) => {
      app.get('/work', async () => {
        await db.query('SELECT pg_sleep(0.02)');
        return 'done';
      });
    },
    5_000,
  );
  t.after(async () => {
    await app.close();
    await db.close();
    await testDb.drop();
  });
  const overload = async (): Promise<{ adaptive: boolean; limit: number }> =>
    (
      (await (await fetch(`${url}/status.json`, { headers: admin })).json()) as {
        overload: { adaptive: boolean; limit: number };
      }
    ).overload;

  // One request at a time for a dozen windows: each takes about 20 ms, which becomes the baseline.
  for (let i = 0; i < 60; i++) assert.equal((await fetch(`${url}/work`)).status, 200);
  assert.deepEqual(await overload(), { ...(await overload()), adaptive: true, limit: 30 });

  // Bursts of 30 at once on 2 connections: they queue for the pool and latency climbs to ~300 ms.
  const statuses: number[] = [];
  for (let round = 0; round < 10; round++) {
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetch(`${url}/work`)));
    for (const res of answers) {
      statuses.push(res.status);
      await res.arrayBuffer();
    }
  }
  const { limit } = await overload();
  assert.ok(limit <= 20, `the limit shrank from 30 (now ${limit})`);
  assert.ok(statuses.includes(503), 'requests beyond the shrunken limit were refused');
  assert.ok(
    statuses.every((s) => s === 200 || s === 503),
    `only 200 and 503: ${[...new Set(statuses)].join(', ')}`,
  );
  const metrics = await (await fetch(`${url}/metrics`, { headers: admin })).text();
  assert.match(metrics, new RegExp(`hangproof_concurrency_limit ${limit}\\b`));
});
