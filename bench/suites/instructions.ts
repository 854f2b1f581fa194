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
 *
 * Most of what moves the count between runs is three parts of V8 that run when they decide to:
 * its compilers (a function optimized in one server's counted part and not the other's, by up to
 * 170 thousand instructions per request even after 16,000 requests of warm-up), its parser (code
 * first reached in the longer run, such as a path behind a timer) and its garbage collector (a
 * collection more or less in the counted part, by up to 190 thousand). The suite reads the count
 * per function from cachegrind's output and reports those three apart, and the request's own work
 * as everything else (the JIT's code, builtins, Node, libuv, the C library). That part still moves
 * with which tier the code ran in (the interpreter's builtins are in it), by about 5 %.
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

/**
 * The parts of V8 whose count moves from run to run, matched on the qualified names of the
 * functions cachegrind counts (see qualifiedName). Everything else is the request's own work.
 */
const MOVING_PARTS = {
  compile:
    /^v8::internal::(compiler|maglev|turboshaft|baseline|Compiler|OptimizedCompilationJob|TurbofanCompilationJob|OptimizingCompileDispatcher|interpreter::(BytecodeGenerator|BytecodeArrayBuilder|BytecodeArrayWriter|BytecodeRegisterOptimizer|ConstantArrayBuilder))::/,
  parse:
    /^v8::internal::(Parser|PreParser|ParserBase|Scanner|AstValueFactory|AstRawString|AstNodeFactory|DeclarationScope|Scope|StringTable)::/,
  gc: /^(v8::internal::(Heap|Scavenger|ScavengerCollector|ScavengeVisitor|RootScavengeVisitor|MarkCompactCollector|MinorMarkCompactCollector|MarkingVisitorBase|MainMarkingVisitor|ConcurrentMarkingVisitor|ConcurrentMarking|IncrementalMarking|MarkingBarrier|MarkingWorklists|Sweeper|Evacuator|FullEvacuator|EvacuateVisitorBase|EvacuateNewSpaceVisitor|RecordMigratedSlotVisitor|RememberedSetUpdatingItem|PointersUpdatingVisitor|MemoryAllocator|MemoryChunk|PagedSpace|NewSpace|SemiSpaceNewSpace|LargeObjectSpace|GCTracer|ArrayBufferSweeper|BodyDescriptorBase|EvacuationAllocator)::|v8::internal::IterateObjectCache$|heap::base::|cppgc::)/,
} as const;
type MovingPart = keyof typeof MOVING_PARTS;
const MOVING_PART_KEYS = Object.keys(MOVING_PARTS) as MovingPart[];
const MOVING_PART_NAMES: Readonly<Record<MovingPart, string>> = {
  compile: "V8's compilers",
  parse: "V8's parser and string table",
  gc: 'garbage collector',
};

/** One server's instructions: the total and the part in each of V8's moving parts. */
interface Count {
  readonly total: number;
  readonly parts: Readonly<Record<MovingPart, number>>;
}

interface Row {
  readonly scenario: string;
  readonly label: string;
  /** Instructions per request. */
  readonly instructions: number;
  /** Of which, per request, in each of V8's moving parts. */
  readonly parts: Readonly<Record<MovingPart, number>>;
  /** Instructions per request outside V8's moving parts: the request's own work. */
  readonly work: number;
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
        const perRequest = (a: number, b: number): number => (b - a) / REQUESTS;
        const instructions = perRequest(atN.total, at2N.total);
        const parts = noParts();
        let work = instructions;
        for (const p of MOVING_PART_KEYS) {
          parts[p] = perRequest(atN.parts[p], at2N.parts[p]);
          work -= parts[p];
        }
        out.push({ scenario: sc.name, label: sc.label, instructions, parts, work });
      }
      return out;
    });
    return { markdown: render(rows), raw: rows };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One server under cachegrind: its warm-up, then `requests` counted requests; its instructions. */
async function countInstructions(url: string, sc: Scenario, requests: number, dir: string): Promise<Count> {
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
  return readCount(await readFile(outFile, 'utf8'));
}

/**
 * A demangled C++ signature's qualified name, without its return type, template arguments,
 * anonymous namespaces and parameters: `void v8::internal::Foo<X>::Bar<Y>(Z)` is
 * `v8::internal::Foo::Bar`.
 */
