import { type LoadResult, pinnedStdout, runLoad } from './load.ts';
import { type ServerProcess, startServerProcess } from './server-process.ts';

export interface ScenarioFigures {
  readonly scenario: string;
  /** Server CPU time per request at the fixed rate, µs. */
  readonly cpuMicrosPerRequest: number;
  /**
   * Server CPU time per second with no request at all, µs (timers, samplers, worker threads), when
   * measured (`idleSec`): a cost of the process, not of its requests.
   */
  readonly idleCpuMicrosPerSec?: number;
  /**
   * What one more request costs, µs: the CPU at the fixed rate less the idle CPU of the same
   * span, per request. When measured (`idleSec`).
   */
  readonly marginalCpuMicrosPerRequest?: number;
  /**
   * Server CPU time per request in the closed-loop saturation run, µs: the regime of a storm,
   * where the loop finds several requests at each wake-up instead of one. What a refusal costs
   * when refusals happen; at the fixed rate each request also pays waking an idle loop.
   */
  readonly saturationCpuMicrosPerRequest: number;
  /**
   * What one `process.nextTick` cost in the server after its runs, ns (see protocol.mjs): a state
   * of the process that moves its CPU per request by a few µs, reported so a run shows which it had.
   */
  readonly nextTickNanos: number;
  /**
   * The speed of both cores before the measured runs and after them: ns to parse a fixed JSON
   * document (protocol.mjs), on the server's core (its CPU per request) and on the load generator's and
   * Postgres's (throughput at saturation). A run made on a slowed core is measured again
   * (interleavedRounds).
   */
  readonly coreNanos: readonly [serverBefore: number, serverAfter: number, loadBefore: number, loadAfter: number];
  /** How many times this run was measured before these figures were kept: 1 unless its core ran slow. */
  readonly attempts: number;
  /** Closed loop, 50 connections. */
  readonly saturation: LoadResult;
  /** Open loop at the fixed rate. */
  readonly fixedRate: LoadResult;
}

export interface MeasureOptions {
  readonly serverFile: string;
  readonly scenario: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly path?: string;
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly fixedRate: number;
  readonly connections: number;
  /** The Node binary the server runs on. @default the Node running the suite */
  readonly nodePath?: string;
  /** Flags for that Node binary, before the server file (`--experimental-async-context-frame`). */
  readonly nodeArgs?: readonly string[];
  /** Also measure the server's CPU with no load for this many seconds, after the warm-up. */
  readonly idleSec?: number;
}

/**
 * The unmeasured run at the fixed rate between the warm-up and the measured runs: long enough for
 * V8 to finish optimizing what only that pattern runs (the pool's no-wait path, say), so its
 * compiler threads do not take the server's core inside the measurement.
 */
const SETTLE_SEC = 3;
/** Connections of the open-loop runs at the fixed rate. */
export const FIXED_RATE_CONNECTIONS = 20;
/**
 * Requests of the closed-loop warm-up per second of `warmupSec`: about a second of the db route's
 * saturation here. The warm-up is counted, not timed, so it ends with no request in flight.
 */
const WARMUP_REQUESTS_PER_SEC = 4000;
const warmUpRequests = (warmupSec: number): number => warmupSec * WARMUP_REQUESTS_PER_SEC;

/** What `warmUp` runs, as the tables' headers say it. */
export function warmUpText(warmupSec: number): string {
  return `a warm-up of ${warmUpRequests(warmupSec)} requests and ${SETTLE_SEC} s at the fixed rate`;
}

/**
 * Brings a server to its steady state before anything is measured: a closed-loop warm-up, then
 * the settle run at the fixed rate. Both end after a count of answered requests, never with
 * requests in flight: a run cut at its duration leaves requests whose client went away, which
 * hangproof answers by cancelling their queries and closing those Postgres connections, and V8
 * deoptimizes the code those rare paths reach. The pool's reconnects and the recompiles would then
 * land inside the measured run (about 10 µs per request and twice bare's recompiles, before this).
 */
