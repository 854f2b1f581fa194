import type { ScenarioFigures } from './measure.ts';

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * The median over the rounds of `compare(round, base round)`: a scenario against its baseline
 * within each round (the two ran seconds apart, so the machine's slower drift cancels out).
 * A round the baseline lacks compares as NaN.
 */
export function pairedMedian(
  rounds: readonly ScenarioFigures[],
  base: readonly ScenarioFigures[],
  compare: (round: ScenarioFigures, baseRound: ScenarioFigures) => number,
): number {
  return median(rounds.map((r, i) => (base[i] === undefined ? Number.NaN : compare(r, base[i]))));
}

/** A difference with its sign, to one decimal: `+5.7`, `-5.7`. */
export function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;
}

/** How far the furthest round lies from the median, as `±N%` ('—' for a single round). */
export function spread(xs: readonly number[]): string {
  const m = median(xs);
  if (xs.length < 2 || m === 0) return '—';
  return `±${((Math.max(...xs.map((x) => Math.abs(x - m))) / m) * 100).toFixed(0)}%`;
}

/**
 * Measures every scenario once per round, interleaved (a, b, c, a, b, c...): on a shared machine
 * the load of its neighbours drifts over minutes, and interleaving spreads that drift over every
 * scenario alike instead of charging it to whichever ran during a bad minute. Returns each
 * scenario's figures, one per round.
 */
export async function interleavedRounds<S>(
  scenarios: readonly S[],
  rounds: number,
  measure: (scenario: S, round: number) => Promise<ScenarioFigures>,
): Promise<Map<S, ScenarioFigures[]>> {
  const byScenario = new Map<S, ScenarioFigures[]>(scenarios.map((s) => [s, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const s of scenarios) byScenario.get(s)?.push(await measure(s, round));
  }
  return byScenario;
}

/** The round whose CPU per request is the median: one real run whose figures all belong together. */
export function medianRound(rounds: readonly ScenarioFigures[]): ScenarioFigures {
  if (rounds.length === 0) throw new RangeError('medianRound needs at least one round');
  const sorted = [...rounds].sort((a, b) => a.cpuMicrosPerRequest - b.cpuMicrosPerRequest);
  return sorted[Math.floor((sorted.length - 1) / 2)] as ScenarioFigures;
}
