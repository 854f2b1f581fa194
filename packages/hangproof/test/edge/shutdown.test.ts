import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { latch } from '../support/latch.ts';
import { json, startApp } from '../support/start-app.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/shutdown-server.ts', import.meta.url));

interface FixtureServer {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything the fixture wrote to stdout so far. */
  out(): string;
  /** Resolves when stdout (or, with `stream: 'stderr'`, the log) contains `text`; bounded. */
  printed(text: string, stream?: 'stdout' | 'stderr', timeoutMs?: number): Promise<void>;
}

async function startServer(env: Record<string, string> = {}): Promise<FixtureServer> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', FIXTURE], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const text = { stdout: '', stderr: '' };
  child.stdout?.on('data', (c) => {
    text.stdout += c;
  });
  child.stderr?.on('data', (c) => {
    text.stderr += c;
  });
  const printed = async (wanted: string, stream: 'stdout' | 'stderr' = 'stdout', timeoutMs = 15_000) => {
    const source = stream === 'stdout' ? child.stdout : child.stderr;
    const until = performance.now() + timeoutMs;
    while (!text[stream].includes(wanted)) {
      const left = until - performance.now();
      if (left <= 0 || child.exitCode !== null) throw new Error(`the fixture did not print "${wanted}"`);
      // The next chunk, or the bound; the timer is cleared so it cannot keep the test process alive.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        source?.once('data', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  try {
    await printed('listening ');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const match = /listening (\S+)/.exec(text.stdout);
  if (match?.[1] === undefined) throw new Error('fixture server printed no URL');
  return { child, url: match[1], out: () => text.stdout, printed };
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
  const { child, url, out, printed } = await startServer();
  const inFlight = fetch(`${url}/work?ms=700`).then(async (r) => ({ status: r.status, body: await json(r) }));
  await printed('handling /work 700');
  child.kill('SIGTERM');
  const res = await inFlight;
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { done: 700 });
  const { code } = await exitOf(child, 5000);
  assert.equal(code, 0);
  assert.match(out(), /hook ran/);
});

test('a second signal exits at once', async () => {
  const { child, url, printed } = await startServer();
  const inFlight = fetch(`${url}/work?ms=8000`).catch(() => 'reset');
  await printed('handling /work 8000');
  child.kill('SIGTERM');
  await printed('shutdown started', 'stderr');
  const t0 = performance.now();
  child.kill('SIGINT');
  const { code } = await exitOf(child, 2000);
  assert.equal(code, 1);
  assert.ok(performance.now() - t0 < 1000);
  await inFlight;
});

test('requests that outlive the drain bound are aborted and the process still exits', async () => {
  const { child, url, printed } = await startServer({ DRAIN_MS: '300' });
  const inFlight = fetch(`${url}/work?ms=8000`).then(async (r) => ({ status: r.status, body: await json(r) }));
  await printed('handling /work 8000');
  child.kill('SIGTERM');
  const { code, ms } = await exitOf(child, 3000);
  assert.equal(code, 1, 'a forced drain exits non-zero');
  assert.ok(ms < 2000, `exited after ${ms} ms`);
  const res = await inFlight;
  assert.equal(res.status, 503);
  assert.equal(res.body.error.code, 'SHUTTING_DOWN');
});

test('app.close() with a request in flight returns once it is answered, not after the keep-alive timeout', async (t) => {
  const entered = latch();
  const { app, url } = await startApp({ deadlineMs: 5000 }, (app) => {
    app.get('/slow', async () => {
      entered.open();
      await sleep(400);
      return { done: true };
    });
  });
  t.after(() => app.close());
  const inFlight = fetch(`${url}/slow`);
  await entered.opened;
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

test('shutting down a node:http edge closes its observatory: the probe port refuses and the process exits by itself', async () => {
  const fixture = fileURLToPath(new URL('./fixtures/observed-node-exit.ts', import.meta.url));
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', fixture],
      // Killed at the bound: a thread or timer left running would keep the child alive past it.
      { timeout: 20_000, killSignal: 'SIGKILL' },
      (err, out) => (err === null ? resolve(out) : reject(err)),
    );
  });
  const report = JSON.parse(stdout) as { before: number; after: number | string; exitCode: number };
  assert.equal(report.before, 200, 'the probe listener answered while the service ran');
  assert.equal(report.after, 'ECONNREFUSED', 'the probe port is closed after shutdown');
  assert.equal(report.exitCode, 0);
});
