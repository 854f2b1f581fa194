/**
 * One injectable fault. The runner calls `prepare` before the load (a proxy starts forwarding, a
 * session connects), `inject` at the start of the hold, `remove` at its end and `dispose` always,
 * last, even after a failure or Ctrl-C. Every method is bounded; `dispose` never throws.
 */
import type { FaultKind } from './scenario.js';

export interface Fault {
  readonly kind: FaultKind;
  /** One line for humans: what this fault does to what. */
  readonly label: string;
  prepare(): Promise<void>;
  inject(): Promise<void>;
  remove(): Promise<void>;
  dispose(): Promise<void>;
  /** Facts for the JSON result (counters, pids), read after the run. */
  detail(): Record<string, unknown>;
}

/** What the faults may need from the command line. */
export interface FaultContext {
  /** Base URL of the service (`--target`). */
  readonly baseUrl: string;
  readonly adminToken: string | undefined;
  /** Direct URL of the service's database (not through the proxy). */
  readonly databaseUrl: string | undefined;
  /** The process `--pid` names (pause fault only). */
  readonly pid: number | undefined;
  readonly allowRemote: boolean;
  readonly holdMs: number;
}
