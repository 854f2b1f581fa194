import { runLoad } from './load.ts';
import { median } from './rounds.ts';
import { type ServerProcess, startServerProcess } from './server-process.ts';

/** One server of a pair: its script, its environment, and whether it answers every request 503. */
export interface PairMember {
  readonly server: string;
  readonly env: Readonly<Record<string, string>>;
  /** A refusing server (hangproof refusing, node:http sending a refusal): every answer must be non-2xx. */
  readonly refuses?: boolean;
}

/** How a pair is measured: rounds spread over fresh pairs of processes, each preceded by a warm-up. */
export interface PairedRoundsOptions {
  readonly rounds: number;
  readonly processPairs: number;
  /** Connections of each server's closed-loop load. */
  readonly connections: number;
  readonly warmupRequests: number;
  readonly requestsPerRound: number;
  /** Progress line of a round: `round` counts from 1 over all the pair's rounds. */
  readonly progress: (round: number, processPair: number) => string;
}

/** CPU per request of the two members in each round, µs. */
export interface PairedRounds {
  readonly baseline: number[];
  readonly candidate: number[];
}

/**
 * Each server's CPU per request while all answer `requests` at once, closed loop. Checks every
 * answer was what the server is for: 2xx, or non-2xx for a refusing one.
 */
async function concurrentRound(
  servers: readonly ServerProcess[],
  members: readonly PairMember[],
  requests: number,
  connections: number,
): Promise<number[]> {
  await Promise.all(servers.map((s) => s.cpuStart()));
  const loads = await Promise.all(
    servers.map((s) =>
      // The duration is only the bound of how long the round may take: a quarter of 1000 rps.
      runLoad({ url: s.url, durationSec: Math.ceil(requests / 250), connections, requests }),
    ),
  );
  const cpu = await Promise.all(servers.map((s) => s.cpuStop()));
  loads.forEach((load, i) => {
    const refuses = members[i]?.refuses === true;
    if (load.errors > 0 || (refuses ? load.non2xx !== load.requests : load.non2xx > 0)) {
      throw new Error(`a paired round had unexpected answers: ${JSON.stringify(load)}`);
    }
  });
  return cpu.map((micros, i) => micros / (loads[i]?.requests ?? Number.NaN));
}

/**
 * `rounds` rounds of `candidate` beside `baseline`, both pinned to the server core and loaded at the
 * same moment, spread over `processPairs` fresh pairs of processes. Two servers sharing a core see
 * the same speed of this VM, so the difference within a round keeps what the candidate adds; fresh
 * pairs turn each process's lifelong offset (what V8 compiled when, where its heap landed) into
 * spread the median sees, instead of a bias it cannot.
 */
export async function pairedRounds(
  baseline: PairMember,
  candidate: PairMember,
  o: PairedRoundsOptions,
): Promise<PairedRounds> {
  const result: PairedRounds = { baseline: [], candidate: [] };
  const members = [baseline, candidate];
  for (let p = 0; p < o.processPairs; p++) {
    // Rounds left over the pairs left, so every pair runs its share (9 over 3: 3, 3, 3).
    const share = Math.ceil((o.rounds - result.baseline.length) / (o.processPairs - p));
    const servers = await Promise.all(members.map((m) => startServerProcess(m.server, { ...m.env })));
    try {
      await concurrentRound(servers, members, o.warmupRequests, o.connections);
      for (let r = 0; r < share; r++) {
        process.stderr.write(`${o.progress(result.baseline.length + 1, p + 1)}\n`);
        const [b, c] = await concurrentRound(servers, members, o.requestsPerRound, o.connections);
        result.baseline.push(b as number);
        result.candidate.push(c as number);
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  }
  return result;
}

/** Each round's difference, candidate − baseline. */
export const pairedDeltas = (p: PairedRounds): number[] => p.candidate.map((c, i) => c - (p.baseline[i] as number));
/** Each round's ratio, candidate / baseline. */
export const pairedRatios = (p: PairedRounds): number[] => p.candidate.map((c, i) => c / (p.baseline[i] as number));

/** `median (least to most)` of the rounds' figures, each written by `format`. */
export function medianAndRange(xs: readonly number[], format: (x: number) => string): string {
  return `${format(median(xs))} (${format(Math.min(...xs))} to ${format(Math.max(...xs))})`;
}

/** Rounds when BENCH_ROUNDS is not set: an odd count, so the median is one real round. */
const DEFAULT_ROUNDS = 9;
/**
 * Pairs of server processes per comparison when BENCH_PAIRS_PROCESSES is not set; the rounds are
 * spread over them. Each process keeps an offset of its own for its whole life (what V8 compiled
 * when, where its heap landed): two runs of the same two builds side by side read -7.6 and +3.7
 * µs, each in 6 or 7 of its 7 rounds, while three identical servers agreed within 1.1 µs. Fresh
 * pairs turn that offset into spread the median sees, instead of a bias it cannot.
 */
const DEFAULT_PROCESS_PAIRS = 3;

/** How a pairing runs: its rounds, the fresh process pairs they are spread over, each server's connections. */
export interface PairedSettings {
  readonly rounds: number;
  readonly processPairs: number;
  /** Connections of each server's load: half the suite's, so the two together see the same number. */
  readonly connections: number;
}

/**
 * A pairing's settings: rounds and fresh process pairs from BENCH_ROUNDS and BENCH_PAIRS_PROCESSES
 * (9 and 3), checked, and each server's half of the suite's `connections`.
 */
export function pairedSettings(connections: number, env: NodeJS.ProcessEnv = process.env): PairedSettings {
  const rounds = Math.max(1, Number(env.BENCH_ROUNDS ?? DEFAULT_ROUNDS));
  const processPairs = Math.min(rounds, Math.max(1, Number(env.BENCH_PAIRS_PROCESSES ?? DEFAULT_PROCESS_PAIRS)));
  if (!Number.isInteger(rounds) || !Number.isInteger(processPairs)) {
    throw new RangeError('BENCH_ROUNDS and BENCH_PAIRS_PROCESSES must be whole numbers');
  }
  return { rounds, processPairs, connections: Math.max(1, Math.floor(connections / 2)) };
}
