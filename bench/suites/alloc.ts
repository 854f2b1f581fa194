import { fileURLToPath, pathToFileURL } from 'node:url';
import { withBotsDatabase } from '../lib/bots-database.ts';
import { runLoad } from '../lib/load.ts';
import { FIXED_RATE_CONNECTIONS, warmUp, warmUpText } from '../lib/measure.ts';
import { environmentLine } from '../lib/report.ts';
import { startServerProcess } from '../lib/server-process.ts';
import type { SuiteSettings } from '../run.ts';
import { DB_SCENARIOS, DB_SERVER, type DbScenario } from './db.ts';

const SAMPLER = pathToFileURL(fileURLToPath(new URL('../servers/heap-sampler.mjs', import.meta.url))).href;
const DEFAULT_RATE = 1000;
/** The db suite's scenarios this one weighs: the baselines, hangproof, its parts, OpenTelemetry. */
const NAMES = ['bare', 'bare-logged', 'hangproof', 'edge-only', 'pg-ctx', 'otel'];
/** Owners listed in the breakdown; the rest are summed as "everything else". */
const BREAKDOWN_ROWS = 8;

interface HeapAnswer {
  readonly total: number;
  readonly byOwner: Readonly<Record<string, number>>;
}

interface AllocFigures {
  readonly name: string;
  readonly label: string;
  readonly requests: number;
  readonly bytesPerRequest: number;
  readonly byOwnerPerRequest: Readonly<Record<string, number>>;
}

async function measure(sc: DbScenario, url: string, s: SuiteSettings, rate: number): Promise<AllocFigures> {
  const preload = `--import=${SAMPLER}`;
  const nodeOptions = sc.env.NODE_OPTIONS === undefined ? preload : `${sc.env.NODE_OPTIONS} ${preload}`;
  const server = await startServerProcess(DB_SERVER, {
    BENCH_SCENARIO: sc.name,
    DATABASE_URL: url,
    ...sc.env,
    NODE_OPTIONS: nodeOptions,
  });
  try {
    const target = server.url;
    await warmUp(target, { ...s, fixedRate: rate });
    await server.call('heap-start', 'heap-started');
    const load = await runLoad({
      url: target,
      durationSec: s.durationSec,
      connections: FIXED_RATE_CONNECTIONS,
      rate,
      requests: rate * s.durationSec,
    });
    const heap = await server.call<HeapAnswer>('heap-stop', 'heap');
    const n = Math.max(1, load.requests);
    return {
      name: sc.name,
      label: sc.label,
      requests: load.requests,
      bytesPerRequest: heap.total / n,
      byOwnerPerRequest: Object.fromEntries(Object.entries(heap.byOwner).map(([k, v]) => [k, v / n])),
    };
  } finally {
    await server.stop();
  }
}

const kb = (bytes: number): string => (bytes / 1024).toFixed(1);

function render(rows: readonly AllocFigures[], s: SuiteSettings, rate: number): string {
  const base = rows[0] as AllocFigures;
  const lines = [
    `Measured ${environmentLine()}; ${s.durationSec} s at ${rate} rps after ${warmUpText(s.warmupSec)}; V8's sampling heap profiler, one sample per 256 bytes, collected objects included.`,
    '',
    '| scenario | allocated per request (KB) | Δ vs bare (KB) | ratio |',
    '|---|---|---|---|',
  ];
  for (const r of rows) {
    const delta = r === base ? '—' : kb(r.bytesPerRequest - base.bytesPerRequest);
    lines.push(
      `| ${r.label} | ${kb(r.bytesPerRequest)} | ${delta} | ${(r.bytesPerRequest / base.bytesPerRequest).toFixed(2)} |`,
    );
  }
  const hp = rows.find((r) => r.name === 'hangproof');
  if (hp !== undefined) {
    lines.push('', 'Where the bytes of one request are allocated, bare against hangproof (KB per request):', '');
    lines.push('| allocated by | bare | hangproof | Δ |', '|---|---|---|---|');
    const owners = new Set([...Object.keys(base.byOwnerPerRequest), ...Object.keys(hp.byOwnerPerRequest)]);
    const diff = (o: string): number => (hp.byOwnerPerRequest[o] ?? 0) - (base.byOwnerPerRequest[o] ?? 0);
    const ranked = [...owners].sort((a, b) => Math.abs(diff(b)) - Math.abs(diff(a)));
    const shown = ranked.slice(0, BREAKDOWN_ROWS);
    const sum = (figures: AllocFigures, list: readonly string[]): number =>
      list.reduce((t, o) => t + (figures.byOwnerPerRequest[o] ?? 0), 0);
    for (const o of shown) {
      lines.push(
        `| ${o} | ${kb(base.byOwnerPerRequest[o] ?? 0)} | ${kb(hp.byOwnerPerRequest[o] ?? 0)} | ${kb(diff(o))} |`,
      );
    }
    const rest = ranked.slice(BREAKDOWN_ROWS);
    if (rest.length > 0) {
      lines.push(
        `| everything else | ${kb(sum(base, rest))} | ${kb(sum(hp, rest))} | ${kb(sum(hp, rest) - sum(base, rest))} |`,
      );
    }
  }
  return lines.join('\n');
}

/**
 * Alloc suite: bytes the server allocates per request on the db suite's route (one indexed query,
 * 50 rows), for the db suite's baselines, hangproof, two of its parts and OpenTelemetry, at a
 * fixed rate. Allocation is what the garbage collector pays for later, on the server's own core,
 * so it is the figure to watch when CPU per request grows without a hot spot. Run one after the
 * other in one invocation, and reported against bare.
 */
export async function allocSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const rate = s.fixedRate ?? DEFAULT_RATE;
  const scenarios = DB_SCENARIOS.filter((sc) => NAMES.includes(sc.name));
  return withBotsDatabase('alloc', async (url) => {
    const rows: AllocFigures[] = [];
    for (const sc of scenarios) {
      process.stderr.write(`alloc: ${sc.name}...\n`);
      rows.push(await measure(sc, url, s, rate));
    }
    return { markdown: render(rows, s, rate), raw: rows };
  });
}
