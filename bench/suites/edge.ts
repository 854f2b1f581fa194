import { fileURLToPath } from 'node:url';
import { measureScenario, type ScenarioFigures, warmUpText } from '../lib/measure.ts';
import { type NodeRuntime, requestedNodeRuntimes } from '../lib/node-binary.ts';
import { environmentLine, scenarioTable } from '../lib/report.ts';
import {
  againText,
  coreSpeedNote,
  interleavedRounds,
  median,
  medianRound,
  pairedMedian,
  signed,
  spread,
} from '../lib/rounds.ts';
import type { SuiteSettings } from '../run.ts';

export const EDGE_SERVER = fileURLToPath(new URL('../servers/edge.mjs', import.meta.url));
/** Rounds when BENCH_ROUNDS is not set: an odd count, so the median is one real run. */
const DEFAULT_ROUNDS = 3;
/** Seconds of no load over which each server's idle CPU is measured. */
const IDLE_SEC = 3;
/** Requests a second of the fixed-rate run when BENCH_RATE is not set. */
const DEFAULT_RATE = 2000;
/** What BENCH_NODE_VERSIONS runs again on each of those Node versions: the logging comparison. */
const LOGGING_SCENARIOS = [
  'bare',
  'hangproof-silent',
  'fastify-logging',
  'hangproof',
  'fastify-logging-buffered',
  'hangproof-buffered',
] as const;

/**
 * Edge suite: the cost of the hangproof plugin on a trivial route. Baseline bare Fastify; then
 * hangproof without its log line (context, ID, deadline, spans); Fastify's own request logging;
 * hangproof with its log line; and hangproof refusing every request with 503 OVERLOADED, beside
 * node:http alone sending the same answer (`http-refusal`, the floor under any refusal). The two
 * logging scenarios run again with hangproof's bufferedLogger as the destination of both
 * (`-buffered`), as the docs advise for a busy service. Scenarios are interleaved over
 * BENCH_ROUNDS rounds (default 3); each row is the scenario's median-CPU round. Targets: the silent plugin adds at most 15 µs of CPU per request; hangproof
 * with its log line costs no more than Fastify's own request logging; a refusal costs at most
 * 20 µs of CPU. BENCH_NODE_VERSIONS (e.g. `22,24`) runs the logging scenarios again on each of
 * those Node versions (binaries from the registry) for a second table, as the db suite does.
 */
