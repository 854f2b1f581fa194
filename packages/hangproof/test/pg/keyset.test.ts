import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createDatabase, type Database, decodeCursor, encodeCursor, keysetPage } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import { captureLogger } from './helpers.js';

let testDb: TestDatabase;
let db: Database;

before(async () => {
  testDb = await createTestDatabase();
  db = createDatabase({ connectionString: testDb.url, max: 2, logger: captureLogger().logger });
  await db.query('CREATE TABLE events (id int PRIMARY KEY, created_at timestamptz NOT NULL)');
  // Many rows share a timestamp, so only the id tiebreaker makes the order total.
  await db.query(
    `INSERT INTO events SELECT g, timestamptz '2024-01-01' + (g / 7) * interval '1 minute' FROM generate_series(1, 103) g`,
  );
});

after(async () => {
  await db.close();
  await testDb.drop();
});

test('a cursor survives the round trip through encode and decode', () => {
  const cursor = encodeCursor(['2024-01-01T00:00:00.000Z', 42], 'desc');
  assert.match(cursor, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(decodeCursor(cursor, 2, 'desc').k, ['2024-01-01T00:00:00.000Z', 42]);
});

test('a malformed, foreign or mismatched cursor is BAD_REQUEST', () => {
  const good = encodeCursor([1, 2]);
  for (const bad of [
    '',
    'not base64!',
    Buffer.from('{"v":2,"d":"asc","k":[1,2]}').toString('base64url'),
    'e30',
    'x'.repeat(5000),
  ]) {
    assert.throws(() => decodeCursor(bad, 2), { code: 'BAD_REQUEST' });
  }
  assert.throws(() => decodeCursor(good, 3), { code: 'BAD_REQUEST' }, 'wrong key count');
  assert.throws(() => decodeCursor(good, 2, 'desc'), { code: 'BAD_REQUEST' }, 'wrong direction');
  assert.throws(() => keysetPage({ orderBy: ['id'], cursor: 'garbage!' }), { code: 'BAD_REQUEST' });
});

test('walking every page visits each row exactly once in a stable order, with page size capped', async () => {
  const seen: number[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const k = keysetPage({ orderBy: ['created_at', 'id'], direction: 'desc', cursor, limit: 10_000, maxPageSize: 25 });
    assert.equal(k.pageSize, 25);
    const { rows } = await db.query<{ id: number; created_at: Date }>(
      `SELECT id, created_at FROM events WHERE ${k.where} ORDER BY ${k.orderBy} ${k.limit}`,
      k.params,
    );
    const page = k.page(rows, (r) => [r.created_at.toISOString(), r.id]);
    seen.push(...page.items.map((r) => r.id));
    cursor = page.nextCursor ?? undefined;
    pages++;
  } while (cursor !== undefined && pages < 20);
  assert.equal(pages, 5);
  assert.equal(seen.length, 103);
  assert.equal(new Set(seen).size, 103);
  assert.equal(seen[0], 103);
});
