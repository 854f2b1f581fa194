import { withBotsDatabase } from '../lib/bots-database.ts';
import {
  medianAndRange,
  type PairedRounds,
  type PairMember,
  pairedDeltas,
  pairedRatios,
  pairedRounds,
  pairedSettings,
} from '../lib/paired-rounds.ts';
import { environmentLine } from '../lib/report.ts';
import { median, signed } from '../lib/rounds.ts';
import type { SuiteSettings } from '../run.ts';
import { DB_SCENARIOS, DB_SERVER, type DbScenario } from './db.ts';

/** Requests each server answers per round, closed loop. */
const REQUESTS_PER_ROUND = 10_000;
/** Requests each server answers before the first round, so both run optimized code. */
const WARMUP_REQUESTS = 15_000;
/** The candidates paired with bare when BENCH_PAIRS_SCENARIOS is not set. */
const DEFAULT_CANDIDATES = [
  'bare-stack',
  'als-only',
  'edge-only',
  'pg-only',
  'pg-ctx',
  'hangproof-no-observe',
  'hangproof',
  'otel',
];

export interface PairResult {
  readonly name: string;
  readonly label: string;
  /** CPU per request of bare and of the candidate in each round, µs. */
  readonly bare: number[];
  readonly candidate: number[];
}

/** `rounds` rounds of `candidate` beside bare, spread over `processPairs` fresh pairs of servers. */
async function measurePair(
  url: string,
  candidate: DbScenario,
  rounds: number,
  processPairs: number,
  connections: number,
): Promise<PairResult> {
  const member = (sc: DbScenario): PairMember => ({
    server: DB_SERVER,
    env: { DATABASE_URL: url, BENCH_SCENARIO: sc.name, ...sc.env },
  });
  const measured = await pairedRounds(member(DB_SCENARIOS[0] as DbScenario), member(candidate), {
    rounds,
    processPairs,
    connections,
    warmupRequests: WARMUP_REQUESTS,
    requestsPerRound: REQUESTS_PER_ROUND,
    progress: (round, pair) =>
      `pairs: ${candidate.name} with bare, round ${round}/${rounds} (process pair ${pair}/${processPairs})`,
  });
  return { name: candidate.name, label: candidate.label, bare: measured.baseline, candidate: measured.candidate };
}

const asRounds = (p: PairResult): PairedRounds => ({ baseline: p.bare, candidate: p.candidate });
const deltas = (p: PairResult): number[] => pairedDeltas(asRounds(p));
const ratios = (p: PairResult): number[] => pairedRatios(asRounds(p));

/**
 * Pairs suite: each candidate of the db suite runs beside a bare server, both pinned to the same
 * core and loaded at the same moment (closed loop, the same number of requests each), and the
 * figure is each round's difference in CPU per request between the two. The db suite runs its
 * scenarios one after another, and this VM's speed moves by up to a factor of two between
 * minutes, which its rounds cannot tell from a cost; two servers sharing a core see the same
 * speed, so the difference within a round keeps only what the candidate adds (its rounds spread
 * 1 to 8 points of bare's CPU, the db suite's ±6 to ±66 %). It measures CPU only: two servers
 * sharing a core have no throughput of their own to compare. BENCH_PAIRS_SCENARIOS picks the
 * candidates (db scenario names), BENCH_ROUNDS the rounds (default 9), BENCH_PAIRS_PROCESSES the
 * fresh pairs of processes they are spread over (default 3).
 */
export async function pairsSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const { rounds, processPairs, connections } = pairedSettings(s.connections);
  const names = process.env.BENCH_PAIRS_SCENARIOS?.split(',').map((n) => n.trim()) ?? DEFAULT_CANDIDATES;
  const candidates = names.map((name) => {
    const sc = DB_SCENARIOS.find((d) => d.name === name && name !== 'bare');
    if (sc === undefined) throw new Error(`unknown pairs candidate '${name}'; db scenarios other than bare`);
    return sc;
  });
  const results = await withBotsDatabase('pairs', async (url) => {
    const out: PairResult[] = [];
    for (const c of candidates) out.push(await measurePair(url, c, rounds, processPairs, connections));
    return out;
  });
  const meta: PairsRun = { environment: environmentLine(), rounds, processPairs, connections };
  return { markdown: renderPairs(results, meta), raw: { meta, results } };
}

interface PairsRun {
  readonly environment: string;
  readonly rounds: number;
  /** Fresh pairs of server processes the rounds were spread over (absent in runs before it existed). */
  readonly processPairs?: number;
  readonly connections: number;
}

/**
 * The table of a pairs run. Each pair ran at its own time, at the machine's speed of that time, so
 * the relative figures (the candidate's CPU over bare's, within a round) are the ones to compare
 * across rows; the µs are those of the pair's own speed.
 */
export function renderPairs(results: readonly PairResult[], run: PairsRun): string {
  const rows = results.map((p) => {
    const d = deltas(p);
    const r = ratios(p);
    return `| ${p.label} | ${median(p.bare).toFixed(1)} | ${medianAndRange(d, signed)} | **${percent(median(r))}** (${percent(Math.min(...r))} to ${percent(Math.max(...r))}) |`;
  });
  const lines = [
    `Measured ${run.environment}; each candidate beside a bare server on the same core, both answering ${REQUESTS_PER_ROUND} requests at once per round (closed loop, ${run.connections} connections each) after ${WARMUP_REQUESTS} of warm-up; ${run.rounds} rounds${run.processPairs === undefined ? '' : `, spread over ${run.processPairs} fresh pairs of server processes`}; server CPU (user + system, every thread) per request.`,
    '',
    "| candidate | bare CPU/request in its pair (µs) | Δ CPU within each round, median (range) (µs) | Δ CPU as a share of bare's, median (range) |",
    '|---|---|---|---|',
    ...rows,
  ];
  const hp = results.find((p) => p.name === 'hangproof');
  const otel = results.find((p) => p.name === 'otel');
  if (hp !== undefined && otel !== undefined) {
    const h = median(ratios(hp)) - 1;
    const o = median(ratios(otel)) - 1;
    lines.push(
      '',
      `- hangproof adds **${(h / o).toFixed(2)}** of what OpenTelemetry adds (${percent(h + 1)} against ${percent(o + 1)} of bare's CPU per request; target ≤ 0.5, aim 0.25).`,
      `- Where the server's core is what limits a service, it answers 1 / (1 + share) of bare's requests: ${(1 / (1 + h)).toFixed(2)} with hangproof. The throughput target (≥ 0.90) is judged by the db suite, whose load generator and Postgres share the other core.`,
    );
  }
  return lines.join('\n');
}

/** A CPU ratio to bare as the share it adds: 1.147 → `+14.7%`. */
function percent(ratio: number): string {
  return `${signed((ratio - 1) * 100)}%`;
}
