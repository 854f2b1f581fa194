import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { observe } from 'hangproof/observe';
import { createDatabase, type Database } from 'hangproof/pg';
import pg from 'pg';
import { pino } from 'pino';
import { adminFault, retryPauseMs } from '../src/chaos/admin-fault.js';
import { FaultProxy } from '../src/chaos/fault-proxy.js';
import { lockFault } from '../src/chaos/lock-fault.js';
import { pauseFault } from '../src/chaos/pause-fault.js';
import { pgSleepFault } from '../src/chaos/pg-sleep-fault.js';
import { within } from '../src/output/within.js';
import { closedPort, itemsFixture, runCli } from './run-cli.js';

const ADMIN_TOKEN = 'chaos-admin-token-0123456789';
const DEADLINE_MS = 500;
const silent = pino({ level: 'silent' });

const fx = itemsFixture('hangproof-chaos-');

/** The test database's URL with its host:port replaced by the proxy's. */
function throughProxy(port: number): string {
  const u = new URL(fx.database.url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

function upstreamOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}`;
}

/** Fastify + hangproof plugin + observe + hangproof/pg, reading `items` through the proxy. */
async function startHangproofService(proxyPort: number): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify(serverOptions({ maxDeadlineMs: 2000 }));
  await app.register(hangproof, { deadlineMs: DEADLINE_MS, logger: silent, adminToken: ADMIN_TOKEN });
  const db: Database = createDatabase({
    connectionString: throughProxy(proxyPort),
    max: 5,
    acquireTimeoutMs: 400,
    connectTimeoutMs: 1000,
    logger: silent,
  });
  await app.register(observe, {
    logger: silent,
    defaultMetrics: false,
    pools: { main: { stats: () => ({ ...db.stats() }) } },
  });
  app.get('/items', async () => (await db.query('SELECT id, name FROM items ORDER BY id LIMIT 5')).rows);
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    async close() {
      await within(app.close(), 3000);
      await within(db.close(), 6000);
    },
  };
}

/** The same route on plain Fastify and a pg Pool with its default settings (no timeouts at all). */
async function startPlainService(proxyPort: number): Promise<{ url: string; close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: throughProxy(proxyPort) });
  // An idle client whose socket the proxy closes emits 'error' on the pool.
  pool.on('error', () => {});
  const app: FastifyInstance = Fastify();
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/items', async () => (await pool.query('SELECT id, name FROM items ORDER BY id LIMIT 5')).rows);
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    async close() {
      app.server.closeAllConnections();
      await within(app.close(), 3000);
      await within(pool.end(), 3000);
    },
  };
}

function blackholeArgs(url: string, proxyPort: number, out: string): string[] {
  return [
    'chaos',
    'examples/chaos/postgres-blackhole.json',
    '--target',
    url,
    '--path',
    '/items',
    '--listen',
    String(proxyPort),
    '--upstream',
    upstreamOf(fx.database.url),
    '--database-url',
    fx.database.url,
    '--admin-token',
    ADMIN_TOKEN,
    '--deadline-ms',
    String(DEADLINE_MS),
    '--rate',
    '10',
    '--warmup',
    '1s',
    '--hold',
    '2s',
    '--recovery',
    '3s',
    '--recover-within-ms',
    '2000',
    // Generous for a shared 2-core CI machine; the plain service still overshoots it by seconds.
    '--deadline-margin-ms',
    '600',
    '--out',
    out,
    '--json',
  ];
}

const verdictOf = (result: any, id: string): any => result.promises.find((p: { id: string }) => p.id === id);

describe('hangproof chaos against a Postgres blackhole', () => {
  test('a hangproof service keeps every promise: deadline, fast /healthz, no leak, recovery', async (t) => {
    const proxyPort = await closedPort();
    const service = await startHangproofService(proxyPort);
    t.after(() => service.close());
    const out = join(fx.dir, 'hangproof.json');

    const run = await runCli(blackholeArgs(service.url, proxyPort, out), { timeoutMs: 40_000 });

    assert.equal(run.code, 0, `${run.stderr}\n${run.stdout}`);
    const result = run.json();
    assert.deepEqual(JSON.parse(await readFile(out, 'utf8')).promises, result.promises, '--out holds the same result');
    for (const p of result.promises) assert.equal(p.verdict, 'pass', `${p.id}: ${p.observed}`);
    assert.ok(verdictOf(result, 'deadline').value <= DEADLINE_MS + 250);
    assert.ok(result.load.statuses['200'] > 0, 'requests succeeded before and after the fault');
    assert.ok(
      (result.load.errorCodes.REQUEST_TIMEOUT ?? 0) + (result.load.errorCodes.DEPENDENCY_TIMEOUT ?? 0) > 0,
      `the fault showed as timeouts: ${JSON.stringify(result.load.errorCodes)}`,
    );
    assert.ok(result.faults[0].detail.droppedBytes > 0, 'the proxy dropped bytes during the hold');
  });

  test("a plain Fastify + pg route breaks the 'ended within deadline' promise: requests hang until the client gives up", async (t) => {
    const proxyPort = await closedPort();
    const service = await startPlainService(proxyPort);
    t.after(() => service.close());

    const run = await runCli(blackholeArgs(service.url, proxyPort, join(fx.dir, 'plain.json')), { timeoutMs: 40_000 });

    assert.equal(run.code, 1, `${run.stderr}\n${run.stdout}`);
    const result = run.json();
    const deadline = verdictOf(result, 'deadline');
    assert.equal(deadline.verdict, 'fail');
    assert.ok(deadline.value > DEADLINE_MS + 250, `slowest request ${deadline.value} ms`);
    assert.ok(result.load.networkErrors.TIMEOUT > 0, 'requests were cut by the load client, not answered');
    assert.equal(verdictOf(result, 'recovery').verdict, 'fail', 'the hung connections never come back');
    assert.equal(verdictOf(result, 'pool').verdict, 'skip', 'no /status.json to read the pool from');
  });

  test('the human output is a verdict table naming each promise', async (t) => {
    const proxyPort = await closedPort();
    const service = await startPlainService(proxyPort);
    t.after(() => service.close());
    const args = blackholeArgs(service.url, proxyPort, join(fx.dir, 'plain-human.json')).filter((a) => a !== '--json');
    const run = await runCli([...args, '--hold', '1s', '--recovery', '1s'], { timeoutMs: 40_000 });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /promise\s+observed\s+bound\s+verdict/);
    assert.match(run.stdout, /every request ends within its deadline.*FAIL/);
  });
});

describe('hangproof chaos usage', () => {
  test('every shipped scenario validates in --dry-run', async () => {
    for (const file of [
      'postgres-blackhole.json',
      'postgres-latency.json',
      'provider-reset.json',
      'seed-000-pool-exhaustion.json',
      'seed-002-lock-and-disconnect.json',
      'seed-003-event-loop-block.json',
      'seed-004-provider-outage.json',
    ]) {
      const run = await runCli(
        [
          'chaos',
          `examples/chaos/${file}`,
          '--target',
          'http://127.0.0.1:3000',
          '--listen',
          '6543',
          '--upstream',
          '127.0.0.1:5432',
          '--database-url',
          'postgres://x@127.0.0.1:1/x',
          '--admin-token',
          ADMIN_TOKEN,
          '--dry-run',
          '--json',
        ],
        { env: { DEMO_USER_TOKEN: 'demo-token-0123456789abcdef' } },
      );
      assert.equal(run.code, 0, `${file}: ${run.stderr}`);
      assert.ok(run.json().faults.length >= 1, file);
    }
  });

  test('a non-loopback target is refused with exit 2 unless --allow-remote', async () => {
    const run = await runCli([
      'chaos',
      'examples/chaos/postgres-latency.json',
      '--target',
      'http://10.1.2.3',
      '--listen',
      '6543',
      '--upstream',
      '127.0.0.1:5432',
      '--json',
    ]);
    assert.equal(run.code, 2);
    assert.equal(run.json().error.code, 'REMOTE_TARGET');
  });

  test('a pause fault without --pid is a usage error before anything is touched', async () => {
    const file = join(fx.dir, 'pause.json');
    await import('node:fs/promises').then((fs) =>
      fs.writeFile(file, JSON.stringify({ name: 'pause', target: { path: '/' }, faults: [{ kind: 'pause' }] })),
    );
    const run = await runCli(['chaos', file, '--target', 'http://127.0.0.1:1', '--json']);
    assert.equal(run.code, 2);
    assert.equal(run.json().error.code, 'USAGE');
  });

  test('a target that never answers 2xx ends with exit 2 CONNECT_FAILED within the ready timeout', async () => {
    const port = await closedPort();
    const run = await runCli([
      'chaos',
      'examples/chaos/postgres-latency.json',
      '--target',
      `http://127.0.0.1:${port}`,
      '--listen',
      String(await closedPort()),
      '--upstream',
      '127.0.0.1:5432',
      '--ready-timeout',
      '1s',
      '--json',
    ]);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.json().error.code, 'CONNECT_FAILED');
    assert.ok(run.durationMs < 10_000, `ended in ${Math.round(run.durationMs)} ms`);
  });
});

