import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, test } from 'node:test';
import type { EvidenceEvent } from 'hangproof';
import type { StatusDocument } from 'hangproof/observe';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';
import { pino } from 'pino';
import { latch } from '../support/latch.js';
import { admin, botRoutes, startService } from './helpers.js';

let testDb: TestDatabase;
before(async () => {
  testDb = await createTestDatabase();
});
after(async () => {
  await testDb.drop();
});

/** The `bots` pool of the status tests, silent, with a short lock_timeout so lock waits end fast. */
async function botsPool(url: string): Promise<Database> {
  const db = createDatabase({
    connectionString: url,
    name: 'main',
    max: 4,
    lockTimeoutMs: 600,
    logger: pino({ level: 'silent' }),
  });
  await db.query('CREATE TABLE IF NOT EXISTS bots (id int PRIMARY KEY, name text NOT NULL)');
  await db.query("INSERT INTO bots SELECT g, 'bot-' || g FROM generate_series(1, 200) g ON CONFLICT DO NOTHING");
  return db;
}

async function statusJson(url: string): Promise<StatusDocument> {
  const res = await fetch(`${url}/status.json`, { headers: admin });
  assert.equal(res.status, 200);
  return (await res.json()) as StatusDocument;
}

/** Resolves when an evidence line matching `match` is published (bounded by the test's timeout). */
function evidenceSeen(match: (e: EvidenceEvent) => boolean): { seen: Promise<void>; stop: () => void } {
  const l = latch();
  const onEvidence = (m: unknown): void => {
    if (match(m as EvidenceEvent)) l.open();
  };
  subscribe('hangproof:evidence', onEvidence);
  return { seen: l.opened, stop: () => unsubscribe('hangproof:evidence', onEvidence) };
}

test('healthy traffic leaves no likely cause on /status.json', async (t) => {
  const db = await botsPool(testDb.url);
  t.after(() => db.close());
  const { app, url } = await startService({ pools: { main: db } }, (app) => botRoutes(app, db));
  t.after(() => app.close());

  for (let i = 1; i <= 20; i++) assert.equal((await fetch(`${url}/api/bots/${i}`)).status, 200);

  assert.deepEqual((await statusJson(url)).likelyCauses, []);
});

test('a table held by another session ranks a lock wait on that table first on /status.json', {
  timeout: 30_000,
}, async (t) => {
  const db = await botsPool(testDb.url);
  t.after(() => db.close());
  const { app, url } = await startService({ pools: { main: db } }, (app) => botRoutes(app, db));
  t.after(() => app.close());
  const lockLine = evidenceSeen((e) => e.fields.event === 'pg.lock_wait' && e.fields.relation === 'bots');
  t.after(lockLine.stop);

  // An operator's session takes the whole table and keeps its transaction open.
  const operator = new pg.Client({ connectionString: testDb.url, application_name: 'psql' });
  operator.on('error', () => {});
  await operator.connect();
  t.after(() => operator.end());
  await operator.query('BEGIN');
  await operator.query('LOCK TABLE bots IN ACCESS EXCLUSIVE MODE');

  const answers = await Promise.all([1, 2, 3, 4].map((id) => fetch(`${url}/api/bots/${id}`)));
  for (const res of answers) {
    assert.ok(res.status >= 500, `status ${res.status}`);
    assert.equal(((await res.json()) as { error: { phase: string } }).error.phase, 'lock');
  }
  // The lock's evidence is captured from Postgres off the request path: wait for its line.
  await lockLine.seen;
  await operator.query('ROLLBACK');

  const causes = (await statusJson(url)).likelyCauses;
  const first = causes[0];
  assert.ok(first, 'a likely cause is listed');
  assert.equal(first.kind, 'pg.lock_wait');
  assert.equal(first.subject, 'bots');
  assert.equal(first.requests, 4, 'it explains the four requests that waited');
  assert.match(first.title, /held by pid \d+ \(psql, idle in transaction/);
  for (const c of causes)
    assert.deepEqual(Object.keys(c).sort(), ['detail', 'kind', 'requests', 'score', 'subject', 'title']);
});
