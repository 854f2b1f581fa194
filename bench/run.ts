/**
 * `npm run bench [-- suite...]`: runs benchmark suites, each comparing a baseline and candidates in
 * one invocation, prints the tables and rewrites their blocks in docs/benchmarks.md.
 * Settings: BENCH_DURATION_S (10), BENCH_WARMUP_S (3), BENCH_RATE (per suite), BENCH_CONNECTIONS (50).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { updateBenchmarksDoc } from './lib/report.ts';
import { hasTaskset } from './lib/server-process.ts';
import { allocSuite } from './suites/alloc.ts';
import { clusterSuite } from './suites/cluster.ts';
import { dbSuite } from './suites/db.ts';
import { depsSuite } from './suites/deps.ts';
import { deskSuite } from './suites/desk.ts';
import { edgeSuite } from './suites/edge.ts';
import { edgePairsSuite } from './suites/edge-pairs.ts';
import { instructionsSuite } from './suites/instructions.ts';
import { loglineSuite } from './suites/logline.ts';
import { overloadSuite } from './suites/overload.ts';
import { pairsSuite } from './suites/pairs.ts';
import { stormSuite } from './suites/storm.ts';

export interface SuiteSettings {
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly connections: number;
  readonly fixedRate?: number;
}

type Suite = (s: SuiteSettings) => Promise<{ markdown: string; raw: unknown }>;
const SUITES: Record<string, Suite> = {
  edge: edgeSuite,
  'edge-pairs': edgePairsSuite,
  logline: loglineSuite,
  deps: depsSuite,
  db: dbSuite,
  pairs: pairsSuite,
  alloc: allocSuite,
  desk: deskSuite,
  cluster: clusterSuite,
  overload: overloadSuite,
  storm: stormSuite,
  instructions: instructionsSuite,
};
/** Suites that need a tool the project does not install (valgrind): run when named only. */
const WHEN_NAMED = new Set(['instructions']);

const settings: SuiteSettings = {
  durationSec: Number(process.env.BENCH_DURATION_S ?? 10),
  warmupSec: Number(process.env.BENCH_WARMUP_S ?? 3),
  connections: Number(process.env.BENCH_CONNECTIONS ?? 50),
  ...(process.env.BENCH_RATE === undefined ? {} : { fixedRate: Number(process.env.BENCH_RATE) }),
};
const chosen = process.argv.slice(2);
const names = chosen.length > 0 ? chosen : Object.keys(SUITES).filter((n) => !WHEN_NAMED.has(n));
for (const n of names) {
  if (SUITES[n] === undefined) {
    console.error(`unknown suite '${n}'; suites: ${Object.keys(SUITES).join(', ')}`);
    process.exit(2);
  }
}
if (!hasTaskset) console.error('taskset not found: server and load generator share cores; figures will be noisier');
const docPath = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
await mkdir(resultsDir, { recursive: true });
for (const n of names) {
  const { markdown, raw } = await (SUITES[n] as Suite)(settings);
  console.log(`\n## ${n}\n\n${markdown}\n`);
  await writeFile(`${resultsDir}${n}.json`, `${JSON.stringify({ settings, raw }, null, 2)}\n`);
  await updateBenchmarksDoc(docPath, n, markdown);
}
