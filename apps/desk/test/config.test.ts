import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseConfig } from '../src/config.js';

test('an empty environment gives the documented defaults and random tokens', () => {
  const c = parseConfig({});
  assert.equal(c.port, 3000);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.marketDataUrl, undefined);
  assert.equal(c.brokerUrl, undefined);
  assert.equal(c.seed, 'default');
  assert.ok(c.adminTokenGenerated && c.adminToken.length >= 16);
  assert.ok(c.demoUserTokenGenerated && c.demoUserToken.length >= 16);
  assert.notEqual(c.adminToken, c.demoUserToken);
  assert.ok(c.dataDir.endsWith('/.data/desk-pg'));
});

test('set variables are read and validated', () => {
  const c = parseConfig({
    PORT: '0',
    HOST: '0.0.0.0',
    DATABASE_URL: 'postgres://u:p@db.internal:5432/desk',
    MARKET_DATA_URL: 'http://127.0.0.1:9001/',
    BROKER_URL: 'https://broker.example',
    ADMIN_TOKEN: 'a-long-enough-admin-token',
    DEMO_USER_TOKEN: 'a-long-enough-demo-token',
    DESK_SEED: 'small',
    DESK_DATA_DIR: '/var/lib/desk-pg',
  });
  assert.equal(c.port, 0);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.marketDataUrl, 'http://127.0.0.1:9001');
  assert.equal(c.adminToken, 'a-long-enough-admin-token');
  assert.equal(c.adminTokenGenerated, false);
  assert.equal(c.seed, 'small');
  assert.equal(c.dataDir, '/var/lib/desk-pg');
});

test('empty strings count as unset', () => {
  assert.equal(parseConfig({ PORT: '', DESK_SEED: ' ' }).port, 3000);
});

test('each invalid value throws a ConfigError naming its variable', () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: '70000' }, 'PORT'],
    [{ PORT: 'abc' }, 'PORT'],
    [{ HOST: 'a b' }, 'HOST'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL'],
    [{ MARKET_DATA_URL: 'ftp://x' }, 'MARKET_DATA_URL'],
    [{ BROKER_URL: '::' }, 'BROKER_URL'],
    [{ ADMIN_TOKEN: 'short' }, 'ADMIN_TOKEN'],
    [{ DEMO_USER_TOKEN: 'has spaces in it, long enough' }, 'DEMO_USER_TOKEN'],
    [{ DESK_SEED: 'huge' }, 'DESK_SEED'],
  ];
  for (const [env, variable] of cases) {
    assert.throws(
      () => parseConfig(env),
      (err: unknown) =>
        err instanceof ConfigError && err.variable === variable && err.message.startsWith(`${variable}:`),
      JSON.stringify(env),
    );
  }
});

test('a database URL with a password is never echoed in the error', () => {
  assert.throws(
    () => parseConfig({ DATABASE_URL: 'mysql://user:s3cret-pass@host/db' }),
    (err: unknown) => err instanceof ConfigError && !err.message.includes('s3cret'),
  );
});

test('npm start with an invalid variable prints one line naming it and exits without a stack trace', () => {
  const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', main], {
    env: { ...process.env, PORT: 'eighty', DATABASE_URL: '' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', /PORT/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
