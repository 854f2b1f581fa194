/**
 * The example service of each framework (examples/<framework>/server.ts) run as a user would run
 * it: it serves from a real Postgres, answers a hung route with 504 REQUEST_TIMEOUT within its
 * deadline, answers readiness, and stops cleanly on SIGTERM. Its framework page in docs/frameworks/
 * shows exactly this code.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { botsDatabase } from './bots-database.ts';
import { runExample } from './run-example.ts';

const DEADLINE_MS = 2_000;
const ADMIN_TOKEN = 'examples-admin-token-0123';
const db = botsDatabase();

// Each example, and the page of docs/frameworks/ that shows its code.
const EXAMPLES = [
  ['fastify', 'fastify.md'],
  ['express', 'express.md'],
  ['hono', 'hono.md'],
  ['http', 'node-http.md'],
] as const;

for (const [framework, page] of EXAMPLES) {
  describe(`the ${framework} example`, () => {
    test(`is the code docs/frameworks/${page} shows`, async () => {
      const code = await readFile(new URL(`./${framework}/server.ts`, import.meta.url), 'utf8');
      const doc = await readFile(new URL(`../docs/frameworks/${page}`, import.meta.url), 'utf8');
      const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
      assert.ok(blocks.includes(code), `a code block of docs/frameworks/${page} is examples/${framework}/server.ts`);
    });

    test('serves, answers a hung route with 504 in time, is ready, and stops on SIGTERM', async () => {
      const example = await runExample(new URL(`./${framework}/server.ts`, import.meta.url), {
        DATABASE_URL: db.url,
        ADMIN_TOKEN,
      });
      try {
        const res = await fetch(`${example.url}/bots/1`);
        assert.equal(res.status, 200);
        assert.equal(((await res.json()) as { bots: unknown[] }).bots.length, 3);
        const started = performance.now();
        const hung = await fetch(`${example.url}/hang`);
        assert.equal(hung.status, 504);
        assert.equal(((await hung.json()) as { error: { code: string } }).error.code, 'REQUEST_TIMEOUT');
        assert.ok(performance.now() - started < DEADLINE_MS + 250, 'answered at the deadline');
        assert.equal((await fetch(`${example.url}/readyz`)).status, 200);
        const metrics = await fetch(`${example.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        assert.equal(metrics.status, 200);
        assert.match(
          await metrics.text(),
          /hangproof_http_request_duration_seconds_count\{method="GET",route="\/bots\/:userId"\} 1/,
        );
        const missing = await fetch(`${example.url}/nope`);
        assert.equal(missing.status, 404);
        assert.equal(await example.stop(), 0);
      } finally {
        example.kill();
      }
    });
  });
}
