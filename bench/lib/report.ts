import { readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import type { ScenarioFigures } from './measure.ts';

const fmt = (n: number, digits = 1): string => n.toFixed(digits);

/** A Markdown table of the scenarios with ratios against the first (the baseline). */
export function scenarioTable(rows: readonly ScenarioFigures[]): string {
  const base = rows[0] as ScenarioFigures;
  const lines = [
    '| scenario | CPU/request (µs) | Δ CPU vs baseline (µs) | throughput (rps, 50 conns) | ratio | p99 at saturation (ms) | p50 / p99 at fixed rate (ms) |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.scenario} | ${fmt(r.cpuMicrosPerRequest)} | ${r === base ? '—' : fmt(r.cpuMicrosPerRequest - base.cpuMicrosPerRequest)} | ${Math.round(r.saturation.rps)} | ${fmt(r.saturation.rps / base.saturation.rps, 2)} | ${r.saturation.p99} | ${r.fixedRate.p50} / ${r.fixedRate.p99} |`,
    );
  }
  return lines.join('\n');
}

export function environmentLine(): string {
  return `Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, ${new Date().toISOString().slice(0, 10)}`;
}

/** Replaces the block between `<!-- bench:NAME -->` markers in docs/benchmarks.md. */
export async function updateBenchmarksDoc(docPath: string, name: string, content: string): Promise<void> {
  const doc = await readFile(docPath, 'utf8');
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`docs/benchmarks.md has no ${start} ... ${end} block`);
  await writeFile(docPath, `${doc.slice(0, i + start.length)}\n${content}\n${doc.slice(j)}`);
}
