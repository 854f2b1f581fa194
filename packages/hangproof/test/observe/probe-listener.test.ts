import assert from 'node:assert/strict';
import { type ChildProcessByStdio, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { HangproofError } from 'hangproof';
import { hangproof } from 'hangproof/fastify';
import { observe } from 'hangproof/observe';
import { pino } from 'pino';
import { resolveObserveOptions } from '../../src/observe/options.ts';
import { startService } from './helpers.js';

type Child = ChildProcessByStdio<Writable, Readable, null>;

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** Starts a fixture under the TypeScript loader; it is killed when the test ends. */
function startFixture(t: { after(fn: () => void): void }, name: string, args: string[] = []): Child {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', `${fixtures}${name}`, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => child.kill('SIGKILL'));
  return child;
}

/** Resolves with the first stdout line of `child` that `match` accepts; rejects after `boundMs` or at exit. */
function lineOf(child: Child, match: (line: string) => boolean, boundMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => finish(new Error(`no matching line within ${boundMs} ms`)), boundMs);
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      const found = lines.find(match);
      if (found !== undefined) finish(undefined, found);
    };
    const onExit = (code: number | null): void => finish(new Error(`fixture exited (${code}) before the line`));
    function finish(err: Error | undefined, line = ''): void {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
      if (err === undefined) resolve(line);
      else reject(err);
    }
    child.stdout.on('data', onData);
    child.on('exit', onExit);
  });
}

interface ProbeAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly ms: number;
}

/** One GET on a new connection, bounded to 2 s; `ms` is the time to the whole answer. */
function probe(url: string): Promise<ProbeAnswer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, signal: AbortSignal.timeout(2000) }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : { text },
          ms: performance.now() - started,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('the probe port answers /healthz within 250 ms each time while 300 keep-alive connections flood the main port', async (t) => {
  const service = startFixture(t, 'probe-service.ts');
  const { url, probeUrl } = JSON.parse(await lineOf(service, (l) => l.startsWith('{'), 20_000)) as {
    url: string;
    probeUrl: string;
  };
  assert.equal((await probe(`${probeUrl}/readyz`)).status, 200, 'ready before the storm');

  const flood = startFixture(t, 'flood.ts', [`${url}/work`, '300', '15000']);
  const floodSummary = lineOf(flood, (l) => l.startsWith('{'), 30_000);
  await lineOf(flood, (l) => l === 'flooding', 20_000);

  const answers: ProbeAnswer[] = [];
  for (let i = 0; i < 20; i++) answers.push(await probe(`${probeUrl}/healthz`));
  const ready = await probe(`${probeUrl}/readyz`);
  const mainHealth = await probe(`${url}/healthz`);
  assert.equal(flood.exitCode, null, 'the storm was still running when the probes ended');
  flood.stdin.end();
  flood.kill('SIGTERM');

  t.diagnostic(
    `probe port /healthz ms: ${answers.map((a) => Math.round(a.ms)).join(' ')}; main port /healthz ${Math.round(mainHealth.ms)} ms`,
  );
  for (const a of answers) {
    assert.equal(a.status, 200);
    assert.equal(a.body.status, 'ok');
    assert.equal(typeof a.body.lagMs, 'number');
    assert.ok(a.ms < 250, `answered in ${Math.round(a.ms)} ms`);
  }
  assert.equal(ready.status, 200, 'still ready: the loop is busy, not stalled');
  assert.ok(ready.ms < 250, `readyz answered in ${Math.round(ready.ms)} ms`);
  await floodSummary.catch(() => undefined);
});

test('the probe port reports stalled while a synchronous loop blocks the main thread, and ok once it ends', async (t) => {
  const service = startFixture(t, 'probe-service.ts');
  const { url, probeUrl } = JSON.parse(await lineOf(service, (l) => l.startsWith('{'), 20_000)) as {
    url: string;
    probeUrl: string;
  };
  assert.equal((await probe(`${probeUrl}/healthz`)).body.status, 'ok');

  const blocked = probe(`${url}/block?ms=1500`);
  await lineOf(service, (l) => l === 'blocking', 5000);
  // The heartbeat ages from now on; probe back to back until it is older than 300 ms, for at most
  // the 1500 ms the loop stays blocked.
  let stalled: ProbeAnswer | undefined;
  const until = performance.now() + 1500;
  while (stalled === undefined && performance.now() < until) {
    const a = await probe(`${probeUrl}/healthz`);
    assert.ok(a.ms < 250, `answered in ${Math.round(a.ms)} ms while the loop was blocked`);
    if (a.status === 503) stalled = a;
  }
  assert.ok(stalled !== undefined, 'reported stalled while the loop was blocked');
  assert.equal(stalled.body.status, 'stalled');
  assert.ok((stalled.body.stalledForMs as number) >= 300);
  const notReady = await probe(`${probeUrl}/readyz`);
  assert.equal(notReady.status, 503);
  assert.equal(notReady.body.reason, 'stalled');

  assert.equal((await blocked).status, 200);
  let recovered: ProbeAnswer | undefined;
  for (let i = 0; i < 100 && recovered === undefined; i++) {
    const a = await probe(`${probeUrl}/healthz`);
    if (a.status === 200) recovered = a;
  }
  assert.equal(recovered?.body.status, 'ok', 'alive again once the loop runs');
});

