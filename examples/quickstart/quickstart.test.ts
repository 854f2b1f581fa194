import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';
import { runExample } from '../run-example.ts';

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
  const c = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 5000 });
  await c.connect();
  await c.query(`CREATE TABLE bots (id bigserial PRIMARY KEY, user_id bigint NOT NULL, name text NOT NULL, stage text NOT NULL);
                 INSERT INTO bots (user_id, name, stage) SELECT 1, 'bot ' || g, 'live' FROM generate_series(1, 3) g;`);
  await c.end();
});
after(() => db.drop());

test('the README example is the code of examples/quickstart/server.ts', async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.equal(block, await readFile(SERVER, 'utf8'));
});

test('the README example serves, answers readiness and stops cleanly on SIGTERM', async () => {
  const example = await runExample(new URL('./server.ts', import.meta.url), { DATABASE_URL: db.url });
  const url = example.url;
  try {
    const res = await fetch(`${url}/bots/1`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { bots: unknown[] }).bots.length, 3);
    assert.equal((await fetch(`${url}/readyz`)).status, 200);

    assert.equal(await example.stop(), 0);
  } finally {
    example.kill();
  }
});
