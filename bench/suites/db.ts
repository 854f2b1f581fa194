import { fileURLToPath, pathToFileURL } from 'node:url';
import { withBotsDatabase } from '../lib/bots-database.ts';
import { measureScenario, type ScenarioFigures, warmUpText } from '../lib/measure.ts';
import { type NodeRuntime, requestedNodeRuntimes } from '../lib/node-binary.ts';
import { environmentLine } from '../lib/report.ts';
import { againText, coreSpeedNote, interleavedRounds, median, pairedMedian, signed, spread } from '../lib/rounds.ts';
import type { SuiteSettings } from '../run.ts';

export const DB_SERVER = fileURLToPath(new URL('../servers/db.mjs', import.meta.url));
export const OTEL_PRELOAD = pathToFileURL(fileURLToPath(new URL('../servers/otel-preload.mjs', import.meta.url))).href;
const DEFAULT_RATE = 1000;

export interface DbScenario {
  readonly name: string;
  readonly label: string;
  readonly env: Readonly<Record<string, string>>;
}

/**
 * The scenarios, baseline first. BENCH_DB_SCENARIOS (comma-separated names) picks a subset, and
 * BENCH_PG_OPTIONS (JSON) adds createDatabase options to the hangproof scenarios.
 */
export const DB_SCENARIOS: readonly DbScenario[] = [
  { name: 'bare', label: 'bare: Fastify + pg Pool', env: {} },
  {
    name: 'bare-logged',
    label: "bare with Fastify's own request logging (two pino lines per request, batched to /dev/null)",
    env: {},
  },
  {
    name: 'hangproof',
    label: 'hangproof: plugin + log line, hangproof/pg, observe',
    env: {},
  },
  { name: 'pg-only', label: 'bare + hangproof/pg alone (no plugin, no observe, no request context)', env: {} },
  {
    name: 'bare-stack',
    label: 'bare on a stack of its own pg clients instead of pg-pool (what pg-pool adds to a query)',
    env: {},
  },
  { name: 'als-only', label: 'bare + one AsyncLocalStorage.run per request (context propagation alone)', env: {} },
  {
    name: 'edge-only',
    label: 'bare pg Pool behind the hangproof plugin with its log line (no guard, no observe)',
    env: {},
  },
  {
    name: 'hangproof-line-log',
    label: 'hangproof with its log line written at once (one write call per request) instead of batched',
    env: { BENCH_LOG: 'line' },
  },
  {
    name: 'hangproof-no-observe',
    label: 'hangproof without observe (plugin + log line + guard)',
    env: { BENCH_OBSERVE: '0' },
  },

  {
    name: 'pg-ctx',
    label: 'bare + hangproof/pg inside a request context (no plugin, no log line, no observe)',
    env: {},
  },
  {
    name: 'otel',
    label: 'OpenTelemetry: bare + Node SDK, http/fastify/pg instrumentations, batch processor',
    env: { NODE_OPTIONS: `--import=${OTEL_PRELOAD}` },
  },
];

interface Summary {
  readonly name: string;
  readonly label: string;
  readonly cpu: number;
  readonly rps: number;
  readonly p99Saturation: number;
  readonly p50Fixed: number;
  readonly p99Fixed: number;
  readonly rounds: readonly ScenarioFigures[];
}

/**
 * What `s` adds to `base`'s CPU per request, as the median of the differences within each round:
 * the two ran a minute apart at most, so the machine's slower drift cancels out of each difference.
 */
function addedCpu(s: Summary, base: Summary): number {
  return pairedMedian(s.rounds, base.rounds, (r, b) => r.cpuMicrosPerRequest - b.cpuMicrosPerRequest);
}

/** Throughput over bare's, as the median of each round's ratio (as addedCpu takes differences). */
function throughputRatio(s: Summary, base: Summary): number {
  return pairedMedian(s.rounds, base.rounds, (r, b) => r.saturation.rps / b.saturation.rps);
}

function summarize(s: DbScenario, rounds: readonly ScenarioFigures[]): Summary {
  return {
    name: s.name,
    label: s.label,
    cpu: median(rounds.map((r) => r.cpuMicrosPerRequest)),
    rps: median(rounds.map((r) => r.saturation.rps)),
    p99Saturation: median(rounds.map((r) => r.saturation.p99)),
    p50Fixed: median(rounds.map((r) => r.fixedRate.p50)),
    p99Fixed: median(rounds.map((r) => r.fixedRate.p99)),
    rounds,
  };
}

