import { fileURLToPath } from 'node:url';
import { measureScenario, type ScenarioFigures } from '../lib/measure.ts';
import { environmentLine, scenarioTable } from '../lib/report.ts';
import type { SuiteSettings } from '../run.ts';

const SERVER = fileURLToPath(new URL('../servers/edge.mjs', import.meta.url));

/**
 * Edge suite: the cost of the hangproof plugin on a trivial route. Baseline bare Fastify; then
 * hangproof without its log line (context, ID, deadline, spans); Fastify's own request logging;
 * hangproof with its log line; and hangproof refusing every request with 503 OVERLOADED.
 * Targets: the silent plugin adds at most 15 µs of CPU per request; hangproof with its log line
 * costs no more than Fastify's own request logging; a refusal costs at most 20 µs of CPU.
 */
export async function edgeSuite(s: SuiteSettings): Promise<{ markdown: string; raw: ScenarioFigures[] }> {
  const rows: ScenarioFigures[] = [];
  for (const scenario of ['bare', 'hangproof-silent', 'fastify-logging', 'hangproof', 'hangproof-refusing']) {
    process.stderr.write(`edge: ${scenario}...\n`);
    rows.push(await measureScenario({ serverFile: SERVER, scenario, ...s, fixedRate: s.fixedRate ?? 2000 }));
  }
  // Each other adapter against its own bare framework.
  const adapters: [string, ScenarioFigures, ScenarioFigures][] = [];
  for (const framework of ['express', 'hono', 'http']) {
    const pair: ScenarioFigures[] = [];
    for (const variant of ['bare', 'hangproof']) {
      process.stderr.write(`edge: ${framework}-${variant}...\n`);
      pair.push(
        await measureScenario({
          serverFile: SERVER,
          scenario: `${framework}-${variant}`,
          ...s,
          fixedRate: s.fixedRate ?? 2000,
        }),
      );
    }
    adapters.push([framework, pair[0] as ScenarioFigures, pair[1] as ScenarioFigures]);
  }
  const [bare, silent, fastifyLog, full, refusing] = rows as [
    ScenarioFigures,
    ScenarioFigures,
    ScenarioFigures,
    ScenarioFigures,
    ScenarioFigures,
  ];
  const pluginCost = silent.cpuMicrosPerRequest - bare.cpuMicrosPerRequest;
  const hpLogCost = full.cpuMicrosPerRequest - silent.cpuMicrosPerRequest;
  const fastifyLogCost = fastifyLog.cpuMicrosPerRequest - bare.cpuMicrosPerRequest;
  const markdown = [
    `Measured ${environmentLine()}; ${s.durationSec} s per run after ${s.warmupSec} s warm-up; fixed rate ${s.fixedRate ?? 2000} rps.`,
    '',
    scenarioTable(rows),
    '',
    `- Context, ID, deadline and spans (hangproof-silent − bare): **${pluginCost.toFixed(1)} µs** of server CPU per request (target ≤ 15 µs).`,
    `- hangproof's one log line: **${hpLogCost.toFixed(1)} µs**; Fastify's own request logging of the same request: **${fastifyLogCost.toFixed(1)} µs**.`,
    `- hangproof with its log line (hangproof − bare): **${(full.cpuMicrosPerRequest - bare.cpuMicrosPerRequest).toFixed(1)} µs** against Fastify's own request logging: **${fastifyLogCost.toFixed(1)} µs** (target: hangproof's ≤ Fastify's).`,
    `- A request refused 503 OVERLOADED: **${refusing.cpuMicrosPerRequest.toFixed(1)} µs** of server CPU (target ≤ 20 µs; bare Fastify serving /hello: ${bare.cpuMicrosPerRequest.toFixed(1)} µs).`,
    '',
    '| adapter | bare framework CPU/request (µs) | with hangproof and its log line (µs) | Δ (µs) | throughput ratio |',
    '|---|---|---|---|---|',
    `| fastify (plugin) | ${bare.cpuMicrosPerRequest.toFixed(1)} | ${full.cpuMicrosPerRequest.toFixed(1)} | ${(full.cpuMicrosPerRequest - bare.cpuMicrosPerRequest).toFixed(1)} | ${(full.saturation.rps / bare.saturation.rps).toFixed(2)} |`,
    ...adapters.map(
      ([name, b, h]) =>
        `| ${name} | ${b.cpuMicrosPerRequest.toFixed(1)} | ${h.cpuMicrosPerRequest.toFixed(1)} | ${(h.cpuMicrosPerRequest - b.cpuMicrosPerRequest).toFixed(1)} | ${(h.saturation.rps / b.saturation.rps).toFixed(2)} |`,
    ),
  ].join('\n');
  return { markdown, raw: [...rows, ...adapters.flatMap(([, b, h]) => [b, h])] };
}