/** A TCP echo server on 127.0.0.1. */
async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Sends `text` through a socket to `port` and resolves what comes back, or 'timeout'/'error:<code>'. */
function roundTrip(port: number, text: string, timeoutMs: number): Promise<{ reply: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let reply = '';
    const done = (r: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ reply: r, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done(reply === '' ? 'timeout' : reply), timeoutMs);
    s.on('data', (d) => {
      reply += d;
      if (reply.length >= text.length) done(reply);
    });
    s.on('error', (e: NodeJS.ErrnoException) => done(`error:${e.code}`));
    s.write(text);
  });
}

describe('the fault proxy', () => {
  test('forwards bytes, delays them in latency mode, drops them in blackhole mode and resets in reset mode', async (t) => {
    const echo = await echoServer();
    const proxy = new FaultProxy({ listenPort: 0, upstreamHost: '127.0.0.1', upstreamPort: echo.port });
    const port = await proxy.listen();
    t.after(async () => {
      await proxy.close();
      await echo.close();
    });

    assert.equal((await roundTrip(port, 'hello', 2000)).reply, 'hello');

    proxy.setMode('latency', 200);
    const slow = await roundTrip(port, 'slow', 3000);
    assert.equal(slow.reply, 'slow');
    assert.ok(slow.ms >= 380, `round trip ${Math.round(slow.ms)} ms with 200 ms each way`);

    proxy.setMode('blackhole');
    assert.equal((await roundTrip(port, 'lost', 400)).reply, 'timeout');
    assert.ok(proxy.stats.droppedBytes >= 4);

    proxy.setMode('reset');
    assert.equal((await roundTrip(port, 'reset', 2000)).reply, 'error:ECONNRESET');

    proxy.setMode('pass');
    assert.equal((await roundTrip(port, 'back', 2000)).reply, 'back');
  });
});

