import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';

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
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', SERVER], {
    env: { ...process.env, DATABASE_URL: db.url, PORT: '0' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  child.stdout.on('data', (c) => {
    out += c;
  });
  const until = performance.now() + 15_000;
  while (!/http:\/\/\S+/.test(out) && performance.now() < until) await sleep(20);
  const url = /http:\/\/\S+/.exec(out)?.[0];
  assert.ok(url, 'the example printed its URL');

  const res = await fetch(`${url}/bots/1`);
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { bots: unknown[] }).bots.length, 3);
  assert.equal((await fetch(`${url}/readyz`)).status, 200);

  child.kill('SIGTERM');
  const [code] = await Promise.race([once(child, 'exit'), sleep(10_000).then(() => ['timeout'])]);
  assert.equal(code, 0);
});
