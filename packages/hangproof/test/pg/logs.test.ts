import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { channels, type QueryEvent } from 'hangproof';
import { createDatabase, type Database, fingerprint } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import { captureLogger, inRequest, timed } from './helpers.js';

let testDb: TestDatabase;
let db: Database;
const log = captureLogger();
const SECRET = 'sk_live_9f8e7d6c5b4a';

before(async () => {
  testDb = await createTestDatabase();
  db = createDatabase({ connectionString: testDb.url, max: 2, slowQueryMs: 100, logger: log.logger });
  await db.query('CREATE TABLE users (id int PRIMARY KEY, api_key text NOT NULL)');
  await db.query('INSERT INTO users SELECT g, md5(g::text) FROM generate_series(1, 10) g');
});

after(async () => {
  await db.close();
  await testDb.drop();
});

test('a slow query is logged with its normalised SQL and parameters replaced by type and length', async () => {
  await inRequest(3000, 'GET /users/:id', () =>
    db.query(`SELECT pg_sleep(0.15), id FROM users WHERE api_key = $1 OR id = 7 OR api_key = 'inline-secret'`, [
      SECRET,
    ]),
  );
  const slow = log.records().find((r) => r.msg === 'slow postgres query');
  assert.ok(slow !== undefined);
  assert.equal(slow.route, 'GET /users/:id');
  assert.deepEqual(slow.params, [`string(${SECRET.length})`]);
  assert.equal(slow.sql, 'SELECT pg_sleep(?),id FROM users WHERE api_key=? OR id=? OR api_key=?');
  assert.ok((slow.durationMs as number) >= 100);
});

test('a secret bound as a parameter appears in no log line, even when the server quotes it in an error', async () => {
  await inRequest(3000, 'POST /login', async () => {
    await db.query('SELECT pg_sleep(0.12) WHERE $1::text IS NOT NULL', [SECRET]);
    await assert.rejects(db.query('SELECT $1::int', [SECRET]), (err: Error) => {
      assert.ok(!err.message.includes(SECRET), 'the error the caller gets is scrubbed too');
      assert.ok(!String(err.stack).includes(SECRET));
      return true;
    });
    await assert.rejects(db.query('INSERT INTO users (id, api_key) VALUES ($1, $2)', [1, SECRET]), { code: '23505' });
    const slowTx = await timed(() =>
      inRequest(400, 'POST /login', () => db.tx(async (t) => t.query('SELECT pg_sleep(1), $1::text', [SECRET]))),
    );
    assert.ok(slowTx.error !== undefined);
  });
  assert.ok(log.lines.length > 0);
  for (const line of log.lines) assert.ok(!line.includes(SECRET), `leaked in: ${line}`);
});

test('the same query run sequentially more than the threshold in one request is logged once as N+1 and counted', async () => {
  const before = db.stats().nPlusOneDetected;
  await inRequest(3000, 'GET /bots', async () => {
    for (let id = 1; id <= 8; id++) await db.query('SELECT api_key FROM users WHERE id = $1', [id]);
  });
  const lines = log.records().filter((r) => r.msg?.toString().startsWith('N+1 query pattern'));
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.route, 'GET /bots');
  assert.equal(lines[0]?.sql, 'SELECT api_key FROM users WHERE id=?');
  assert.equal(lines[0]?.count, 6);
  assert.equal(db.stats().nPlusOneDetected, before + 1);

  // Five lookups, or a parallel batch, are not N+1.
  await inRequest(3000, 'GET /bots/few', async () => {
    for (let id = 1; id <= 5; id++) await db.query('SELECT api_key FROM users WHERE id = $1', [id]);
    await Promise.all([1, 2, 3, 4, 5, 6, 7].map((id) => db.query('SELECT id FROM users WHERE id = $1', [id])));
  });
  assert.equal(db.stats().nPlusOneDetected, before + 1);
});

test('each query becomes a db span named by its verb and table, with rows, query id and fingerprint, and is published on the query channel', async () => {
  const events: QueryEvent[] = [];
  const listener = (e: unknown): void => void events.push(e as QueryEvent);
  channels.query.subscribe(listener);
  try {
    const ctx = await inRequest(3000, 'GET /users', async (c) => {
      await db.query('SELECT id FROM users WHERE id <= $1', [3]);
      await db.tx(async (t) => {
        await t.query('SELECT 1');
      });
      return c;
    });
    const spans = ctx.spans.filter((s) => s.kind === 'db');
    assert.deepEqual(
      spans.map((s) => s.name),
      ['SELECT users', 'SELECT'],
    );
    assert.equal(spans[0]?.attrs?.rows, 3);
    assert.equal(spans[0]?.attrs?.fingerprint, 'SELECT id FROM users WHERE id<=?');
    assert.match(String(spans[0]?.attrs?.queryId), /^[0-9a-f]{12}$/);
    assert.equal(ctx.dbCount, 2, 'the per-kind totals count every query');
    const mine = events.filter((e) => e.ctx === ctx);
    assert.equal(mine.length, 2);
    // The event carries what a tracer needs for the database conventions, without the context's records.
    const url = new URL(testDb.url);
    assert.equal(mine[0]?.name, 'SELECT users');
    assert.equal(mine[0]?.queryId, spans[0]?.attrs?.queryId);
    assert.equal(mine[0]?.serverAddress, url.hostname);
    assert.equal(mine[0]?.serverPort, Number(url.port));
    assert.ok((mine[0]?.startedAt ?? 0) >= ctx.startedAt);
  } finally {
    channels.query.unsubscribe(listener);
  }
});

test('fingerprints drop literals of every kind and keep identifiers', () => {
  assert.equal(
    fingerprint(`SELECT * FROM t WHERE a = 'x''y' AND b = E'\\'z' AND c = $tag$ secret $tag$`),
    'SELECT * FROM t WHERE a=? AND b=? AND c=?',
  );
  assert.equal(
    fingerprint('SELECT "col1", t2.x FROM t2 WHERE id IN (1, 2, 3) -- note 42'),
    'SELECT "col1",t2.x FROM t2 WHERE id IN(?..)',
  );
  assert.equal(fingerprint('INSERT INTO t VALUES ($1, $2), ($3, $4)'), fingerprint('INSERT INTO t VALUES ($1,$2)'));
  assert.equal(fingerprint('SELECT 1.5e3 /* 7 */ + x1'), 'SELECT ? + x1');
});
