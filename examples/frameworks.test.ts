/**
 * The example service of each framework (examples/<framework>/server.ts) run as a user would run
 * it: it serves from a real Postgres, answers a hung route with 504 REQUEST_TIMEOUT within its
 * deadline, answers readiness, and stops cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';

const DEADLINE_MS = 2_000;
const ADMIN_TOKEN = 'examples-admin-token-0123';
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

for (const framework of ['express', 'hono', 'http']) {
  describe(`the ${framework} example`, () => {
    test('serves, answers a hung route with 504 in time, is ready, and stops on SIGTERM', async () => {
      const server = fileURLToPath(new URL(`./${framework}/server.ts`, import.meta.url));
      const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', server], {
        env: { ...process.env, DATABASE_URL: db.url, PORT: '0', ADMIN_TOKEN },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      try {
        // The ready line: the URL the example prints once it listens.
        const url = await new Promise<string>((resolve, reject) => {
          let out = '';
          const timer = setTimeout(() => reject(new Error(`no URL printed; got ${out}`)), 15_000);
          child.stdout.on('data', (c: Buffer) => {
            out += c;
            const m = /http:\/\/\S+/.exec(out);
            if (m !== null) {
              clearTimeout(timer);
              resolve(m[0]);
            }
          });
        });
        const res = await fetch(`${url}/bots/1`);
        assert.equal(res.status, 200);
        assert.equal(((await res.json()) as { bots: unknown[] }).bots.length, 3);
        const started = performance.now();
        const hung = await fetch(`${url}/hang`);
        assert.equal(hung.status, 504);
        assert.equal(((await hung.json()) as { error: { code: string } }).error.code, 'REQUEST_TIMEOUT');
        assert.ok(performance.now() - started < DEADLINE_MS + 250, 'answered at the deadline');
        assert.equal((await fetch(`${url}/readyz`)).status, 200);
        const metrics = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        assert.equal(metrics.status, 200);
        assert.match(
          await metrics.text(),
          /hangproof_http_request_duration_seconds_count\{method="GET",route="\/bots\/:userId"\} 1/,
        );
        const missing = await fetch(`${url}/nope`);
        assert.equal(missing.status, 404);
        child.kill('SIGTERM');
        const [code] = await Promise.race([
          once(child, 'exit'),
          new Promise<[string]>((r) => setTimeout(() => r(['timeout']), 10_000)),
        ]);
        assert.equal(code, 0);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
  });
}
