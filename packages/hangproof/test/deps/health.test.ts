import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createDependencies } from 'hangproof/deps';
import { settle } from './helpers.js';
import { useTestServer } from './servers.js';

const deps = createDependencies();

const fx = useTestServer(deps);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

test('the readiness check answers from the cache at once while a provider hangs', async () => {
  const hung = deps.http('hung-provider', {
    baseUrl: fx.server.url,
    health: { path: '/health-hang', intervalMs: 5_000, timeoutMs: 1_000, critical: true },
  });
  const ready = deps.readinessCheck();
  // Before the first probe has finished the critical dependency is unknown: not ready.
  const early = await settle(ready());
  assert.equal(early.error?.code, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(early.error?.details?.reason, 'not_probed');

  await until(() => hung.dependency.status().health?.state === 'down', 5_000);
  const probesSoFar = fx.server.count('/health-hang');
  const times: number[] = [];
  for (let i = 0; i < 500; i++) {
    const r = await settle(ready());
    times.push(r.ms);
    assert.equal(r.error?.code, 'DEPENDENCY_UNAVAILABLE');
    assert.equal(r.error?.details?.dependency, 'hung-provider');
  }
  times.sort((a, b) => a - b);
  const median = times[250] ?? 0;
  const worst = times[499] ?? 0;
  assert.ok(median < 1, `median readiness answer ${median.toFixed(3)} ms`);
  assert.ok(worst < 250, `slowest readiness answer ${worst.toFixed(2)} ms, far below the 1000 ms probe timeout`);
  assert.equal(fx.server.count('/health-hang'), probesSoFar, 'readiness never called the provider');
  const health = hung.dependency.status().health;
  assert.equal(health?.lastErrorCode, 'DEPENDENCY_TIMEOUT');
  assert.equal(health?.lastError, 'timeout');
  assert.ok(health?.lastProbeAt !== null);
  hung.dependency.health?.stop();
});

test('health follows a flapping dependency: up, down with the reason, up again', async () => {
  const local = createDependencies();
  const flappy = local.http('flappy', {
    baseUrl: fx.server.url,
    health: { path: '/health', intervalMs: 60_000, timeoutMs: 500, critical: true },
  });
  const ready = local.readinessCheck();
  fx.server.healthy = true;
  await local.probeAll();
  assert.equal(flappy.dependency.status().health?.state, 'up');
  assert.equal((await settle(ready())).error, undefined);

  fx.server.healthy = false;
  await local.probeAll();
  const down = flappy.dependency.status().health;
  assert.equal(down?.state, 'down');
  assert.equal(down?.lastErrorCode, 'DEPENDENCY_UNAVAILABLE');
  assert.equal(down?.lastError, 'status_503');
  assert.equal(down?.consecutiveFailures, 1);
  assert.equal((await settle(ready())).error?.details?.reason, 'health_down');

  fx.server.healthy = true;
  await local.probeAll();
  assert.equal(flappy.dependency.status().health?.state, 'up');
  assert.equal(local.readiness().ready, true);
  await local.close();
});

test('a dependency that is not critical never makes the service unready', async () => {
  const local = createDependencies();
  local.http('optional', {
    baseUrl: fx.server.url,
    health: { path: '/status/503', intervalMs: 60_000, timeoutMs: 500, critical: false },
  });
  await local.probeAll();
  assert.equal(local.readiness().ready, true);
  assert.equal(local.readiness().dependencies[0]?.state, 'down');
  assert.equal((await settle(local.readinessCheck()())).error, undefined);
  await local.close();
});

test('a non-HTTP dependency is probed with its own probe function', async () => {
  const local = createDependencies();
  let healthy = false;
  const sdk = local.define('broker-sdk', {
    health: {
      probe: async () => {
        if (!healthy) throw Object.assign(new Error('down'), { code: 'ECONNREFUSED' });
      },
      intervalMs: 60_000,
      timeoutMs: 200,
      critical: true,
    },
  });
  await local.probeAll();
  assert.equal(sdk.status().health?.lastError, 'ECONNREFUSED');
  healthy = true;
  await local.probeAll();
  assert.equal(sdk.status().health?.state, 'up');
  await local.close();
});

test('probes run on their interval and stop() stops them', async () => {
  const local = createDependencies();
  local.http('ticking', { baseUrl: fx.server.url, health: { path: '/flap', intervalMs: 50, timeoutMs: 40 } });
  fx.server.healthy = true;
  const before = fx.server.count('/flap');
  await until(() => fx.server.count('/flap') - before >= 3, 5_000);
  local.stop();
  const stoppedAt = fx.server.count('/flap');
  // Six intervals: only a probe already in flight at stop() may still reach the server.
  await sleep(300);
  const after = fx.server.count('/flap') - stoppedAt;
  assert.ok(after <= 1, `${after} probes reached the server after stop()`);
  await local.close();
});

test('the status snapshot shows health, breaker, latency and the config doctor reads', async () => {
  const local = createDependencies();
  const market = local.http('market-data', {
    baseUrl: fx.server.url,
    timeoutMs: 800,
    retry: { maxAttempts: 3 },
    breaker: { halfOpenAfterMs: 2_000 },
    bulkhead: { maxConcurrent: 4, maxQueue: 2, queueWaitMs: 50 },
    health: { path: '/health', intervalMs: 10_000, timeoutMs: 300, critical: true },
  });
  fx.server.healthy = true;
  await local.probeAll();
  for (let i = 0; i < 5; i++) await market.get('/ok');
  const { dependencies } = local.status();
  const s = dependencies[0];
  assert.ok(s !== undefined);
  assert.equal(s.name, 'market-data');
  assert.equal(s.kind, 'http');
  assert.equal(s.critical, true);
  assert.equal(s.health?.state, 'up');
  assert.equal(s.breaker.state, 'closed');
  assert.equal(s.latencyMs.count, 5);
  assert.ok((s.latencyMs.p50 ?? -1) >= 0);
  assert.equal(s.calls.ok, 5);
  assert.deepEqual(s.config.breaker.halfOpenAfterMs, 2_000);
  assert.equal(s.config.timeoutMs, 800);
  assert.equal(s.config.attemptTimeoutMs, 800);
  assert.equal(s.config.maxAttempts, 3);
  assert.equal(s.config.connectTimeoutMs, 800);
  assert.deepEqual(s.config.bulkhead, { maxConcurrent: 4, maxQueue: 2, queueWaitMs: 50 });
  assert.deepEqual(s.config.health, { intervalMs: 10_000, timeoutMs: 300 });
  // It is plain data, ready for /status.json.
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
  await local.close();
});

test('health timers never keep a process alive', async () => {
  const root = fileURLToPath(new URL('../../../../', import.meta.url));
  const code = `
    import { createDependencies } from 'hangproof/deps';
    const deps = createDependencies();
    deps.http('x', { baseUrl: 'http://127.0.0.1:${fx.server.port}', health: { path: '/health', intervalMs: 60000, timeoutMs: 500 } });
    deps.define('y', { health: { probe: async () => {}, intervalMs: 60000, timeoutMs: 500 } });
  `;
  const started = performance.now();
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', code],
      {
        cwd: root,
        stdio: 'ignore',
      },
    );
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('exit', (c) => {
      clearTimeout(killer);
      resolve(c);
    });
  });
  assert.equal(exitCode, 0);
  assert.ok(performance.now() - started < 8_000, 'the process exited on its own, long before the next probe');
});