function qualifiedName(signature: string): string {
  let depth = 0;
  let name = '';
  for (const ch of signature.replaceAll('(anonymous namespace)::', '')) {
    if (ch === '<') depth++;
    else if (ch === '>') depth--;
    else if (depth === 0) {
      if (ch === '(') break;
      name += ch;
    }
  }
  return name.slice(name.lastIndexOf(' ') + 1);
}

/**
 * The `Ir` (instructions read) total of a cachegrind output file, and the part of it in functions
 * of each of V8's moving parts. The file lists `fn=<name>` followed by `<line> <Ir> ...` lines.
 */
function readCount(text: string): Count {
  const events = /^events: (.*)$/m.exec(text)?.[1]?.split(' ');
  const summary = /^summary: (.*)$/m.exec(text)?.[1]?.split(' ');
  const i = events?.indexOf('Ir') ?? -1;
  const total = Number(summary?.[i]);
  if (i < 0 || !Number.isFinite(total)) throw new Error('no instruction total in the cachegrind output');
  const parts = noParts();
  let part: MovingPart | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) {
      const name = qualifiedName(line.slice(3));
      part = MOVING_PART_KEYS.find((p) => MOVING_PARTS[p].test(name));
    } else if (part !== undefined && line.charCodeAt(0) >= 48 && line.charCodeAt(0) <= 57) {
      // `<line> <count of event 0> <count of event 1> ...`: Ir is event i.
      const count = Number(line.split(' ')[1 + i]);
      if (Number.isFinite(count)) parts[part] += count;
    }
  }
  return { total, parts };
}

/** A count of zero in each of V8's moving parts. */
function noParts(): Record<MovingPart, number> {
  return { compile: 0, parse: 0, gc: 0 };
}

function render(rows: readonly Row[]): string {
  const bareRow = rows.find((r) => r.scenario === 'bare');
  const bare = bareRow?.instructions ?? Number.NaN;
  const delta = (r: Row): number => r.instructions - bare;
  const hp = rows.find((r) => r.scenario === 'hangproof');
  const otel = rows.find((r) => r.scenario === 'otel');
  const k = (x: number): string => (x / 1000).toFixed(1);
  const signed = (x: string): string => (x.startsWith('-') ? x : `+${x}`);
  const workDelta = (r: Row): number => r.work - (bareRow?.work ?? Number.NaN);
  const partDelta = (r: Row, p: MovingPart): string =>
    r.scenario === 'bare' ? k(r.parts[p]) : `${k(r.parts[p])} (${signed(k(r.parts[p] - (bareRow?.parts[p] ?? 0)))})`;
  const partNames = MOVING_PART_KEYS.map((p) => MOVING_PART_NAMES[p]);
  const lines = [
    `Measured ${environmentLine()}; valgrind's cachegrind; ${WARMUP_REQUESTS} requests of warm-up, then ${REQUESTS} and ${2 * REQUESTS} counted requests in two servers per scenario (closed loop, ${CONNECTIONS} connections). Thousands of instructions per request; in parentheses, the difference from bare.`,
    '',
    `| scenario | all | Δ vs bare | ratio | ${partNames.join(' | ')} | the request's own work (all but those three) | its Δ vs bare |`,
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${k(r.instructions)} | ${r.scenario === 'bare' ? '—' : k(delta(r))} | ${(r.instructions / bare).toFixed(3)} | ${MOVING_PART_KEYS.map((p) => partDelta(r, p)).join(' | ')} | ${k(r.work)} | ${r.scenario === 'bare' ? '—' : k(workDelta(r))} |`,
    ),
  ];
  if (hp !== undefined && otel !== undefined) {
    lines.push(
      '',
      `- The request's own work: hangproof adds **${(workDelta(hp) / workDelta(otel)).toFixed(2)}** of what OpenTelemetry adds (${k(workDelta(hp))} against ${k(workDelta(otel))} thousand instructions per request).`,
      delta(hp) > 0
        ? `- All instructions: hangproof adds **${(delta(hp) / delta(otel)).toFixed(2)}** of what OpenTelemetry adds per request (${k(delta(hp))} against ${k(delta(otel))} thousand).`
        : `- All instructions: hangproof counted fewer per request than bare in this run (${k(delta(hp))} thousand; OpenTelemetry ${k(delta(otel))} more): its added work is below what V8's moving parts move between runs.`,
    );
  }
  return lines.join('\n');
}