describe('process and database faults', () => {
  const ctx = (over: Record<string, unknown> = {}) => ({
    baseUrl: 'http://127.0.0.1:1',
    adminToken: undefined,
    databaseUrl: fx.database.url,
    pid: undefined,
    allowRemote: false,
    holdMs: 2000,
    ...over,
  });

  test('pause stops the named process during the hold and always continues it', async (t) => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    t.after(() => child.kill('SIGKILL'));
    const pid = child.pid as number;
    const state = async (): Promise<string> => (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.[0] ?? '?';
    const fault = pauseFault(ctx({ pid }));
    await fault.prepare();
    // The kernel applies a signal when the target is next scheduled: poll the state, bounded.
    const stateWithin = async (ms: number, accept: (s: string) => boolean): Promise<string> => {
      let seen = await state();
      for (const until = performance.now() + ms; !accept(seen) && performance.now() < until; seen = await state()) {
        await new Promise((r) => setTimeout(r, 10));
      }
      return seen;
    };
    await fault.inject();
    assert.equal(await stateWithin(1_000, (s) => s === 'T'), 'T', 'stopped');
    await fault.dispose();
    assert.notEqual(await stateWithin(1_000, (s) => s !== 'T'), 'T', 'continued by dispose even without remove');
  });

  test('a held table lock makes a lock_timeout query fail, and is gone after remove', async () => {
    const fault = lockFault({ kind: 'lock', table: 'items' }, ctx());
    const probe = new pg.Client({ connectionString: fx.database.url, lock_timeout: 200, statement_timeout: 2000 });
    await probe.connect();
    try {
      await fault.prepare();
      await fault.inject();
      await assert.rejects(probe.query('SELECT count(*) FROM items'), (e: { code?: string }) => e.code === '55P03');
      await fault.remove();
      assert.equal((await probe.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 50);
    } finally {
      await fault.dispose();
      await probe.end();
    }
  });

  test('pg-sleep sessions run during the hold and are cancelled on remove', async () => {
    const fault = pgSleepFault({ kind: 'pg-sleep', sessions: 3 }, ctx());
    // Only this fault's sessions: test files running alongside run pg_sleep on the same server.
    const count = async (): Promise<number> => {
      const c = new pg.Client({ connectionString: fx.database.url });
      await c.connect();
      const { rows } = await c.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%' AND pid = ANY($1::int[])",
        [(fault.detail() as { pids: number[] }).pids],
      );
      await c.end();
      return rows[0].n;
    };
    try {
      await fault.prepare();
      await fault.inject();
      // The sessions start their statements after inject returns: poll the count, bounded.
      let running = await count();
      for (const until = performance.now() + 3_000; running < 3 && performance.now() < until; running = await count()) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(running, 3, 'three sleeping sessions');
      const started = performance.now();
      await fault.remove();
      assert.ok(performance.now() - started < 2000, 'cancelled, not waited out');
      assert.equal(await count(), 0);
    } finally {
      await fault.dispose();
    }
  });
});

