import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Fastify from 'fastify';
import { createTestDatabase } from 'hangproof/testing';
import { auditLadder } from '../src/doctor/audit-ladder.js';
import { nginxTimeouts, parseNginx } from '../src/doctor/nginx-config.js';
import { normaliseLayers } from '../src/doctor/timeout-layers.js';
import { parseDurationMs } from '../src/output/duration.js';
import { closedPort, examples, runCli, startSilentServer } from './run-cli.js';

const ids = (run: { json(): any }): string[] => run.json().findings.map((f: { id: string }) => f.id);
const hasFinding = (run: { json(): any }, id: string, layer: string): boolean =>
  run.json().findings.some((f: { id: string; layers: string[] }) => f.id === id && f.layers.includes(layer));

describe('hangproof doctor', () => {
  test('flags seed 003: workers and nginx raised to 300 s, infinite statement timeout, short keep-alive', async () => {
    const run = await runCli([
      'doctor',
      '--nginx',
      examples('seed-003-nginx.conf'),
      '--config',
      examples('seed-003-layers.json'),
      '--json',
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.json().ok, false);
    assert.ok(hasFinding(run, 'LADDER_INVERTED', 'workers.timeout'), 'worker timeout not below proxy_read_timeout');
    assert.ok(hasFinding(run, 'TIMEOUT_EXCESSIVE', 'nginx.proxy_read_timeout'));
    assert.ok(hasFinding(run, 'TIMEOUT_EXCESSIVE', 'service.deadline'));
    assert.ok(hasFinding(run, 'TIMEOUT_INFINITE', 'postgres.statement_timeout'));
    assert.ok(hasFinding(run, 'TIMEOUT_INFINITE', 'pg.statementTimeout'));
    assert.ok(hasFinding(run, 'KEEPALIVE_BELOW_PROXY_IDLE', 'server.keepAliveTimeout'));
    assert.ok(hasFinding(run, 'POOL_EXCEEDS_MAX_CONNECTIONS', 'postgres.max_connections'));
  });

  test('flags seed 004: chained breakers of 60 s under a 5 s budget, retries past the deadline', async () => {
    const run = await runCli(['doctor', '--config', examples('seed-004-chained-breakers.json'), '--json']);
    assert.equal(run.code, 1, run.stderr);
    for (const dep of ['agent', 'backend', 'auth'])
      assert.ok(hasFinding(run, 'BREAKER_DELAY_EXCEEDS_DEADLINE', `dep.${dep}.halfOpen`), dep);
    const chain = run
      .json()
      .findings.find(
        (f: { id: string; layers: string[] }) => f.id === 'BREAKER_DELAY_EXCEEDS_DEADLINE' && f.layers.length > 2,
      );
    assert.deepEqual(chain.layers, [
      'service.deadline',
      'dep.agent.halfOpen',
      'dep.backend.halfOpen',
      'dep.auth.halfOpen',
    ]);
    assert.ok(hasFinding(run, 'RETRY_EXCEEDS_DEADLINE', 'dep.backend.worst'));
    assert.ok(hasFinding(run, 'LADDER_INVERTED', 'dep.agent.attempt'), '15 s agent timeout under a 5 s budget');
    assert.ok(hasFinding(run, 'LADDER_INVERTED', 'pg.acquireTimeout'), '5 s pool timeout equals the 5 s budget');
    assert.ok(ids(run).includes('RETRY_AMPLIFIED'));
  });

  test('passes a sane ladder of load balancer, nginx, PgBouncer and service', async () => {
    const run = await runCli([
      'doctor',
      '--config',
      examples('sane-layers.json'),
      '--nginx',
      examples('sane-nginx.conf'),
      '--pgbouncer',
      examples('sane-pgbouncer.ini'),
      '--json',
    ]);
    assert.equal(run.code, 0, run.stdout);
    assert.deepEqual(ids(run), []);
    const layers = run.json().ladder.map((l: { id: string }) => l.id);
    assert.ok(layers.indexOf('gateway.timeout') < layers.indexOf('nginx.proxy_read_timeout'), 'outermost first');
    assert.ok(layers.indexOf('service.deadline') < layers.indexOf('pg.statementTimeout'));
  });

  test('human output names each finding and what to set, and exits 1', async () => {
    const run = await runCli(['doctor', '--config', examples('seed-004-chained-breakers.json')]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /BREAKER_DELAY_EXCEEDS_DEADLINE/);
    assert.match(run.stdout, /fix:/);
    assert.ok(!run.stdout.includes('\u001b['), 'no colour codes outside a terminal');
  });

  test('reads a running service’s settings from /status.json with the admin token', async (t) => {
    const token = 'doctor-test-token-0123456789';
    const app = Fastify();
    app.get('/status.json', async (req, reply) => {
      if (req.headers['x-admin-token'] !== token) return reply.code(401).send({ error: { code: 'UNAUTHORIZED' } });
      return {
        settings: {
          deadlineMs: 10_000,
          server: { requestTimeout: 21_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 },
          pg: {
            statementTimeoutMs: 12_000,
            lockTimeoutMs: 2_000,
            idleInTransactionSessionTimeoutMs: 30_000,
            acquireTimeoutMs: 2_000,
            max: 10,
          },
          dependencies: [
            {
              name: 'quotes',
              timeoutMs: 3000,
              attemptTimeoutMs: 1000,
              retry: { maxAttempts: 3 },
              breaker: { halfOpenAfterMs: 5000 },
            },
          ],
          instances: 2,
        },
      };
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    t.after(() => app.close());

    const denied = await runCli(['doctor', '--service', url, '--json'], { env: { HANGPROOF_ADMIN_TOKEN: '' } });
    assert.equal(denied.code, 2);
    assert.equal(denied.json().error.code, 'UNAUTHORIZED');

    const run = await runCli(['doctor', '--service', url, '--nginx', examples('sane-nginx.conf'), '--json'], {
      env: { HANGPROOF_ADMIN_TOKEN: token },
    });
    assert.equal(run.code, 1, run.stderr);
    assert.ok(
      hasFinding(run, 'LADDER_INVERTED', 'pg.statementTimeout'),
      '12 s statement_timeout under a 10 s deadline',
    );
    assert.ok(hasFinding(run, 'KEEPALIVE_BELOW_PROXY_IDLE', 'server.keepAliveTimeout'), '5 s keep-alive vs nginx 60 s');
    assert.ok(!ids(run).includes('RETRY_EXCEEDS_DEADLINE'), 'the whole call is capped at 3 s by timeoutMs');
  });

  test('reads the database defaults live and compares pools with max_connections', async () => {
    const db = await createTestDatabase();
    after(() => db.drop());
    const run = await runCli([
      'doctor',
      '--database-url',
      db.url,
      '--config',
      examples('seed-004-chained-breakers.json'),
      '--json',
    ]);
    assert.equal(run.code, 1, run.stderr);
    const rows = run.json().ladder.map((l: { id: string }) => l.id);
    assert.ok(rows.includes('postgres.statement_timeout'));
    assert.equal(
      run.json().capacity.find((c: { id: string }) => c.id === 'postgres.max_connections').source,
      'database',
    );
    // The embedded test server has no statement_timeout by default; the service sets its own.
    const f = run
      .json()
      .findings.find((x: any) => x.id === 'TIMEOUT_INFINITE' && x.layers.includes('postgres.statement_timeout'));
    assert.equal(f?.severity, 'warning');
  });

  test('an unreachable service or database ends with one line and exit 2 within a few seconds', async (t) => {
    const port = await closedPort();
    const silent = await startSilentServer();
    t.after(() => silent.close());
    const runs = await Promise.all([
      runCli(['doctor', '--service', `http://127.0.0.1:${port}`]),
      runCli(['doctor', '--service', silent.url, '--timeout-ms', '1000']),
      runCli(['doctor', '--database-url', `postgres://u:secret@127.0.0.1:${port}/x`]),
      runCli(['doctor', '--database-url', `postgres://u:secret@127.0.0.1:${silent.port}/x`, '--timeout-ms', '1000']),
    ]);
    for (const run of runs) {
      assert.equal(run.code, 2, run.stderr);
      assert.ok(run.durationMs < 8000, `ended in ${Math.round(run.durationMs)} ms`);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
      assert.doesNotMatch(run.stderr, /secret/, 'no password in messages');
    }
  });

  test('usage errors exit 2: no source, unknown option, unreadable or invalid file', async () => {
    const runs = await Promise.all([
      runCli(['doctor']),
      runCli(['doctor', '--bogus']),
      runCli(['doctor', '--nginx', 'does-not-exist.conf']),
      runCli(['doctor', '--nginx', 'package.json']),
    ]);
    for (const r of runs) assert.equal(r.code, 2, r.stderr);
  });

  test('--nginx follows include directives the way a Debian nginx.conf uses them', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'hangproof-nginx-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, 'conf.d'));
    await mkdir(join(dir, 'sites-enabled'));
    await writeFile(
      join(dir, 'nginx.conf'),
      'events {}\nhttp {\n  keepalive_timeout 65s;\n  include conf.d/*.conf;\n  include sites-enabled/*;\n  include /nonexistent-dir/*.conf;\n}\n',
    );
    await writeFile(join(dir, 'conf.d', 'timeouts.conf'), '# raised after an incident\nproxy_read_timeout 300s;\n');
    await writeFile(join(dir, 'conf.d', 'notes.txt'), 'proxy_read_timeout 1s;\n');
    await writeFile(
      join(dir, 'sites-enabled', 'api'),
      'server {\n  listen 8080;\n  location /api/ {\n    proxy_connect_timeout 2s;\n    proxy_pass http://127.0.0.1:3000;\n  }\n}\n',
    );
    const run = await runCli(['doctor', '--nginx', join(dir, 'nginx.conf'), '--json']);
    assert.equal(run.code, 1, run.stderr);
    const layer = (id: string) => run.json().ladder.find((l: { id: string }) => l.id === id);
    assert.equal(layer('nginx.proxy_read_timeout').valueMs, 300_000, 'set in conf.d/timeouts.conf');
    assert.equal(layer('nginx.proxy_read_timeout').source, 'timeouts.conf:2');
    assert.equal(layer('nginx.proxy_connect_timeout').source, 'api:4');
    assert.equal(layer('nginx.keepalive_timeout').source, 'nginx.conf:3');
    assert.ok(hasFinding(run, 'TIMEOUT_EXCESSIVE', 'nginx.proxy_read_timeout'));

    // A plain include that does not exist and an include cycle are errors, as for nginx.
    await writeFile(join(dir, 'missing.conf'), 'http { include conf.d/absent.conf; }\n');
    await writeFile(join(dir, 'loop.conf'), 'http { include loop.conf; }\n');
    const [missing, loop] = await Promise.all([
      runCli(['doctor', '--nginx', join(dir, 'missing.conf')]),
      runCli(['doctor', '--nginx', join(dir, 'loop.conf')]),
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*absent\.conf: ENOENT/);
    assert.equal(loop.code, 2);
    assert.match(loop.stderr, /loop\.conf includes itself/);
  });

  test('--help shows examples and exit codes', async () => {
    const run = await runCli(['doctor', '--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /Examples:/);
    assert.match(run.stdout, /Exit codes/);
  });
});

describe('doctor parsers', () => {
  test('durations accept nginx and Postgres units', () => {
    assert.equal(parseDurationMs('300s'), 300_000);
    assert.equal(parseDurationMs('5m'), 300_000);
    assert.equal(parseDurationMs('1h'), 3_600_000);
    assert.equal(parseDurationMs('500ms'), 500);
    assert.equal(parseDurationMs('1h 30m'), 5_400_000);
    assert.equal(parseDurationMs('30'), 30_000, 'a bare number is seconds by default');
    assert.equal(parseDurationMs('30', 'ms'), 30);
    assert.equal(parseDurationMs('1min'), 60_000);
    assert.equal(parseDurationMs('soon'), undefined);
  });

  test('nginx settings are inherited from http to server to location, with quoted values and comments', () => {
    const tree = parseNginx(`
      http { proxy_read_timeout 20s; # outer
        server { location /a { proxy_pass http://x; }
                 location /b { proxy_read_timeout "5m"; proxy_pass http://x; } } }`);
    const t = nginxTimeouts(tree, 'n.conf');
    assert.equal(t.proxyReadTimeout.valueMs, 20_000);
    assert.equal(t.proxyReadTimeoutMax.valueMs, 300_000);
    assert.equal(t.proxiedLocations, 2);
    assert.equal(t.proxyConnectTimeout.where, 'nginx default');
  });

  test('a broken nginx file is a syntax error with its line', () => {
    assert.throws(() => parseNginx('http {\n proxy_read_timeout 5s\n}'), SyntaxError);
    assert.throws(() => nginxTimeouts(parseNginx('proxy_read_timeout fast;'), 'n'), SyntaxError);
  });

  test('a dependency timeout that is not set is reported as infinite', () => {
    const layers = normaliseLayers({ deadlineMs: 5000, dependencies: [{ name: 'x' }] }, 'cfg');
    const r = auditLadder({ layers, sourceOf: {} });
    assert.deepEqual(
      r.findings.map((f) => [f.id, f.layers]),
      [['TIMEOUT_INFINITE', ['dep.x.attempt']]],
    );
  });

  test('a bad config value names the field', () => {
    assert.throws(() => normaliseLayers({ deadlineMs: 'soon' }, 'cfg'), /deadlineMs/);
  });
});
