import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { botsDatabase } from '../bots-database.ts';
import { runExample } from '../run-example.ts';

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
const db = botsDatabase();

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