/**
 * Db suite: one indexed query per request (`SELECT ... FROM bots WHERE user_id = $1 ORDER BY
 * updated_at DESC LIMIT 50`, 50 rows out of 100k) on an embedded Postgres the suite starts and
 * seeds. Baseline bare Fastify + pg Pool; then all of hangproof; then the bare route under
 * OpenTelemetry auto-instrumentation. Scenarios are interleaved over BENCH_ROUNDS rounds (default
 * 2) and medians reported. Targets: hangproof keeps ≥ 90% of bare throughput and adds at most half
 * of the CPU OpenTelemetry adds. BENCH_NODE_VERSIONS (e.g. `22,24`) runs bare, hangproof and
 * OpenTelemetry again on each of those Node versions (binaries from the registry) for a second table;
 * `22+experimental-async-context-frame` runs Node 22 with that flag.
 */
export async function dbSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const rate = s.fixedRate ?? DEFAULT_RATE;
  const roundsWanted = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
  const only = process.env.BENCH_DB_SCENARIOS?.split(',').map((n) => n.trim());
  const scenarios = DB_SCENARIOS.filter((sc) => only === undefined || sc.name === 'bare' || only.includes(sc.name));
  const runtimes = await requestedNodeRuntimes();
  return withBotsDatabase('db', async (url) => {
    const main = await measureRounds(url, scenarios, roundsWanted, s, rate, undefined);
    const markdown = [render(main, s, rate, roundsWanted)];
    const perVersion: { version: string; rows: Summary[] }[] = [];
    // AsyncLocalStorage alone too: what context propagation costs on each version, before any of hangproof.
    const across = DB_SCENARIOS.filter((sc) => ['bare', 'als-only', 'hangproof', 'otel'].includes(sc.name));
    for (const runtime of runtimes) {
      perVersion.push({
        version: runtime.label,
        rows: await measureRounds(url, across, roundsWanted, s, rate, runtime),
      });
    }
    if (perVersion.length > 0)
      markdown.push('', renderVersions([{ version: process.version, rows: main }, ...perVersion]));
    return { markdown: markdown.join('\n'), raw: { main, perVersion } };
  });
}

async function measureRounds(
  url: string,
  scenarios: readonly DbScenario[],
  roundsWanted: number,
  s: SuiteSettings,
  rate: number,
  runtime: NodeRuntime | undefined,
): Promise<Summary[]> {
  const rounds = await interleavedRounds(scenarios, roundsWanted, async (sc, round, attempt) => {
    process.stderr.write(
      `db: ${runtime === undefined ? '' : `Node ${runtime.label}: `}round ${round}/${roundsWanted}: ${sc.name}${againText(attempt)}...\n`,
    );
    const figures = await measureScenario({
      serverFile: DB_SERVER,
      scenario: sc.name,
      env: { DATABASE_URL: url, ...sc.env },
      ...s,
      fixedRate: rate,
      ...(runtime === undefined ? {} : { nodePath: runtime.nodePath, nodeArgs: runtime.nodeArgs }),
    });
    if (figures.saturation.non2xx + figures.saturation.errors > 0) {
      process.stderr.write(
        `db: ${sc.name}: ${figures.saturation.non2xx} non-2xx, ${figures.saturation.errors} errors at saturation\n`,
      );
    }
    return figures;
  });
  return scenarios.map((sc) => summarize(sc, rounds.get(sc) ?? []));
}

/** What one `process.nextTick` cost in the scenario's server after each round, ns. */
function nextTickPerRound(r: Summary): string {
  return r.rounds.map((x) => Math.round(x.nextTickNanos)).join(' / ');
}

/** One line per Node version: hangproof's and OpenTelemetry's cost against bare on that version. */
function renderVersions(runs: readonly { version: string; rows: readonly Summary[] }[]): string {
  const lines = [
    '| Node | bare CPU/request (µs) | AsyncLocalStorage alone: Δ CPU (µs), throughput / bare | hangproof Δ CPU (µs) | OpenTelemetry Δ CPU (µs) | hangproof Δ / OpenTelemetry Δ | hangproof throughput / bare | one nextTick per round, bare; hangproof (ns) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const { version, rows } of runs) {
    const by = new Map(rows.map((r) => [r.name, r]));
    const bare = by.get('bare');
    const hp = by.get('hangproof');
    const otel = by.get('otel');
    if (bare === undefined || hp === undefined || otel === undefined) continue;
    const hpCpu = addedCpu(hp, bare);
    const otelCpu = addedCpu(otel, bare);
    const als = by.get('als-only');
    const alsCells =
      als === undefined ? '—' : `${signed(addedCpu(als, bare))}, ${throughputRatio(als, bare).toFixed(2)}`;
    lines.push(
      `| ${version} | ${bare.cpu.toFixed(1)} | ${alsCells} | ${signed(hpCpu)} | ${signed(otelCpu)} | ${(hpCpu / otelCpu).toFixed(2)} | ${throughputRatio(hp, bare).toFixed(2)} | ${nextTickPerRound(bare)}; ${nextTickPerRound(hp)} |`,
    );
  }
  return lines.join('\n');
}

