import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import type pg from 'pg';
import { assertTookLessThan, measuringLoopStall } from '../support/loop-stall.ts';
import { adminClient, captureLogger, sessionsRunning, waitFor } from './helpers.js';

let testDb: TestDatabase;
let db: Database;
let admin: pg.Client;
let app: FastifyInstance;
let base: string;
const log = captureLogger();

before(async () => {
  testDb = await createTestDatabase();
  db = createDatabase({ connectionString: testDb.url, max: 2, acquireTimeoutMs: 300, logger: log.logger });
  admin = await adminClient(testDb.url);
  app = Fastify(serverOptions({ maxDeadlineMs: 1000 }));
  await app.register(hangproof, { deadlineMs: 1000, logger: log.logger });
  app.hangproof.addReadinessCheck('postgres', (signal) => db.readinessCheck(signal), { timeoutMs: 1000 });
  app.get('/slow', async () => {
    await db.query('SELECT pg_sleep(30)');
    return { ok: true };
  });
  app.get('/fast', async () => (await db.query<{ n: number }>('SELECT 1 AS n')).rows[0]);
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});

after(async () => {
  await app.close();
  await db.close();
  await admin.end();
  await testDb.drop();
});

async function sleeping(): Promise<number> {
  return (await sessionsRunning(admin, testDb.name, 'SELECT pg_sleep(30)')).length;
}

test('a 30 s query behind a 1 s route deadline answers 504/503 in time and stops running on the server', async (t) => {
  // The server runs in this process: its deadline timer cannot fire while this loop is starved.
  const took = await measuringLoopStall(() => fetch(`${base}/slow`, { signal: AbortSignal.timeout(5000) }));
  const res = took.value;
  assert.ok(res.status === 504 || res.status === 503, `status ${res.status}`);
  const body = (await res.json()) as { error: { code: string; dependency?: string } };
  assert.ok(['REQUEST_TIMEOUT', 'DEPENDENCY_TIMEOUT'].includes(body.error.code), body.error.code);
  assertTookLessThan(took, 1000 + 250, 'answered in time');
  const idleAfter = await waitFor(async () => (await sleeping()) === 0, 1000);
  assert.ok(idleAfter >= 0, 'pg_sleep(30) still runs on the server 1 s later');
  t.diagnostic(
    `HTTP ${res.status} ${body.error.code} after ${Math.round(took.ms)} ms (loop stalled ${Math.round(took.stallMs)} ms); backend idle ${Math.round(idleAfter)} ms later`,
  );
});

test('a client that hangs up mid-query gets its statement cancelled on the server', async () => {
  const controller = new AbortController();
  const pending = fetch(`${base}/slow`, { signal: controller.signal }).catch(() => undefined);
  assert.ok((await waitFor(async () => (await sleeping()) === 1, 900)) >= 0, 'the query started');
  controller.abort();
  await pending;
  const gone = await waitFor(async () => (await sleeping()) === 0, 1000);
  assert.ok(gone >= 0 && gone < 500, `backend idle ${Math.round(gone)} ms after the client left`);
});

test('the readiness route uses the database check and a fast route works', async () => {
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  const fast = await fetch(`${base}/fast`);
  assert.equal(fast.status, 200);
  assert.deepEqual(await fast.json(), { n: 1 });
});