export async function warmUp(
  url: string,
  o: { readonly warmupSec: number; readonly connections: number; readonly fixedRate: number },
): Promise<void> {
  // A counted run takes its duration only as a time bound: four times what the db route needs,
  // so a server a quarter as fast still finishes its warm-up.
  await runLoad({
    url,
    durationSec: o.warmupSec * 4,
    connections: o.connections,
    requests: warmUpRequests(o.warmupSec),
  });
  await runLoad({
    url,
    durationSec: SETTLE_SEC,
    connections: FIXED_RATE_CONNECTIONS,
    rate: o.fixedRate,
    requests: o.fixedRate * SETTLE_SEC,
  });
}

/**
 * One scenario: warm up, then an open-loop run at a fixed rate (CPU per request and latency
 * without queueing), then a closed-loop saturation run (throughput).
 */
export async function measureScenario(o: MeasureOptions): Promise<ScenarioFigures> {
  const server = await startServerProcess(
    o.serverFile,
    { BENCH_SCENARIO: o.scenario, ...o.env },
    o.nodePath,
    o.nodeArgs,
  );
  try {
    const url = o.path === undefined ? server.url : new URL(o.path, server.url).toString();
    await warmUp(url, o);
    const idleCpuMicrosPerSec = o.idleSec === undefined ? undefined : await idleCpu(server, o.idleSec);
    const coreBefore = await coreSpeeds(server);
    await server.cpuStart();
    const loadStarted = performance.now();
    // Counted too, so the saturation run after it starts with nothing left to cancel.
    const fixedRate = await runLoad({
      url,
      durationSec: o.durationSec,
      connections: FIXED_RATE_CONNECTIONS,
      rate: o.fixedRate,
      requests: o.fixedRate * o.durationSec,
    });
    const cpu = await server.cpuStop();
    const loadSec = (performance.now() - loadStarted) / 1000;
    await server.cpuStart();
    const saturation = await runLoad({ url, durationSec: o.durationSec, connections: o.connections });
    const saturationCpu = await server.cpuStop();
    const { nanos: nextTickNanos } = await server.call<{ nanos: number }>('next-tick', 'next-tick');
    const coreAfter = await coreSpeeds(server);
    const requests = Math.max(1, fixedRate.requests);
    return {
      scenario: o.scenario,
      cpuMicrosPerRequest: cpu / requests,
      // A run cut at its duration leaves its last requests in flight: a few of some 100,000.
      saturationCpuMicrosPerRequest: saturationCpu / Math.max(1, saturation.requests),
      nextTickNanos,
      coreNanos: [coreBefore.server, coreAfter.server, coreBefore.load, coreAfter.load],
      attempts: 1,
      ...(idleCpuMicrosPerSec === undefined
        ? {}
        : { idleCpuMicrosPerSec, marginalCpuMicrosPerRequest: (cpu - idleCpuMicrosPerSec * loadSec) / requests }),
      saturation,
      fixedRate,
    };
  } finally {
    await server.stop();
  }
}

const PROTOCOL = new URL('../servers/protocol.mjs', import.meta.url).href;
const CORE_SPEED_TIMEOUT_MS = 30_000;

/** Both cores' speed now (ns to parse protocol.mjs's fixed document), with no request in flight. */
async function coreSpeeds(server: ServerProcess): Promise<{ server: number; load: number }> {
  const { nanos } = await server.call<{ nanos: number }>('core-speed', 'core-speed');
  const script = `import { coreSpeedNanos } from ${JSON.stringify(PROTOCOL)}; console.log(coreSpeedNanos());`;
  const out = await pinnedStdout(
    ['--input-type=module', '-e', script],
    CORE_SPEED_TIMEOUT_MS,
    (code) => code === 0,
    'the load core speed reading',
  );
  return { server: nanos, load: Number(out.trim()) };
}

/** The server's CPU per second over `seconds` with no load (a measured span, not a wait for something). */
async function idleCpu(server: ServerProcess, seconds: number): Promise<number> {
  await server.cpuStart();
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpu = await server.cpuStop();
  return cpu / ((performance.now() - started) / 1000);
}
