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
 * A run counts as made on a slowed core when either core (the server's, or the load generator's
 * and Postgres's) read this much slower than its fastest reading in the same series of rounds
 * (protocol.mjs's fixed document, before and after the run). Readings of a quiet core agree within
 * 1 to 3%; a slowed one reads 10 to 40% slower.
 */
export const SLOWED_CORE = 1.1;
/** Measurements of one round at most: the first and two more if a core ran slow. */
const DEFAULT_TRIES = 3;

/**
 * `BENCH_TRIES`: measurements of one round at most (1 measures each round once and keeps it,
 * slowed or not, as the report's note then says). A suite of many scenarios on a day whose cores
 * keep reading slow can otherwise take three times its calm length.
 */
export function triesFromEnv(value = process.env.BENCH_TRIES): number {
  if (value === undefined || value === '') return DEFAULT_TRIES;
  const tries = Number(value);
  if (!Number.isInteger(tries) || tries < 1)
    throw new RangeError(`BENCH_TRIES must be a whole number of 1 or more, got '${value}'`);
  return tries;
}

/** Each core's fastest reading among these runs, ns. */
export interface FastestCores {
  readonly server: number;
  readonly load: number;
}

function fastestCores(runs: Iterable<readonly ScenarioFigures[]>): FastestCores {
  let server = Number.POSITIVE_INFINITY;
  let load = Number.POSITIVE_INFINITY;
  for (const rs of runs) {
    for (const { coreNanos: c } of rs) {
      server = Math.min(server, c[0], c[1]);
      load = Math.min(load, c[2], c[3]);
    }
  }
  return { server, load };
}

/** How much slower than its fastest the run's slower core read: 1 for as fast. */
export function coreSlowdown(run: ScenarioFigures, fastest: FastestCores): number {
  const c = run.coreNanos;
  return Math.max(Math.max(c[0], c[1]) / fastest.server, Math.max(c[2], c[3]) / fastest.load);
}

/** How much slower than its fastest the slowest core of any run in the round read. */
function roundSlowdown(round: readonly ScenarioFigures[], fastest: FastestCores): number {
  return Math.max(...round.map((run) => coreSlowdown(run, fastest)));
}

/**
 * Measures every scenario once per round, interleaved (a, b, c, a, b, c...): on a shared machine
 * the load of its neighbours drifts over minutes, and interleaving spreads that drift over every
 * scenario alike instead of charging it to whichever ran during a bad minute. A shared core can
 * also run 20 to 40% slower for a minute or so, which interleaving does not spread: it lands on
 * the one or two runs made then. So after the rounds, each round with a run made while a core
 * read slower than SLOWED_CORE times its fastest reading is measured again, whole and interleaved
 * as before (`tries` − 1 more times at most, once the slow minute is likely over), and the try whose slowest
 * core read faster is kept, whole. A round is what the verdicts compare within (each scenario
 * against the baseline measured seconds before it), so a try never mixes runs of two tries: when
 * only the slowed run was measured again, the retries of one scenario ran back to back and a
 * spell the readings did not see (likely a neighbour taking the shared cache or memory bandwidth,
 * which a parse of a small document barely needs) landed on that scenario alone. Returns each
 * scenario's figures, one per round.
 */
export async function interleavedRounds<S>(
  scenarios: readonly S[],
  rounds: number,
  measure: (scenario: S, round: number, attempt: number) => Promise<ScenarioFigures>,
  tries = triesFromEnv(),
): Promise<Map<S, ScenarioFigures[]>> {
  const measureRound = async (round: number, attempt: number): Promise<ScenarioFigures[]> => {
    const runs: ScenarioFigures[] = [];
    for (const s of scenarios) runs.push(await measure(s, round, attempt));
    return runs;
  };
  const byRound: ScenarioFigures[][] = [];
  for (let round = 1; round <= rounds; round++) byRound.push(await measureRound(round, 1));
  for (let attempt = 2; attempt <= tries; attempt++) {
    const fastest = fastestCores(byRound);
    for (let i = 0; i < byRound.length; i++) {
      const kept = byRound[i] as ScenarioFigures[];
      const slowdown = roundSlowdown(kept, fastest);
      if (slowdown <= SLOWED_CORE) continue;
      const again = await measureRound(i + 1, attempt);
      const faster = roundSlowdown(again, fastest) < slowdown ? again : kept;
      byRound[i] = faster.map((run) => ({ ...run, attempts: attempt }));
    }
  }
  return new Map(scenarios.map((s, j) => [s, byRound.map((round) => round[j] as ScenarioFigures)]));
}

/** What a progress line adds for a run of a round measured again: nothing for a first try. */
export function againText(attempt: number): string {
  return attempt > 1 ? ` again (a core ran slow in its round), try ${attempt}` : '';
}

/**
 * One line on the cores' speed for a report: how many rounds were measured again because a
 * core ran slow in them, and how many runs still did after their last try (kept, and counted
 * like the rest). `runs`: each scenario's figures, one per round.
 */
export function coreSpeedNote(runs: Iterable<readonly ScenarioFigures[]>): string {
  const byScenario = [...runs];
  const all = byScenario.flat();
  const fastest = fastestCores([all]);
  const rounds = Math.max(0, ...byScenario.map((rs) => rs.length));
  const roundsAgain = Array.from({ length: rounds }, (_, i) =>
    byScenario.some((rs) => (rs[i]?.attempts ?? 1) > 1),
  ).filter(Boolean).length;
  const stillSlow = all.filter((r) => coreSlowdown(r, fastest) > SLOWED_CORE).length;
  const slowest = Math.max(...all.map((r) => coreSlowdown(r, fastest)));
  return `The cores' speed (a fixed JSON.parse before and after each run, on the server's core and on the load generator's; see bench/lib/rounds.ts): ${roundsAgain} of ${rounds} rounds had a run made while one ran more than ${Math.round((SLOWED_CORE - 1) * 100)}% slower than its fastest reading and were measured again, whole; ${stillSlow === 0 ? 'every run kept was made on cores within that bound' : `${stillSlow} of ${all.length} runs still were after their last try and are kept`} (slowest kept: ${slowest.toFixed(2)} of the fastest).`;
}

/** The round whose CPU per request is the median: one real run whose figures all belong together. */
export function medianRound(rounds: readonly ScenarioFigures[]): ScenarioFigures {
  if (rounds.length === 0) throw new RangeError('medianRound needs at least one round');
  const sorted = [...rounds].sort((a, b) => a.cpuMicrosPerRequest - b.cpuMicrosPerRequest);
  return sorted[Math.floor((sorted.length - 1) / 2)] as ScenarioFigures;
}