test('the probe listener closes with the app and reports draining once shutdown begins', async (t) => {
  const { app } = await startService({ probePort: 0, probeHost: '127.0.0.1' }, () => {});
  t.after(() => app.close());
  const port = app.observe.probePort();
  assert.ok(port !== undefined && port > 0);
  const probeUrl = `http://127.0.0.1:${port}`;
  assert.equal((await probe(`${probeUrl}/healthz`)).status, 200);
  assert.equal((await probe(`${probeUrl}/readyz`)).status, 200);

  app.hangproof.beginShutdown();
  // The heartbeat writes the draining flag within one period (50 ms); probe until it shows (bounded).
  let draining: ProbeAnswer | undefined;
  for (let i = 0; i < 100 && draining === undefined; i++) {
    const a = await probe(`${probeUrl}/readyz`);
    if (a.status === 503) draining = a;
  }
  assert.equal(draining?.body.reason, 'draining');
  assert.equal((await probe(`${probeUrl}/healthz`)).status, 200, 'still alive while draining');

  await app.close();
  await assert.rejects(probe(`${probeUrl}/healthz`), { code: 'ECONNREFUSED' });
});

test("the probe port's /readyz follows the app's readiness checks", async (t) => {
  let failing = false;
  const app = Fastify();
  await app.register(hangproof, { logger: pino({ level: 'silent' }), readinessCacheMs: 0 });
  await app.register(observe, {
    logger: pino({ level: 'silent' }),
    defaultMetrics: false,
    probePort: 0,
    probeHost: '127.0.0.1',
  });
  app.hangproof.addReadinessCheck('db', () => {
    if (failing) throw new HangproofError('DEPENDENCY_UNAVAILABLE');
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => app.close());
  const probeUrl = `http://127.0.0.1:${app.observe.probePort()}`;
  assert.equal((await probe(`${probeUrl}/readyz`)).status, 200);

  failing = true;
  // A probe asks for a new evaluation when the last is 200 ms old and waits for it up to 100 ms;
  // probe until it shows (bounded).
  let notReady: ProbeAnswer | undefined;
  const until = performance.now() + 3000;
  while (notReady === undefined && performance.now() < until) {
    const a = await probe(`${probeUrl}/readyz`);
    assert.ok(a.ms < 250, `answered in ${Math.round(a.ms)} ms`);
    if (a.status === 503) notReady = a;
  }
  assert.equal(notReady?.body.reason, 'checks_failed');
  assert.equal((await probe(`${probeUrl}/healthz`)).status, 200, 'a failing dependency is not a dead process');
});

/** Runs the exit fixture with `flags`; resolves with its output once it exits by itself (bounded). */
function runExitFixture(flags: string[]): Promise<{ stdout: string; exitMs: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...flags, `${fixtures}probe-exit.mjs`],
      { timeout: 15_000, killSignal: 'SIGKILL' },
      (err, stdout) => (err === null ? resolve({ stdout, exitMs: performance.now() - started }) : reject(err)),
    );
  });
}

test('neither the probe thread nor the heartbeat keeps the process alive (from source)', async () => {
  const { stdout } = await runExitFixture(['--conditions=source', '--import', 'tsx']);
  const answer = JSON.parse(stdout) as { status: number; body: { status: string } };
  assert.equal(answer.status, 200);
  assert.equal(answer.body.status, 'ok');
});

const DIST_THREAD = fileURLToPath(new URL('../../dist/observe/probe-thread.js', import.meta.url));

test('the compiled probe thread starts with no loader and lets the process exit', {
  skip: existsSync(DIST_THREAD) ? false : 'run npm run build first',
}, async () => {
  const { stdout } = await runExitFixture([]);
  assert.equal((JSON.parse(stdout) as { status: number }).status, 200);
});

test('a probe port that cannot be bound fails the app start, naming the port', async (t) => {
  const first = await startService({ probePort: 0, probeHost: '127.0.0.1' }, () => {});
  t.after(() => first.app.close());
  const taken = first.app.observe.probePort() as number;
  await assert.rejects(
    startService({ probePort: taken, probeHost: '127.0.0.1' }, () => {}),
    {
      message: new RegExp(`cannot bind 127\\.0\\.0\\.1:${taken}: EADDRINUSE`),
    },
  );
});

test('probe options are validated with the value received', () => {
  assert.throws(() => resolveObserveOptions({ probePort: 70_000 }), RangeError);
  assert.throws(
    () => resolveObserveOptions({ probeStalledAfterMs: 50 }),
    /probeStalledAfterMs must be an integer >= 200, received 50/,
  );
  assert.equal(resolveObserveOptions({}).probePort, false);
});
