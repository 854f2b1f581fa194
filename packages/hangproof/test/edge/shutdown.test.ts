import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { json, startApp } from '../support/start-app.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/shutdown-server.ts', import.meta.url));

async function startServer(
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string; out: () => string }> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', FIXTURE], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c) => {
    out += c;
  });
  child.stderr?.resume();
  const until = performance.now() + 15_000;
  while (!out.includes('listening ') && performance.now() < until) await sleep(20);
  const match = /listening (\S+)/.exec(out);
  if (match?.[1] === undefined) {
    child.kill('SIGKILL');
    throw new Error('fixture server did not start');
  }
  return { child, url: match[1], out: () => out };
}

async function exitOf(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; ms: number }> {
  const t0 = performance.now();
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const code = await Promise.race([exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    child.kill('SIGKILL');
    throw new Error(`process did not exit within ${timeoutMs} ms`);
  }
  return { code, ms: performance.now() - t0 };
}

test('SIGTERM drains an in-flight request, runs the close hooks and exits 0', async () => {
  const { child, url, out } = await startServer();
  const inFlight = fetch(`${url}/work?ms=700`).then(async (r) => ({ status: r.status, body: await json(r) }));
  await sleep(150);
  child.kill('SIGTERM');
  const res = await inFlight;
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { done: 700 });
  const { code } = await exitOf(child, 5000);
  assert.equal(code, 0);
  assert.match(out(), /hook ran/);
});

test('a second signal exits at once', async () => {
  const { child, url } = await startServer();
  const inFlight = fetch(`${url}/work?ms=8000`).catch(() => 'reset');
  await sleep(150);
  child.kill('SIGTERM');
  await sleep(100);
  const t0 = performance.now();
  child.kill('SIGINT');
  const { code } = await exitOf(child, 2000);
  assert.equal(code, 1);
  assert.ok(performance.now() - t0 < 1000);
  await inFlight;
});

test('requests that outlive the drain bound are aborted and the process still exits', async () => {
  const { child, url } = await startServer({ DRAIN_MS: '300' });
  const inFlight = fetch(`${url}/work?ms=8000`).then(async (r) => ({ status: r.status, body: await json(r) }));
  await sleep(150);
  child.kill('SIGTERM');
  const { code, ms } = await exitOf(child, 3000);
  assert.equal(code, 1, 'a forced drain exits non-zero');
  assert.ok(ms < 2000, `exited after ${ms} ms`);
  const res = await inFlight;
  assert.equal(res.status, 503);
  assert.equal(res.body.error.code, 'SHUTTING_DOWN');
});

test('app.close() with a request in flight returns once it is answered, not after the keep-alive timeout', async (t) => {
  const { app, url } = await startApp({ deadlineMs: 5000 }, (app) => {
    app.get('/slow', async () => {
      await sleep(400);
      return { done: true };
    });
  });
  t.after(() => app.close());
  const inFlight = fetch(`${url}/slow`);
  await sleep(100);
  const t0 = performance.now();
  const closed = app.close();
  const res = await inFlight;
  assert.equal(res.status, 200, 'the request in flight is served');
  assert.equal(res.headers.get('connection'), 'close');
  await Promise.race([closed, sleep(3000)]);
  const ms = performance.now() - t0;
  // The request had ~300 ms left; the keep-alive timeout is 72 s.
  assert.ok(ms < 1500, `close() took ${Math.round(ms)} ms`);
});
