import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster } from '../../apps/desk/src/cluster/start-cluster.ts';
import { type LoadResult, runLoad } from '../lib/load.ts';
import { environmentLine } from '../lib/report.ts';
import type { SuiteSettings } from '../run.ts';

const ADMIN = 'bench-admin-token-0123456789';
const DEMO = 'bench-demo-user-token-0123456789';

interface Row {
  readonly scenario: string;
  readonly instances: number;
  readonly pgbouncer: boolean;
  readonly load: LoadResult;
}

/**
 * Cluster suite: throughput and p99 of `GET /api/bots?limit=50` through nginx at saturation
 * (closed loop, BENCH_CONNECTIONS connections) with 1, 2 and 3 desk instances behind PgBouncer,
 * and 1 instance straight to Postgres to price PgBouncer. Each scenario starts the real cluster
 * (embedded Postgres with the small seed, PgBouncer, instances, nginx) the way
 * `npm run start:cluster` does, warms it up, measures, and stops it.
 */
export async function clusterSuite(s: SuiteSettings): Promise<{ markdown: string; raw: Row[] }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-cluster-pg-'));
  const rows: Row[] = [];
  const scenarios = [
    // The first run also warms Postgres's caches after the seed: it is the baseline, not the
    // no-PgBouncer comparison, so that comparison does not carry the warm-up.
    { instances: 1, pgbouncer: true },
    { instances: 1, pgbouncer: false },
    { instances: 2, pgbouncer: true },
    { instances: 3, pgbouncer: true },
  ];
  try {
    for (const sc of scenarios) {
      const name = `${sc.instances} instance${sc.instances > 1 ? 's' : ''}${sc.pgbouncer ? ' + PgBouncer' : ', no PgBouncer'}`;
      process.stderr.write(`cluster: ${name}...\n`);
      const cluster = await startCluster({
        instances: sc.instances,
        pgbouncer: sc.pgbouncer,
        dataDir,
        seed: 'small',
        adminToken: ADMIN,
        demoUserToken: DEMO,
        instanceEnv: { LOG_LEVEL: 'silent' },
      });
      try {
        const target = {
          url: `${cluster.url}/api/bots?limit=50`,
          connections: s.connections,
          headers: { authorization: `Bearer ${DEMO}` },
        };
        await runLoad({ ...target, durationSec: s.warmupSec });
        rows.push({ scenario: name, ...sc, load: await runLoad({ ...target, durationSec: s.durationSec }) });
      } finally {
        await cluster.stop();
      }
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
  const base = rows.find((r) => r.instances === 1 && r.pgbouncer) as Row;
  const direct = rows.find((r) => !r.pgbouncer) as Row;
  const table = [
    '| Scenario | req/s | × one instance | p50 ms | p99 ms | non-2xx | errors |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${Math.round(r.load.rps)} | ${(r.load.rps / base.load.rps).toFixed(2)} | ${r.load.p50} | ${r.load.p99} | ${r.load.non2xx} | ${r.load.errors} |`,
    ),
  ];
  const pgbCost = 1 - base.load.rps / direct.load.rps;
  const markdown = [
    `Measured ${environmentLine()}; ${s.durationSec} s per run after ${s.warmupSec} s warm-up; closed loop, ${s.connections} connections, through nginx; small seed.`,
    '',
    ...table,
    '',
    `- PgBouncer in the path (1 instance): throughput × **${(base.load.rps / direct.load.rps).toFixed(2)}** of a direct connection, p99 ${direct.load.p99} ms direct → ${base.load.p99} ms through PgBouncer${Math.abs(pgbCost) < 0.1 ? ' (within the noise of this shared machine)' : ''}.`,
    `- This host has ${cpus().length} cores shared by the load generator, nginx, PgBouncer, Postgres and every instance. ` +
      (cpus().length <= 2
        ? 'With 2 cores, one instance already has the cores to itself only part of the time: more instances add processes competing for the same two cores, so the ratios above measure the machine, not the design. On a host with a core per instance (and Postgres elsewhere), throughput grows with instances until Postgres or PgBouncer saturates.'
        : 'Scaling stops where the cores, Postgres or PgBouncer (single-threaded) saturate.'),
  ].join('\n');
  return { markdown, raw: rows };
}
