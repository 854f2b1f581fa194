/**
 * `npm test`: starts one real PostgreSQL for the whole run (unless DATABASE_URL is set), then runs
 * every *.test.ts file with node's test runner. Each test file creates its own database. The files
 * that put a service under load and assert on its latency run afterwards, one at a time: next to
 * each other (or to any other file) on a 2-core machine, one's load is the other's noise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { startEmbeddedPostgres } from 'hangproof/testing';

const ROOTS = ['packages', 'apps', 'bench', 'examples'];
/**
 * Files that put a service under load and assert latency bounds: run alone, after the rest. The
 * probe listener's flood holds one core; its worker thread must answer within 250 ms on the other,
 * which a second test file beside it can keep busy past that bound.
 */
const SOLO = [
  'apps/desk/test/chaos.test.ts',
  'apps/desk/test/incidents.test.ts',
  'packages/hangproof/test/observe/probe-listener.test.ts',
];
const root = new URL('..', import.meta.url).pathname;

async function findTests(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const full = join(dir, e.name);
    if (e.isDirectory()) found.push(...(await findTests(full)));
    else if (e.name.endsWith('.test.ts')) found.push(full);
  }
  return found;
}

const filters = process.argv.slice(2);
const all = (await Promise.all(ROOTS.map((r) => findTests(join(root, r))))).flat().sort();
const files = filters.length === 0 ? all : all.filter((f) => filters.some((p) => f.includes(p)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(2);
}

let stopPostgres = async (): Promise<void> => {};
const env = { ...process.env };
if (!env.DATABASE_URL) {
  const dataDir = await mkdtemp(join(tmpdir(), 'hangproof-test-pg-'));
  const started = performance.now();
  const pg = await startEmbeddedPostgres({ dataDir, settings: { fsync: 'off', max_connections: 300 } });
  console.log(`embedded Postgres on port ${pg.port} in ${Math.round(performance.now() - started)} ms`);
  env.DATABASE_URL = pg.url;
  stopPostgres = async () => {
    await pg.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}

const isSolo = (f: string): boolean => SOLO.includes(relative(root, f));
const phases = [
  { files: files.filter((f) => !isSolo(f)), concurrency: env.TEST_CONCURRENCY ?? '2' },
  { files: files.filter(isSolo), concurrency: '1' },
].filter((p) => p.files.length > 0);

let child: ChildProcess | undefined;
const forward = (sig: NodeJS.Signals): void => {
  child?.kill(sig);
};
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
// The whole run is bounded too: a test file whose process never exits (a timer or thread left
// running) would otherwise keep the runner, and CI, waiting forever.
const RUN_BOUND_MS = Number(env.TEST_RUN_TIMEOUT_MS ?? 30 * 60_000);
let timedOut = false;
const bound = setTimeout(() => {
  console.error(
    `the test run exceeded ${Math.round(RUN_BOUND_MS / 60_000)} min: stopping it (a test file did not exit)`,
  );
  timedOut = true;
  child?.kill('SIGKILL');
}, RUN_BOUND_MS);
bound.unref();

let code = 0;
for (const phase of phases) {
  if (timedOut) break;
  const args = [
    '--conditions=source',
    '--import',
    'tsx',
    '--test',
    '--test-reporter=spec',
    `--test-concurrency=${phase.concurrency}`,
    ...phase.files.map((f) => relative(root, f)),
  ];
  const running = spawn(process.execPath, args, { cwd: root, env, stdio: 'inherit' });
  child = running;
  const exit: number = await new Promise((resolve) => running.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  if (exit !== 0) code = exit;
}
clearTimeout(bound);
if (timedOut) code = 1;
await stopPostgres();
process.exit(code);
