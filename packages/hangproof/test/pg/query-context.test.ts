import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import { after, before, test } from 'node:test';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pino from 'pino';
import { inRequest } from './helpers.js';

// A store of the application's own (a tenant, a trace): what a logger mixin or a subscriber reads.
const tenant = new AsyncLocalStorage<string>();
const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'debug', mixin: () => ({ tenant: tenant.getStore() }) },
  { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
);

let testDb: TestDatabase;
let db: Database;

before(async () => {
  testDb = await createTestDatabase();
  // One connection: every statement runs on the socket the first request opened.
  db = createDatabase({ connectionString: testDb.url, max: 1, slowQueryMs: 20, statementTimeoutMs: 500, logger });
});

after(async () => {
  await db.close();
  await testDb.drop();
});

test("a statement's outcome is accounted in its caller's context, not in that of the request that opened the connection", async () => {
  const seenByQueryEvents: (string | undefined)[] = [];
  const onQuery = (): void => {
    seenByQueryEvents.push(tenant.getStore());
  };
  diagnostics.subscribe('hangproof:pg:query', onQuery);
  try {
    await tenant.run('opener', () => inRequest(5_000, 'GET /open', () => db.query('SELECT 1')));
    await tenant.run('second', () => inRequest(5_000, 'GET /slow', () => db.query('SELECT pg_sleep(0.05)')));
    await tenant.run('third', () =>
      inRequest(5_000, 'GET /times-out', () => db.query('SELECT pg_sleep(5)')).catch((err: unknown) => err),
    );
  } finally {
    diagnostics.unsubscribe('hangproof:pg:query', onQuery);
  }
  assert.deepEqual(seenByQueryEvents, ['opener', 'second', 'third'], 'each query event in its own caller');
  const slow = lines.filter((l) => l.route === 'GET /slow');
  assert.ok(slow.length > 0, `a slow-query line for GET /slow: ${JSON.stringify(lines)}`);
  for (const line of slow)
    assert.equal(line.tenant, 'second', `logged in its caller's context: ${JSON.stringify(line)}`);
  const failed = lines.filter((l) => l.route === 'GET /times-out');
  assert.ok(failed.length > 0, `a line for the statement that timed out: ${JSON.stringify(lines)}`);
  for (const line of failed)
    assert.equal(line.tenant, 'third', `logged in its caller's context: ${JSON.stringify(line)}`);
});