export async function edgeSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const roundsWanted = Math.max(1, Number(process.env.BENCH_ROUNDS ?? DEFAULT_ROUNDS));
  const rate = s.fixedRate ?? DEFAULT_RATE;
  const core = ['bare', 'hangproof-silent', 'fastify-logging', 'hangproof', 'hangproof-refusing'];
  const buffered = ['fastify-logging-buffered', 'hangproof-buffered'];
  // Each other adapter against its own bare framework.
  const frameworks = ['express', 'hono', 'http'];
  // node:http alone sending a refusal's bytes: the floor under what a refusal costs; and a bare
  // TCP server writing them, what the machine's socket and Node's loop cost a request at least.
  const scenarios = [
    ...core,
    ...buffered,
    ...frameworks.flatMap((f) => [`${f}-bare`, `${f}-hangproof`]),
    'http-refusal',
    'net-refusal',
  ];
  const runtimes = await requestedNodeRuntimes();
  const rounds = await measureRounds(scenarios, roundsWanted, s, rate, undefined);
  const perVersion: { version: string; rounds: Map<string, ScenarioFigures[]> }[] = [
    { version: process.version, rounds },
  ];
  for (const runtime of runtimes) {
    perVersion.push({
      version: runtime.label,
      rounds: await measureRounds(LOGGING_SCENARIOS, roundsWanted, s, rate, runtime),
    });
  }
  const pick = (scenario: string): ScenarioFigures => medianRound(rounds.get(scenario) ?? []);
  const cpuSpread = (scenario: string): string =>
    spread((rounds.get(scenario) ?? []).map((r) => r.cpuMicrosPerRequest));
  const rows = core.map(pick);
  const [fastifyLogBuffered, fullBuffered] = buffered.map(pick) as [ScenarioFigures, ScenarioFigures];
  const marginal = (r: ScenarioFigures): number => r.marginalCpuMicrosPerRequest ?? r.cpuMicrosPerRequest;
  const adapters = frameworks.map((f) => [f, pick(`${f}-bare`), pick(`${f}-hangproof`)] as const);
  const httpBare = pick('http-bare');
  const httpRefusal = pick('http-refusal');
  const netRefusal = pick('net-refusal');
  const [bare, silent, fastifyLog, full, refusing] = rows as [
    ScenarioFigures,
    ScenarioFigures,
    ScenarioFigures,
    ScenarioFigures,
    ScenarioFigures,
  ];
  const overBare = (r: ScenarioFigures): number => r.cpuMicrosPerRequest - bare.cpuMicrosPerRequest;
  const pluginCost = overBare(silent);
  const hpLogCost = full.cpuMicrosPerRequest - silent.cpuMicrosPerRequest;
  const fastifyLogCost = overBare(fastifyLog);
  const markdown = [
    `Measured ${environmentLine()}; ${s.durationSec} s per run after ${warmUpText(s.warmupSec)}; fixed rate ${rate} rps; ${roundsWanted} interleaved round(s), each scenario's median-CPU round shown.`,
    '',
    scenarioTable([...rows, fastifyLogBuffered, fullBuffered]),
    '',
    `Spread of CPU per request over the rounds: ${[...core, ...buffered].map((c) => `${c} ${cpuSpread(c)}`).join(', ')}.`,
    '',
    coreSpeedNote(rounds.values()),
    '',
    `- Context, ID, deadline and spans (hangproof-silent − bare): **${pluginCost.toFixed(1)} µs** of server CPU per request (target ≤ 15 µs).`,
    `- hangproof's one log line: **${hpLogCost.toFixed(1)} µs**; Fastify's own request logging of the same request: **${fastifyLogCost.toFixed(1)} µs**.`,
    `- hangproof with its log line (hangproof − bare): **${overBare(full).toFixed(1)} µs** against Fastify's own request logging: **${fastifyLogCost.toFixed(1)} µs** (target: hangproof's ≤ Fastify's), both lines through pino's own destination.`,
    `- The same through hangproof's bufferedLogger (both): hangproof with its log line **${overBare(fullBuffered).toFixed(1)} µs** against Fastify's own request logging **${overBare(fastifyLogBuffered).toFixed(1)} µs**.`,
    `- A request refused 503 OVERLOADED: **${marginal(refusing).toFixed(1)} µs** of server CPU for one more refusal (${refusing.cpuMicrosPerRequest.toFixed(1)} µs with the process's idle CPU shared over the refusals at ${rate} a second; target ≤ 20 µs; bare Fastify serving /hello: ${marginal(bare).toFixed(1)} µs, bare node:http: ${marginal(httpBare).toFixed(1)} µs).`,
    `- node:http alone sending the same answer (status, headers, error body; no decision, no framework): **${marginal(httpRefusal).toFixed(1)} µs** per one more answer, the floor under any refusal on this machine today; hangproof's refusal costs ${(marginal(refusing) / marginal(httpRefusal)).toFixed(2)}× it (${signed(marginal(refusing) - marginal(httpRefusal))} µs). A bare TCP server writing those bytes for each request it sees, with no HTTP parser and no request objects: **${marginal(netRefusal).toFixed(1)} µs**, what this machine's loopback socket and Node's event loop cost a request at least.`,
    stormLine(rounds, s.connections),
    '',
    'What the process costs with no request at all (timers, samplers, worker threads), what one more request costs on top of it, and what a request costs when the server is saturated (closed loop, as in a storm):',
    '',
    '| scenario | idle CPU (ms per s) | CPU per request at the fixed rate (µs) | CPU per one more request (µs) | CPU per request at saturation (µs) |',
    '|---|---|---|---|---|',
    ...[...rows, httpBare, httpRefusal, netRefusal].map(
      (r) =>
        `| ${r.scenario} | ${((r.idleCpuMicrosPerSec ?? 0) / 1000).toFixed(2)} | ${r.cpuMicrosPerRequest.toFixed(1)} | ${marginal(r).toFixed(1)} | ${r.saturationCpuMicrosPerRequest.toFixed(1)} |`,
    ),
    '',
    '| adapter | bare framework CPU/request (µs) | with hangproof and its log line (µs) | Δ (µs) | throughput ratio |',
    '|---|---|---|---|---|',
    `| fastify (plugin) | ${bare.cpuMicrosPerRequest.toFixed(1)} | ${full.cpuMicrosPerRequest.toFixed(1)} | ${(full.cpuMicrosPerRequest - bare.cpuMicrosPerRequest).toFixed(1)} | ${(full.saturation.rps / bare.saturation.rps).toFixed(2)} |`,
    ...adapters.map(
      ([name, b, h]) =>
        `| ${name} | ${b.cpuMicrosPerRequest.toFixed(1)} | ${h.cpuMicrosPerRequest.toFixed(1)} | ${(h.cpuMicrosPerRequest - b.cpuMicrosPerRequest).toFixed(1)} | ${(h.saturation.rps / b.saturation.rps).toFixed(2)} |`,
    ),
    ...(runtimes.length === 0 ? [] : ['', renderVersions(perVersion)]),
  ].join('\n');
  return {
    markdown,
    raw: perVersion.map((v) => ({ version: v.version, rounds: [...v.rounds.values()].flat() })),
  };
}

