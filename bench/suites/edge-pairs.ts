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
import { EDGE_SERVER } from './edge.ts';

/** Requests each server answers per round, closed loop: a few seconds at the edge's rates. */
const REQUESTS_PER_ROUND = 40_000;
/** Requests each server answers before the first round, so both run optimized code. */
const WARMUP_REQUESTS = 20_000;

/** One verdict of the edge suite, measured as a pair of its scenarios sharing a core. */
interface EdgeComparison {
  readonly name: string;
  readonly baseline: string;
  readonly candidate: string;
  /** What the figure answers, for the line under the table. */
  readonly question: string;
}

const COMPARISONS: readonly EdgeComparison[] = [
  {
    name: 'control',
    baseline: 'http-refusal',
    candidate: 'http-refusal',
    question: "two identical servers (node:http sending a refusal's bytes): the method's own offset, ideally 0",
  },
  {
    name: 'silent',
    baseline: 'bare',
    candidate: 'hangproof-silent',
    question: 'context, ID, deadline and spans over bare Fastify (target ≤ 15 µs)',
  },
  {
    name: 'logging',
    baseline: 'fastify-logging',
    candidate: 'hangproof',
    question: "hangproof with its log line over Fastify's own request logging, through pino's destination (target ≤ 0)",
  },
  {
    name: 'logging-buffered',
    baseline: 'fastify-logging-buffered',
    candidate: 'hangproof-buffered',
    question: "the same through hangproof's bufferedLogger (target ≤ 0)",
  },
  {
    name: 'refusal',
    baseline: 'http-refusal',
    candidate: 'hangproof-refusing',
    question: "a 503 OVERLOADED from hangproof over node:http alone sending the same answer (the refusal's floor)",
  },
  {
    name: 'refusal-hello',
    baseline: 'http-bare',
    candidate: 'hangproof-refusing',
    question:
      'a 503 OVERLOADED from hangproof over node:http answering `/hello` (what the service itself costs a request)',
  },
  {
    name: 'refusal-net',
    baseline: 'net-refusal',
    candidate: 'hangproof-refusing',
    question:
      'a 503 OVERLOADED from hangproof over a bare TCP server writing the same answer (no HTTP parser: what the socket and the event loop cost at least)',
  },
];

const REFUSING = new Set(['http-refusal', 'net-refusal', 'hangproof-refusing']);

export interface EdgePairResult extends PairedRounds {
  readonly name: string;
}

/**
 * Edge pairs suite: the edge suite's verdicts measured as pairs of servers sharing the server core,
 * loaded at the same moment (closed loop, the same number of requests each), the figure being each
 * round's difference in CPU per request. The edge suite runs its scenarios one after another, and
 * on a day when this VM's cores keep running slow for tens of seconds its rounds cannot tell a
 * slowed minute from a cost (on such a day every round of it was measured again, three times). Two
 * servers sharing a core see the same speed. It measures CPU only, and each server's per-second
 * work (observe's samplers and threads) is counted in its per-request figure as in the edge
 * suite's first table; two servers on one core also each read somewhat more than alone, so the
 * differences and ratios are the figures to read, not the µs. BENCH_EDGE_PAIRS picks the
 * comparisons (control, silent, logging, logging-buffered, refusal, refusal-hello, refusal-net), BENCH_ROUNDS
 * the rounds (default 9), BENCH_PAIRS_PROCESSES the fresh pairs of processes they are spread over
 * (default 3).
 */
export async function edgePairsSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const { rounds, processPairs, connections } = pairedSettings(s.connections);
  const names = process.env.BENCH_EDGE_PAIRS?.split(',').map((n) => n.trim()) ?? COMPARISONS.map((c) => c.name);
  const chosen = names.map((name) => {
    const c = COMPARISONS.find((x) => x.name === name);
    if (c === undefined) {
      throw new Error(`unknown edge pair '${name}'; pairs: ${COMPARISONS.map((x) => x.name).join(', ')}`);
    }
    return c;
  });
  const member = (scenario: string): PairMember => ({
    server: EDGE_SERVER,
    env: { BENCH_SCENARIO: scenario },
    refuses: REFUSING.has(scenario),
  });
  const results: EdgePairResult[] = [];
  for (const c of chosen) {
    const measured = await pairedRounds(member(c.baseline), member(c.candidate), {
      rounds,
      processPairs,
      connections,
      warmupRequests: WARMUP_REQUESTS,
      requestsPerRound: REQUESTS_PER_ROUND,
      progress: (round, pair) =>
        `edge-pairs: ${c.candidate} with ${c.baseline}, round ${round}/${rounds} (process pair ${pair}/${processPairs})`,
    });
    results.push({ name: c.name, ...measured });
  }
  const meta: EdgePairsRun = { environment: environmentLine(), rounds, processPairs, connections };
  return { markdown: renderEdgePairs(results, meta), raw: { meta, results } };
}

export interface EdgePairsRun {
  readonly environment: string;
  readonly rounds: number;
  readonly processPairs: number;
  readonly connections: number;
}

/** The table of an edge pairs run, with one line per verdict under it. */
export function renderEdgePairs(results: readonly EdgePairResult[], run: EdgePairsRun): string {
  const comparison = (name: string): EdgeComparison => COMPARISONS.find((c) => c.name === name) as EdgeComparison;
  const rows = results.map((p) => {
    const c = comparison(p.name);
    const d = pairedDeltas(p);
    const r = pairedRatios(p);
    return `| ${c.candidate} beside ${c.baseline} | ${median(p.baseline).toFixed(1)} | ${median(p.candidate).toFixed(1)} | ${medianAndRange(d, signed)} | ${medianAndRange(r, (x) => x.toFixed(2))} | ${d.filter((x) => x <= 0).length} of ${d.length} |`;
  });
  const verdicts = results.map((p) => {
    const c = comparison(p.name);
    return `- ${c.question}: **${signed(median(pairedDeltas(p)))} µs**, ${median(pairedRatios(p)).toFixed(2)}× within a round.`;
  });
  return [
    `Measured ${run.environment}; each candidate beside its baseline on the same core, both answering ${REQUESTS_PER_ROUND} requests at once per round (closed loop, ${run.connections} connections each) after ${WARMUP_REQUESTS} of warm-up; ${run.rounds} rounds, spread over ${run.processPairs} fresh pairs of server processes; server CPU (user + system, every thread) per request.`,
    '',
    '| pair | baseline CPU/request (µs) | candidate CPU/request (µs) | Δ CPU within each round, median (range) (µs) | ratio within each round, median (range) | rounds with Δ ≤ 0 |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    ...verdicts,
  ].join('\n');
}
