import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withBotsDatabase } from '../lib/bots-database.ts';
import { runLoad } from '../lib/load.ts';
import { environmentLine } from '../lib/report.ts';
import { pinned, request, SERVER_CORE } from '../lib/server-process.ts';
import type { SuiteSettings } from '../run.ts';
import { DB_SERVER, OTEL_PRELOAD } from './db.ts';

/**
 * Instructions suite: the instructions the db suite's server executes per request, counted by
 * valgrind's cachegrind, which runs the process on a simulated CPU. The count does not move with
 * the machine's other tenants, its caches or its clock, only with what the process itself does
 * differently from run to run (when V8 compiles what, when the collector runs): about ±4 % of a
 * request at the default N. It counts work, not time: a cache miss or a slow wake-up costs
 * nothing here.
 *
 * Method: per scenario, two servers under cachegrind side by side, the same in all but the
 * number of requests after their warm-up (N and 2N, closed loop); instructions per request are
 * (count at 2N − count at N) / N, so start-up, module loading and the warm-up cancel out.
 * Cachegrind runs a process about 50 times slower than the CPU, so anything that waits on the
 * clock sees every request take 50 times longer. The hangproof scenario therefore turns off what
 * a slowdown like that would set off and a healthy request never reaches: the stall watchdog
 * (every 200 ms without a beat would pause the loop through the debugger), slow-query plan
 * capture and lock evidence (each opens a side connection to Postgres). Timers that run on a
 * period (loop-delay probes, the log's flush) still run 50 times more often per request than
 * they do on the CPU: a small overstatement of hangproof's count, and of OpenTelemetry's export.
 */

/** Requests of the closed-loop warm-up, in each server, before the counted part. */
const WARMUP_REQUESTS = Number(process.env.BENCH_INSTR_WARMUP ?? 4000);
/** N: the two servers of a scenario answer N and 2N requests after the warm-up. */
const REQUESTS = Number(process.env.BENCH_INSTR_REQUESTS ?? 3000);
const CONNECTIONS = 10;
/** Start-up under cachegrind takes a minute or two on a slow machine. */
const STARTUP_TIMEOUT_MS = 600_000;
/** Generous: a request under cachegrind takes tens of ms. */
const LOAD_TIMEOUT_SEC = 3_600;

interface Scenario {
  readonly name: string;
  readonly label: string;
  readonly env: Readonly<Record<string, string>>;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'bare', label: 'bare: Fastify + pg Pool', env: {} },
  {
    name: 'hangproof',
    label: 'hangproof: plugin + log line, hangproof/pg, observe (stall watchdog, plan and lock capture off: see above)',
    env: {
      BENCH_OBSERVE_OPTIONS: JSON.stringify({ stallThresholdMs: 0 }),
      BENCH_PG_OPTIONS: JSON.stringify({ planEvidence: false, lockEvidence: false }),
    },
  },
  {
    name: 'otel',
    label: 'OpenTelemetry: bare + Node SDK, http/fastify/pg instrumentations, batch processor',
    env: { NODE_OPTIONS: `--import=${OTEL_PRELOAD}` },
  },
];

interface Row {
  readonly scenario: string;
  readonly label: string;
  /** Instructions per request. */
  readonly instructions: number;
}

export async function instructionsSuite(_s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  if (spawnSync('valgrind', ['--version']).status !== 0) {
    throw new Error('the instructions suite needs valgrind: apt-get install valgrind');
  }
  const dir = await mkdtemp(join(tmpdir(), 'hangproof-bench-cachegrind-'));
  try {
    const rows = await withBotsDatabase('instructions', async (url) => {
      const out: Row[] = [];
      for (const sc of SCENARIOS) {
        process.stderr.write(`instructions: ${sc.name} (two servers under cachegrind, a few minutes)\n`);
        const [atN, at2N] = await Promise.all([
          countInstructions(url, sc, REQUESTS, dir),
          countInstructions(url, sc, 2 * REQUESTS, dir),
        ]);
        out.push({ scenario: sc.name, label: sc.label, instructions: (at2N - atN) / REQUESTS });
      }
      return out;
    });
    return { markdown: render(rows), raw: rows };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One server under cachegrind: its warm-up, then `requests` counted requests; its total instructions. */
async function countInstructions(url: string, sc: Scenario, requests: number, dir: string): Promise<number> {
  const outFile = join(dir, `${sc.name}-${requests}.out`);
  const [cmd, args] = pinned(SERVER_CORE, 'valgrind', [
    '--tool=cachegrind',
    '--cache-sim=no',
    `--cachegrind-out-file=${outFile}`,
    process.execPath,
    DB_SERVER,
  ]);
  const child = spawn(cmd, args, {
    env: { ...process.env, ...sc.env, DATABASE_URL: url, BENCH_SCENARIO: sc.name },
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  });
  try {
    const { url: serverUrl } = await request<{ url: string }>(child, undefined, 'ready', STARTUP_TIMEOUT_MS);
    const load = { url: serverUrl, durationSec: LOAD_TIMEOUT_SEC, connections: CONNECTIONS };
    await runLoad({ ...load, requests: WARMUP_REQUESTS });
    const counted = await runLoad({ ...load, requests });
    if (counted.non2xx > 0 || counted.errors > 0) {
      throw new Error(`${sc.name}: ${counted.non2xx} non-2xx answers and ${counted.errors} errors under cachegrind`);
    }
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  // SIGTERM ends the server; cachegrind writes its counts as the process ends.
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
  return totalInstructions(await readFile(outFile, 'utf8'));
}

/** The `Ir` (instructions read) total of a cachegrind output file. */
function totalInstructions(text: string): number {
  const events = /^events: (.*)$/m.exec(text)?.[1]?.split(' ');
  const summary = /^summary: (.*)$/m.exec(text)?.[1]?.split(' ');
  const i = events?.indexOf('Ir') ?? -1;
  const total = Number(summary?.[i]);
  if (i < 0 || !Number.isFinite(total)) throw new Error('no instruction total in the cachegrind output');
  return total;
}

function render(rows: readonly Row[]): string {
  const bare = rows.find((r) => r.scenario === 'bare')?.instructions ?? Number.NaN;
  const delta = (r: Row): number => r.instructions - bare;
  const hp = rows.find((r) => r.scenario === 'hangproof');
  const otel = rows.find((r) => r.scenario === 'otel');
  const k = (x: number): string => (x / 1000).toFixed(1);
  const lines = [
    `Measured ${environmentLine()}; valgrind's cachegrind; ${WARMUP_REQUESTS} requests of warm-up, then ${REQUESTS} and ${2 * REQUESTS} counted requests in two servers per scenario (closed loop, ${CONNECTIONS} connections).`,
    '',
    '| scenario | instructions per request (thousands) | Δ vs bare (thousands) | ratio |',
    '|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${k(r.instructions)} | ${r.scenario === 'bare' ? '—' : k(delta(r))} | ${(r.instructions / bare).toFixed(3)} |`,
    ),
  ];
  if (hp !== undefined && otel !== undefined) {
    lines.push(
      '',
      delta(hp) > 0
        ? `- hangproof adds **${(delta(hp) / delta(otel)).toFixed(2)}** of the instructions OpenTelemetry adds per request (${k(delta(hp))} against ${k(delta(otel))} thousand).`
        : `- hangproof counted fewer instructions per request than bare in this run (${k(delta(hp))} thousand; OpenTelemetry ${k(delta(otel))} more): its added work is below what one run resolves.`,
    );
  }
  return lines.join('\n');
}