/**
 * The refusal in a storm: CPU per request in the saturation runs, where the loop finds several
 * requests at each wake-up, as it does when it refuses. Medians over the rounds, and the ratio to
 * the floor as the median of each round's ratio (the two ran seconds apart).
 */
function stormLine(rounds: ReadonlyMap<string, readonly ScenarioFigures[]>, connections: number): string {
  const of = (scenario: string): readonly ScenarioFigures[] => rounds.get(scenario) ?? [];
  const saturated = (scenario: string): number => median(of(scenario).map((r) => r.saturationCpuMicrosPerRequest));
  const ratio = pairedMedian(
    of('hangproof-refusing'),
    of('http-refusal'),
    (r, floor) => r.saturationCpuMicrosPerRequest / floor.saturationCpuMicrosPerRequest,
  );
  return `- The same at saturation (closed loop, ${connections} connections: a storm's regime, where each wake-up of the loop finds several requests): a refusal **${saturated('hangproof-refusing').toFixed(1)} µs**, node:http sending the same answer ${saturated('http-refusal').toFixed(1)} µs (hangproof's ${ratio.toFixed(2)}× it within a round), node:http serving /hello ${saturated('http-bare').toFixed(1)} µs, a bare TCP server writing the answer ${saturated('net-refusal').toFixed(1)} µs.`;
}

async function measureRounds(
  scenarios: readonly string[],
  roundsWanted: number,
  s: SuiteSettings,
  rate: number,
  runtime: NodeRuntime | undefined,
): Promise<Map<string, ScenarioFigures[]>> {
  return interleavedRounds(scenarios, roundsWanted, (scenario, round, attempt) => {
    process.stderr.write(
      `edge: ${runtime === undefined ? '' : `Node ${runtime.label}: `}round ${round}/${roundsWanted}: ${scenario}${againText(attempt)}...\n`,
    );
    return measureScenario({
      serverFile: EDGE_SERVER,
      scenario,
      ...s,
      fixedRate: rate,
      idleSec: IDLE_SEC,
      ...(runtime === undefined ? {} : { nodePath: runtime.nodePath, nodeArgs: runtime.nodeArgs }),
    });
  });
}

/**
 * The logging comparison on each Node version: what each scenario adds to bare, as the median of
 * its differences from bare within each round (the two ran seconds apart, so slow drift of the
 * machine cancels out), with the verdict of the target hangproof's ≤ Fastify's.
 */
function renderVersions(runs: readonly { version: string; rounds: Map<string, ScenarioFigures[]> }[]): string {
  const lines = [
    "The logging comparison on each Node version; Δ is the median over the rounds of each round's difference from bare (µs of CPU per request):",
    '',
    '| Node | bare (µs) | hangproof-silent Δ | Fastify logging Δ | hangproof Δ | hangproof ≤ Fastify | Fastify logging, buffered Δ | hangproof, buffered Δ | hangproof ≤ Fastify, buffered |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const { version, rounds } of runs) {
    const bare = rounds.get('bare') ?? [];
    const added = (scenario: string): number =>
      pairedMedian(rounds.get(scenario) ?? [], bare, (r, b) => r.cpuMicrosPerRequest - b.cpuMicrosPerRequest);
    const verdict = (hp: number, fastify: number): string => (hp <= fastify ? 'met' : 'missed');
    const [silent, fastifyLog, full, fastifyBuffered, fullBuffered] = LOGGING_SCENARIOS.slice(1).map(added) as [
      number,
      number,
      number,
      number,
      number,
    ];
    lines.push(
      `| ${version} | ${median(bare.map((r) => r.cpuMicrosPerRequest)).toFixed(1)} | ${signed(silent)} | ${signed(fastifyLog)} | ${signed(full)} | ${verdict(full, fastifyLog)} | ${signed(fastifyBuffered)} | ${signed(fullBuffered)} | ${verdict(fullBuffered, fastifyBuffered)} |`,
    );
  }
  return lines.join('\n');
}
