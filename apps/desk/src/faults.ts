import { badRequest } from 'hangproof';

/** Routes a slow-query or CPU fault can be attached to. */
export const FAULT_ROUTES = ['list', 'overview', 'detail', 'metrics'] as const;
export type FaultRoute = (typeof FAULT_ROUTES)[number];

/** A fault that slows a route's database work with `pg_sleep` (bounded by the statement timeout). */
export interface SlowQueryFault {
  readonly route: FaultRoute;
  readonly sleepMs: number;
}

/** A fault that blocks the event loop with a synchronous loop on each request of a route. */
export interface CpuFault {
  readonly route: FaultRoute;
  readonly blockMs: number;
}

/** Limits of the switchboard: no demonstration can take the desk down for good. */
export const FAULT_LIMITS = Object.freeze({
  /** Longest a fault stays on, in s; every fault expires by itself. */
  maxDurationSec: 600,
  defaultDurationSec: 60,
  maxSleepMs: 30_000,
  maxBlockMs: 2_000,
  maxLockHoldMs: 60_000,
  maxProviderLatencyMs: 60_000,
});

interface Active<T> {
  readonly value: T;
  readonly expiresAt: number;
}

/**
 * The state of the demonstration faults. Off by default; each one set carries an expiry and is
 * read through `active()`, which drops expired ones, so a forgotten fault cannot outlive its time
 * even if no timer fires.
 */
export class FaultBoard {
  #slowQuery: Active<SlowQueryFault> | undefined;
  #cpu: Active<CpuFault> | undefined;

  setSlowQuery(route: FaultRoute, sleepMs: number, durationSec: number): void {
    this.#slowQuery = { value: { route, sleepMs }, expiresAt: Date.now() + durationSec * 1000 };
  }

  setCpu(route: FaultRoute, blockMs: number, durationSec: number): void {
    this.#cpu = { value: { route, blockMs }, expiresAt: Date.now() + durationSec * 1000 };
  }

  clear(): void {
    this.#slowQuery = undefined;
    this.#cpu = undefined;
  }

  /** The slow-query fault on `route`, if one is on. */
  slowQueryFor(route: FaultRoute): number | undefined {
    const f = live(this.#slowQuery);
    if (f === undefined) this.#slowQuery = undefined;
    return f !== undefined && f.value.route === route ? f.value.sleepMs : undefined;
  }

  /** The CPU fault on `route`, if one is on. */
  cpuFor(route: FaultRoute): number | undefined {
    const f = live(this.#cpu);
    if (f === undefined) this.#cpu = undefined;
    return f !== undefined && f.value.route === route ? f.value.blockMs : undefined;
  }

  list(): Record<string, unknown> {
    const sq = live(this.#slowQuery);
    const cpu = live(this.#cpu);
    return {
      slowQuery: sq === undefined ? null : { ...sq.value, expiresAt: new Date(sq.expiresAt).toISOString() },
      cpu: cpu === undefined ? null : { ...cpu.value, expiresAt: new Date(cpu.expiresAt).toISOString() },
    };
  }
}

function live<T>(a: Active<T> | undefined): Active<T> | undefined {
  return a !== undefined && Date.now() < a.expiresAt ? a : undefined;
}

/**
 * Blocks the event loop for `ms` (the CPU fault). Deliberately synchronous: it shows what a
 * CPU-bound handler does to every other request and to the loop-stall monitor.
 */
export function blockEventLoop(ms: number): void {
  const until = performance.now() + Math.min(ms, FAULT_LIMITS.maxBlockMs);
  let x = 0;
  while (performance.now() < until) x += Math.sqrt(x + 1);
}

/** Validates a fault's duration (s), defaulting it. */
export function faultDurationSec(value: unknown): number {
  if (value === undefined) return FAULT_LIMITS.defaultDurationSec;
  if (!(typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= FAULT_LIMITS.maxDurationSec)) {
    throw badRequest(`durationSec must be an integer from 1 to ${FAULT_LIMITS.maxDurationSec}`, {
      field: 'durationSec',
    });
  }
  return value;
}
