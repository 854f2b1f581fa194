import { type LoadResult, runLoad } from './load.ts';
import { startServerProcess } from './server-process.ts';

export interface ScenarioFigures {
  readonly scenario: string;
  /** Server CPU time per request at the fixed rate, µs. */
  readonly cpuMicrosPerRequest: number;
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
}

/**
 * One scenario: warm up, then an open-loop run at a fixed rate (CPU per request and latency
 * without queueing), then a closed-loop saturation run (throughput).
 */
export async function measureScenario(o: MeasureOptions): Promise<ScenarioFigures> {
  const server = await startServerProcess(o.serverFile, { BENCH_SCENARIO: o.scenario, ...o.env }, o.nodePath);
  try {
    const url = o.path === undefined ? server.url : new URL(o.path, server.url).toString();
    await runLoad({ url, durationSec: o.warmupSec, connections: o.connections });
    await server.cpuStart();
    const fixedRate = await runLoad({ url, durationSec: o.durationSec, connections: 20, rate: o.fixedRate });
    const cpu = await server.cpuStop();
    const saturation = await runLoad({ url, durationSec: o.durationSec, connections: o.connections });
    return { scenario: o.scenario, cpuMicrosPerRequest: cpu / Math.max(1, fixedRate.requests), saturation, fixedRate };
  } finally {
    await server.stop();
  }
}