describe('the admin fault', () => {
  /** A switchboard on 127.0.0.1 that answers each call with the next of `answers` (the last repeats). */
  async function switchboard(answers: readonly { status: number; retryAfter?: string }[]) {
    const bodies: unknown[] = [];
    const server = createHttpServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => {
        text += c.toString();
      });
      req.on('end', () => {
        bodies.push(JSON.parse(text));
        const a = answers[Math.min(bodies.length, answers.length) - 1] as { status: number; retryAfter?: string };
        res.writeHead(a.status, a.retryAfter === undefined ? {} : { 'retry-after': a.retryAfter });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    return {
      bodies,
      fault: adminFault(
        { kind: 'admin', inject: { kind: 'slowQuery' } },
        {
          baseUrl: `http://127.0.0.1:${port}`,
          adminToken: 'token-0123456789abcdef',
          databaseUrl: undefined,
          pid: undefined,
          allowRemote: false,
          holdMs: 1000,
        },
      ),
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  test('a switch-off shed with 503 is asked again after its Retry-After', async () => {
    const board = await switchboard([{ status: 200 }, { status: 503, retryAfter: '1' }, { status: 200 }]);
    try {
      await board.fault.inject();
      const started = performance.now();
      await board.fault.remove();
      const ms = performance.now() - started;
      assert.deepEqual(board.bodies, [{ kind: 'slowQuery' }, { kind: 'clear' }, { kind: 'clear' }]);
      assert.ok(ms >= 950, `asked again after ${ms.toFixed(0)} ms, not before the Retry-After of 1 s`);
    } finally {
      await board.close();
    }
  });

  test('a switch-off shed past its budget fails with FAULT_FAILED, saying how often it asked', async () => {
    const board = await switchboard([{ status: 200 }, { status: 503, retryAfter: '3' }]);
    try {
      await board.fault.inject();
      const started = performance.now();
      await assert.rejects(board.fault.remove(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FAULT_FAILED');
        assert.match(err.message, /answered 503 2 times within 4500 ms/);
        return true;
      });
      const ms = performance.now() - started;
      assert.ok(ms < 4_500 + 500, `gave up after ${ms.toFixed(0)} ms`);
      assert.equal(board.bodies.length, 3);
    } finally {
      await board.close();
    }
  });

  test('a Retry-After of 0 still leaves a pause between two asks', async () => {
    const board = await switchboard([{ status: 200 }, { status: 503, retryAfter: '0' }]);
    try {
      await board.fault.inject();
      await assert.rejects(board.fault.remove(), /answered 503 \d+ times within 4500 ms/);
      // 4.5 s at 100 ms at least between asks: 46 at the most, however fast the refusals come.
      assert.ok(board.bodies.length - 1 <= 46, `asked ${board.bodies.length - 1} times`);
      assert.ok(board.bodies.length - 1 >= 2, `asked ${board.bodies.length - 1} times`);
    } finally {
      await board.close();
    }
  });

  test('a refused switch-on is not asked again', async () => {
    const board = await switchboard([{ status: 503, retryAfter: '1' }]);
    try {
      await assert.rejects(board.fault.inject(), /answered 503 to \{"kind":"slowQuery"\}/);
      assert.equal(board.bodies.length, 1);
    } finally {
      await board.close();
    }
  });

  test('reads Retry-After as seconds or as a date, and pauses half a second without one', () => {
    const now = Date.parse('2026-12-07T12:00:00Z');
    assert.equal(retryPauseMs('2', now), 2_000);
    assert.equal(retryPauseMs(' 0 ', now), 0);
    assert.equal(retryPauseMs('Mon, 07 Dec 2026 12:00:03 GMT', now), 3_000);
    assert.equal(retryPauseMs('Mon, 07 Dec 2026 11:00:00 GMT', now), 0);
    assert.equal(retryPauseMs(null, now), 500);
    assert.equal(retryPauseMs('soon', now), 500);
  });
});
