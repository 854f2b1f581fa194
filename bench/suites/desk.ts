import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from 'hangproof/testing';
import { hangproofLoad } from '../lib/load.ts';
import { pinPostgres } from '../lib/pin-postgres.ts';
import { environmentLine } from '../lib/report.ts';
import { pinned, SERVER_CORE } from '../lib/server-process.ts';
import type { SuiteSettings } from '../run.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const USER_TOKEN = 'bench-demo-user-token-0123456789';
const ENDPOINTS = ['/api/bots/overview', '/api/bots?limit=50'] as const;
const START_TIMEOUT_MS = 180_000;
/** The desk's Postgres cluster, relative to the repository root (its working folder). */
const DATA_DIR = '.data/bench-desk-pg';

interface LoadJson {
  readonly sent: number;
  readonly throughputRps: number;
  readonly errorRate: number;
  readonly latencyMs: { p50: number; p95: number; p99: number; max: number };
  readonly statuses: Record<string, number>;
}

/**
 * Desk suite: the reference service as `npm start` runs it (default seed, embedded Postgres in a
 * git-ignored folder kept between runs), on one core; `hangproof load` sends an open-loop 300 rps
 * from the other core for each endpoint (Postgres is moved to that core too). Then the cold figure: the first request of each endpoint
 * after a restart of the service process.
 */
export async function deskSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const rate = s.fixedRate ?? 300;
  const durationSec = Number(process.env.BENCH_DESK_DURATION_S ?? 30);
  let desk = await startDesk();
  const warm: Record<string, LoadJson> = {};
  try {
    for (const path of ENDPOINTS) await load(desk.url + path, rate, Math.max(3, s.warmupSec));
    for (const path of ENDPOINTS) {
      process.stderr.write(`desk: ${path} at ${rate} rps for ${durationSec} s...\n`);
      warm[path] = await load(desk.url + path, rate, durationSec);
    }
  } finally {
    await desk.stop();
  }
  // Cold: a fresh process on the warm database; the first request of each endpoint.
  desk = await startDesk();
  const cold: Record<string, number> = {};
  try {
    for (const path of ENDPOINTS) {
      const t0 = performance.now();
      const res = await fetch(desk.url + path, { headers: { authorization: `Bearer ${USER_TOKEN}` } });
      await res.arrayBuffer();
      cold[path] = performance.now() - t0;
    }
  } finally {
    await desk.stop();
  }
  const lines = [
    `Measured ${environmentLine()}; default seed (1,000 users, 20,000 bots, 2,000,000 audits); open loop at ${rate} rps for ${durationSec} s per endpoint after a warm-up.`,
    '',
    '| endpoint | sent | throughput (rps) | errors | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | cold: first request after restart (ms) |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const path of ENDPOINTS) {
    const r = warm[path] as LoadJson;
    lines.push(
      `| \`GET ${path}\` | ${r.sent} | ${r.throughputRps.toFixed(0)} | ${(r.errorRate * 100).toFixed(2)} % | ${r.latencyMs.p50} | ${r.latencyMs.p95} | ${r.latencyMs.p99} | ${r.latencyMs.max} | ${(cold[path] ?? 0).toFixed(1)} |`,
    );
  }
  lines.push(
    '',
    'Targets: p99 under 25 ms warm at 300 rps; the incident asked for p95 under 500 ms warm and 1,500 ms cold.',
  );
  return { markdown: lines.join('\n'), raw: { rate, durationSec, warm, cold } };
}

async function startDesk(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const [cmd, args] = pinned(SERVER_CORE, process.execPath, [
    '--conditions=source',
    '--import',
    'tsx',
    'apps/desk/src/main.ts',
  ]);
  const child: ChildProcess = spawn(cmd, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      DESK_DATA_DIR: DATA_DIR,
      DESK_SEED: 'default',
      ADMIN_TOKEN,
      DEMO_USER_TOKEN: USER_TOKEN,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const until = performance.now() + START_TIMEOUT_MS;
  while (performance.now() < until) {
    if (child.exitCode !== null) throw new Error(`desk exited with ${child.exitCode} while starting`);
    const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  // The embedded Postgres is a child of the desk and inherits its core: as in the db suite, it is
  // moved to the other core (shared with the light open-loop sender), so the figures are those
  // of the service's own core, not of Node and Postgres fighting over one.
  await pinPostgres(join(ROOT, DATA_DIR));
  return {
    url,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const exited = once(child, 'exit');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function load(url: string, rate: number, durationSec: number): Promise<LoadJson> {
  const args = [url, '--rate', String(rate), '--duration', `${durationSec}s`, '--timeout-ms', '5000'];
  return hangproofLoad<LoadJson>(
    [...args, '--header', `authorization: Bearer ${USER_TOKEN}`],
    (durationSec + 60) * 1000,
  );
}
