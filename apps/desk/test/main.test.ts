import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';

let database: TestDatabase | undefined;
after(async () => {
  await database?.drop();
});

test('npm start on DATABASE_URL migrates, seeds, serves, and stops in order on SIGINT', async () => {
  database = await createTestDatabase();
  const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', main], {
    env: { ...process.env, DATABASE_URL: database.url, DESK_SEED: 'small', PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += String(d);
  });
  child.stderr.on('data', (d) => {
    out += String(d);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    // The banner's last line says the desk is ready: wait for it (bounded), not for a polling tick.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner within 60 s:\n${out}`)), 60_000);
      const check = (): void => {
        if (!/Ctrl-C stops everything/.test(out)) return;
        clearTimeout(timer);
        resolve();
      };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the desk exited (${code}) before its banner:\n${out}`));
      });
      check();
    });
    assert.match(out, /seeded 'small' volume/);
    const base = /Health\s+(http:\/\/127\.0\.0\.1:\d+)\/healthz/.exec(out)?.[1];
    assert.ok(base, out);
    const token = /Demo user token\s+(\S+)/.exec(out)?.[1] ?? '';
    const res = await fetch(`${base}/api/bots/overview`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(res.status, 200);
    // The banner gives the URL `hangproof pg` needs, without the password of a URL the user gave.
    const shownUrl = /Database URL\s+(\S+)/.exec(out)?.[1] ?? '';
    const given = new URL(database.url);
    assert.equal(new URL(shownUrl).host, given.host, out);
    assert.equal(new URL(shownUrl).pathname, given.pathname, out);
    if (given.password !== '') assert.equal(new URL(shownUrl).password, '***');
    // A page load asks for a favicon: it is served, and /favicon.ico is not a 404.
    assert.equal((await fetch(`${base}/favicon.svg`)).headers.get('content-type'), 'image/svg+xml');
    assert.equal((await fetch(`${base}/favicon.ico`)).status, 204);

    child.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    assert.equal(code, 0, out);
    const order = ['stopping jobs', 'stopping simulated market-data', 'stopping simulated broker'].map((s) =>
      out.indexOf(s),
    );
    assert.ok(
      order.every((i) => i > 0),
      out,
    );
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
      'jobs and pool stop before the providers',
    );
    assert.doesNotMatch(out, /stopping PostgreSQL/, 'a DATABASE_URL server is not ours to stop');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
