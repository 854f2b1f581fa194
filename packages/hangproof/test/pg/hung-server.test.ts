import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { createDatabase } from 'hangproof/pg';
import { startFreezableProxy } from 'hangproof/testing';
import { assertTookLessThan } from '../support/loop-stall.ts';
import { useTestDatabase } from '../support/test-database.js';
import { captureLogger, inRequest, timed, waitFor } from './helpers.js';

const testDb = useTestDatabase();
const log = captureLogger();

test('a TCP endpoint that accepts and never answers fails requests with phase connect within their budget', async () => {
  const blackhole = createServer((s) => {
    s.on('data', () => {});
    s.on('error', () => {});
  });
  const sockets = new Set<Socket>();
  blackhole.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
  const address = blackhole.address();
  const url = new URL(testDb.url);
  url.port = String(typeof address === 'object' && address !== null ? address.port : 0);
  const db = createDatabase({ connectionString: url.toString(), connectTimeoutMs: 2000, logger: log.logger });
  try {
    const outcome = await timed(() => inRequest(500, 'GET /bots', () => db.query('SELECT 1')));
    const err = outcome.error as { code: string; details: Record<string, unknown> };
    assert.equal(err.code, 'DEPENDENCY_TIMEOUT');
    assert.equal(err.details.phase, 'connect');
    assertTookLessThan(outcome, 500 + 250, 'ended in time');

    // Outside a request, connectTimeoutMs bounds it; opening is retried once, so twice that at most.
    const job = await timed(() => db.query('SELECT 1'));
    assert.equal((job.error as { details: Record<string, unknown> }).details.phase, 'connect');
    assertTookLessThan(job, 2 * 2000 + 500, 'ended in time');
    await assert.rejects(db.readinessCheck(), { code: 'DEPENDENCY_TIMEOUT' });

    // The log says "unreachable", with the host and port, not "slow query".
    const port = Number(url.port);
    const lines = log.records().filter((r) => r.event === 'pg.unavailable' && r.port === port);
    assert.ok(lines.length >= 3, `${lines.length} pg.unavailable lines`);
    for (const l of lines) {
      assert.equal(l.reason, 'connect_timeout');
      assert.equal(l.hostname, '127.0.0.1');
      assert.equal(l.host, `127.0.0.1:${port}`);
    }
    assert.ok(
      lines.some((l) => l.route === 'GET /bots'),
      'the request that failed is named',
    );
  } finally {
    await db.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => blackhole.close(() => resolve()));
  }
});

test('when the server freezes mid-query, requests end within their budget and the pool heals without a restart', async () => {
  const proxy = await startFreezableProxy(new URL(testDb.url));
  const db = createDatabase({
    connectionString: proxy.url,
    max: 3,
    connectTimeoutMs: 1000,
    pingIdleAfterMs: 0,
    pingTimeoutMs: 300,
    cancelTimeoutMs: 300,
    logger: log.logger,
  });
  try {
    // Warm the pool: three live connections.
    await Promise.all([1, 2, 3].map(() => db.query('SELECT pg_sleep(0.05)')));
    assert.equal(db.stats().total, 3);
    // A pool whose connection is open and trusted (no liveness check before use) when the freeze hits.
    const warm = createDatabase({ connectionString: proxy.url, max: 1, statementTimeoutMs: 300, logger: log.logger });
    await warm.query('SELECT 1');

    proxy.hang();
    const inflight = await Promise.all(
      [1, 2, 3].map(() => timed(() => inRequest(800, 'GET /bots', () => db.query('SELECT 1')))),
    );
    for (const r of inflight) {
      const code = (r.error as { code?: string } | undefined)?.code;
      assert.ok(code === 'DEPENDENCY_TIMEOUT' || code === 'REQUEST_TIMEOUT', `code ${code}`);
      assertTookLessThan(r, 800 + 250, 'ended in time');
    }
    const proxyPort = Number(new URL(proxy.url).port);
    // Outside a request: statementTimeoutMs + grace bounds a query on a frozen server.
    const short = createDatabase({
      connectionString: proxy.url,
      max: 1,
      statementTimeoutMs: 300,
      connectTimeoutMs: 300,
      logger: log.logger,
    });
    const job = await timed(() => short.query('SELECT 1'));
    assert.ok(job.error !== undefined);
    assertTookLessThan(job, 2 * 300 + 500, 'the job ended in time');
    await short.close();
    // A statement the server never answered is "unreachable", not a slow query.
    const unanswered = await timed(() => inRequest(2000, 'GET /orders', () => warm.query('SELECT 1')));
    assert.equal((unanswered.error as { code?: string }).code, 'DEPENDENCY_TIMEOUT');
    await warm.close();
    const noAnswer = log
      .records()
      .filter((r) => r.event === 'pg.unavailable' && r.port === proxyPort && r.msg === 'postgres statement failed');
    assert.equal(noAnswer.length, 1, 'the unanswered statement is logged as pg.unavailable');
    assert.equal(noAnswer[0]?.reason, 'no_answer');
    assert.equal(noAnswer[0]?.route, 'GET /orders');
    assert.ok(
      log.records().some((r) => r.event === 'pg.unavailable' && r.port === proxyPort && r.reason === 'connect_timeout'),
      'new connections to the frozen server are logged as pg.unavailable too',
    );

    proxy.heal();
    const healedIn = await waitFor(async () => {
      try {
        await inRequest(1000, 'GET /bots', () => db.query('SELECT 1'));
        return true;
      } catch {
        return false;
      }
    }, 5000);
    assert.ok(healedIn >= 0, 'the pool serves queries again once the server answers');
    await waitFor(async () => db.stats().inUse === 0, 2000);
    assert.equal(db.stats().inUse, 0);
    await db.readinessCheck();
  } finally {
    await db.close();
    await proxy.close();
  }
});