function render(rows: readonly Summary[], s: SuiteSettings, rate: number, rounds: number): string {
  const base = rows[0] as Summary;
  const byName = new Map(rows.map((r) => [r.name, r]));
  const lines = [
    `Measured ${environmentLine()}; ${s.durationSec} s per run after ${warmUpText(s.warmupSec)}; fixed rate ${rate} rps; ${rounds} interleaved round(s), medians shown; "Δ CPU vs bare, per round" is the median of the differences from bare within each round, and "ratio" the median of the throughput ratios to bare within each round.`,
    '',
    '| scenario | CPU/request (µs) | Δ CPU vs bare, per round (µs) | throughput (rps, 50 conns) | ratio | p99 at saturation (ms) | p50 / p99 at fixed rate (ms) | spread of throughput / CPU over rounds |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${r.cpu.toFixed(1)} | ${r === base ? '—' : addedCpu(r, base).toFixed(1)} | ${Math.round(r.rps)} | ${r === base ? '1.00' : throughputRatio(r, base).toFixed(2)} | ${r.p99Saturation} | ${r.p50Fixed} / ${r.p99Fixed} | ${spread(r.rounds.map((x) => x.saturation.rps))} / ${spread(r.rounds.map((x) => x.cpuMicrosPerRequest))} |`,
    );
  }
  lines.push('');
  const otel = byName.get('otel');
  for (const name of ['hangproof']) {
    const hp = byName.get(name);
    if (hp === undefined) continue;
    const ratio = throughputRatio(hp, base);
    lines.push(
      `- ${name}: **${(ratio * 100).toFixed(1)}%** of bare throughput (target ≥ 90%: ${ratio >= 0.9 ? 'met' : 'missed'}); **+${addedCpu(hp, base).toFixed(0)} µs** of server CPU per request.`,
    );
    if (otel !== undefined) {
      const hpLoss = base.rps - hp.rps;
      const otelLoss = base.rps - otel.rps;
      const hpCpu = addedCpu(hp, base);
      const otelCpu = addedCpu(otel, base);
      lines.push(
        `  Against OpenTelemetry (each round's difference from bare, median over the rounds): CPU added ${hpCpu.toFixed(0)} vs ${otelCpu.toFixed(0)} µs per request, a ratio of **${(hpCpu / otelCpu).toFixed(2)}** (target ≤ 0.5, aim 0.25: ${hpCpu <= 0.5 * otelCpu ? 'met' : 'missed'}); throughput lost ${Math.round(hpLoss)} vs ${Math.round(otelLoss)} rps.`,
      );
    }
  }
  const logged = byName.get('bare-logged');
  const hp = byName.get('hangproof');
  if (logged !== undefined && hp !== undefined) {
    lines.push(
      `- Against a bare route that logs each request as Fastify does: hangproof keeps **${(throughputRatio(hp, logged) * 100).toFixed(0)}%** of its throughput and adds **+${addedCpu(hp, logged).toFixed(0)} µs** of CPU per request.`,
    );
  }
  lines.push(
    `- One \`process.nextTick\` in each server after its runs, ns per round (30 to 50 is Node's fast state, 70 to 100 with AsyncLocalStorage's hooks on Node 20, 250 and more its slow state; see "Seventh pass" below): ${rows.map((r) => `${r.name} ${nextTickPerRound(r)}`).join('; ')}.`,
  );
  lines.push(`- ${coreSpeedNote(rows.map((r) => r.rounds))}`);
  const noisy = rows.filter((r) => {
    const xs = r.rounds.map((x) => x.saturation.rps);
    const m = median(xs);
    return xs.some((x) => Math.abs(x - m) / m > 0.2);
  });
  if (noisy.length > 0) {
    lines.push(
      `- Throughput moved more than ±20% between rounds for ${noisy.map((r) => r.name).join(', ')} (other work on the machine): the throughput verdicts above are unreliable; CPU per request is the steadier figure.`,
    );
  }
  return lines.join('\n');
}
