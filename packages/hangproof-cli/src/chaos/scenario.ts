/**
 * A chaos scenario: what load to offer, which faults to inject for how long, and which promises
 * the service must keep. Scenarios are JSON files (examples/chaos/); every field but `name`,
 * `target.path` and `faults` has a default in CHAOS_DEFAULTS, and command-line flags override
 * the file (a scenario written for the desk can run with a shorter hold in a test).
 */
import { CliError } from '../output/cli-error.js';

/** Where the proxy sits and what it does to the bytes while the fault is on. */
export interface ProxyFaultSpec {
  readonly kind: 'proxy';
  /**
   * `latency` delays every chunk by `latencyMs` in each direction; `blackhole` drops every byte
   * (a dead peer or a firewall DROP: connections that lost bytes never recover); `reset` sends a
   * TCP RST on every open connection and refuses new ones with a reset.
   */
  readonly mode: 'latency' | 'blackhole' | 'reset';
  /** Added delay per direction, in ms (mode `latency`). @default 1_000 */
  readonly latencyMs?: number;
  /** Port the proxy listens on (127.0.0.1); `--listen` overrides it. */
  readonly listenPort?: number;
  /** `host:port` the proxy forwards to; `--upstream` overrides it. */
  readonly upstream?: string;
}

/** SIGSTOP the process named by `--pid` during the hold, SIGCONT after (always). */
export interface PauseFaultSpec {
  readonly kind: 'pause';
}

/** A session that takes a table lock for the hold and then rolls back. Needs `--database-url`. */
export interface LockFaultSpec {
  readonly kind: 'lock';
  /** Table to lock, optionally schema-qualified (`public.bots`). */
  readonly table: string;
  /** @default 'ACCESS EXCLUSIVE' */
  readonly lockMode?: LockMode;
}

/** Sessions that each run `pg_sleep` for the hold, occupying server connections. Needs `--database-url`. */
export interface PgSleepFaultSpec {
  readonly kind: 'pg-sleep';
  /** Sessions, 1..50. @default 5 */
  readonly sessions?: number;
}

/** A call to the service's own fault switchboard (the desk's `/admin/faults`), with `X-Admin-Token`. */
export interface AdminFaultSpec {
  readonly kind: 'admin';
  /** @default '/admin/faults' */
  readonly path?: string;
  /** @default 'PUT' */
  readonly method?: 'PUT' | 'POST';
  /** JSON body that switches the fault on. */
  readonly inject: Readonly<Record<string, unknown>>;
  /** JSON body that switches it off. @default {"kind":"clear"} */
  readonly remove?: Readonly<Record<string, unknown>>;
}

export type FaultSpec = ProxyFaultSpec | PauseFaultSpec | LockFaultSpec | PgSleepFaultSpec | AdminFaultSpec;
export type FaultKind = FaultSpec['kind'];

export const LOCK_MODES = [
  'ACCESS EXCLUSIVE',
  'EXCLUSIVE',
  'SHARE ROW EXCLUSIVE',
  'SHARE',
  'SHARE UPDATE EXCLUSIVE',
  'ROW EXCLUSIVE',
] as const;
export type LockMode = (typeof LOCK_MODES)[number];

/** The promises checked after the run, with their bounds. */
export interface ChaosPromises {
  /** A request may end this long after its deadline, in ms. @default 250 */
  readonly deadlineMarginMs: number;
  /** Liveness path probed during the fault. @default '/healthz' */
  readonly healthzPath: string;
  /** p99 of the liveness probes during the fault, in ms. @default 250 */
  readonly healthzP99Ms: number;
  /** Time between liveness probes, in ms. @default 100 */
  readonly healthzEveryMs: number;
  /** After the fault is removed the success rate must be back within this, in ms. @default 2_000 */
  readonly recoverWithinMs: number;
  /** Share (0..1] of 2xx/3xx answers that counts as recovered (and as healthy before the fault). @default 0.9 */
  readonly recoverySuccessRate: number;
  /** Longest wait after the run for the pool and the database to settle, in ms. @default 3_000 */
  readonly leakCheckMs: number;
}

export interface ChaosTarget {
  readonly path: string;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
}

/** A scenario with every default filled in. */
export interface ChaosScenario {
  readonly name: string;
  readonly description: string;
  /** The incident write-up it reproduces (seed number), for the record. */
  readonly seed: string | undefined;
  readonly target: ChaosTarget;
  /** The deadline the service promises, sent as `X-Request-Timeout-Ms` with each request. */
  readonly deadlineMs: number;
  readonly rateRps: number;
  /** The load client's own limit per request, in ms. @default 2 x deadline + 1_000 */
  readonly clientTimeoutMs: number;
  /** Load before the fault, in ms. @default 1_000 */
  readonly warmupMs: number;
  /** How long the fault stays on, in ms. @default 3_000 */
  readonly holdMs: number;
  /** Load after the fault, in ms. @default recoverWithinMs + 1_500 */
  readonly recoveryMs: number;
  readonly faults: readonly FaultSpec[];
  readonly promises: ChaosPromises;
}

export const CHAOS_DEFAULTS = Object.freeze({
  deadlineMs: 3_000,
  rateRps: 20,
  warmupMs: 1_000,
  holdMs: 3_000,
  method: 'GET',
  promises: Object.freeze({
    deadlineMarginMs: 250,
    healthzPath: '/healthz',
    healthzP99Ms: 250,
    healthzEveryMs: 100,
    recoverWithinMs: 2_000,
    recoverySuccessRate: 0.9,
    leakCheckMs: 3_000,
  } satisfies ChaosPromises),
});

/** Upper bounds: no scenario may hold a fault, or load a service, for longer than this. */
export const CHAOS_LIMITS = Object.freeze({
  maxHoldMs: 600_000,
  maxPhaseMs: 600_000,
  maxRps: 2_000,
  maxFaults: 4,
  maxSleepSessions: 50,
  maxLatencyMs: 60_000,
  maxDeadlineMs: 120_000,
});

/** Overrides from the command line; each wins over the file. */
export interface ScenarioOverrides {
  /** Replaces `target.path`. */
  readonly path?: string;
  readonly deadlineMs?: number;
  readonly rateRps?: number;
  readonly clientTimeoutMs?: number;
  readonly warmupMs?: number;
  readonly holdMs?: number;
  readonly recoveryMs?: number;
  readonly healthzP99Ms?: number;
  readonly deadlineMarginMs?: number;
  readonly recoverWithinMs?: number;
  readonly listenPort?: number;
  readonly upstream?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

type Json = Record<string, unknown>;

/**
 * Validates a parsed scenario file and fills in the defaults. `label` names the file in errors;
 * `env` resolves `${NAME}` and `${NAME:-default}` in the target's path and header values (tokens
 * stay out of the file).
 */
export function resolveScenario(
  raw: unknown,
  label: string,
  overrides: ScenarioOverrides = {},
  env: NodeJS.ProcessEnv = {},
): ChaosScenario {
  const bad = (msg: string): CliError => new CliError('BAD_CONFIG', `${label}: ${msg}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('a scenario is a JSON object');
  const r = raw as Json;
  const str = (v: unknown, field: string, fallback?: string): string => {
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'string' || v === '') throw bad(`${field} must be a non-empty string, received ${show(v)}`);
    return v;
  };
  const num = (v: unknown, field: string, min: number, max: number, fallback?: number): number => {
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
      throw bad(`${field} must be a number from ${min} to ${max}, received ${show(v)}`);
    return v;
  };
  const interpolate = (text: string, field: string): string =>
    text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback: string | undefined) => {
      const value = env[name] ?? fallback;
      if (value === undefined) throw bad(`${field} uses \${${name}}, which is not set in the environment`);
      return value;
    });

  const t = (r.target ?? {}) as Json;
  if (typeof t !== 'object' || Array.isArray(t)) throw bad('target must be an object');
  const path = overrides.path ?? interpolate(str(t.path, 'target.path'), 'target.path');
  if (!path.startsWith('/')) throw bad(`target.path must start with /, received ${path}`);
  const headers: Record<string, string> = {};
  const rawHeaders = (t.headers ?? {}) as Json;
  for (const [k, v] of Object.entries(rawHeaders))
    headers[k.toLowerCase()] = interpolate(str(v, `target.headers.${k}`), k);
  for (const [k, v] of Object.entries(overrides.headers ?? {})) headers[k.toLowerCase()] = v;
  const body = t.body === undefined ? undefined : typeof t.body === 'string' ? t.body : JSON.stringify(t.body);

  const deadlineMs =
    overrides.deadlineMs ?? num(r.deadlineMs, 'deadlineMs', 1, CHAOS_LIMITS.maxDeadlineMs, CHAOS_DEFAULTS.deadlineMs);
  const p = (r.promises ?? {}) as Json;
  const d = CHAOS_DEFAULTS.promises;
  const promises: ChaosPromises = {
    deadlineMarginMs:
      overrides.deadlineMarginMs ?? num(p.deadlineMarginMs, 'promises.deadlineMarginMs', 0, 60_000, d.deadlineMarginMs),
    healthzPath: str(p.healthzPath, 'promises.healthzPath', d.healthzPath),
    healthzP99Ms: overrides.healthzP99Ms ?? num(p.healthzP99Ms, 'promises.healthzP99Ms', 1, 60_000, d.healthzP99Ms),
    healthzEveryMs: num(p.healthzEveryMs, 'promises.healthzEveryMs', 20, 10_000, d.healthzEveryMs),
    recoverWithinMs:
      overrides.recoverWithinMs ?? num(p.recoverWithinMs, 'promises.recoverWithinMs', 0, 600_000, d.recoverWithinMs),
    recoverySuccessRate: num(p.recoverySuccessRate, 'promises.recoverySuccessRate', 0.01, 1, d.recoverySuccessRate),
    leakCheckMs: num(p.leakCheckMs, 'promises.leakCheckMs', 100, 60_000, d.leakCheckMs),
  };

  if (!Array.isArray(r.faults) || r.faults.length === 0 || r.faults.length > CHAOS_LIMITS.maxFaults)
    throw bad(`faults must be a list of 1 to ${CHAOS_LIMITS.maxFaults} faults`);
  const faults = r.faults.map((f, i) => resolveFault(f, `faults[${i}]`, overrides, bad));

  const scenario: ChaosScenario = {
    name: str(r.name, 'name'),
    description: typeof r.description === 'string' ? r.description : '',
    seed: typeof r.seed === 'string' ? r.seed : undefined,
    target: { path, method: str(t.method, 'target.method', CHAOS_DEFAULTS.method).toUpperCase(), headers, body },
    deadlineMs,
    rateRps: overrides.rateRps ?? num(r.rateRps, 'rateRps', 0.1, CHAOS_LIMITS.maxRps, CHAOS_DEFAULTS.rateRps),
    clientTimeoutMs:
      overrides.clientTimeoutMs ?? num(r.clientTimeoutMs, 'clientTimeoutMs', 1, 600_000, 2 * deadlineMs + 1_000),
    warmupMs: overrides.warmupMs ?? num(r.warmupMs, 'warmupMs', 0, CHAOS_LIMITS.maxPhaseMs, CHAOS_DEFAULTS.warmupMs),
    holdMs: overrides.holdMs ?? num(r.holdMs, 'holdMs', 1, CHAOS_LIMITS.maxHoldMs, CHAOS_DEFAULTS.holdMs),
    recoveryMs:
      overrides.recoveryMs ??
      num(r.recoveryMs, 'recoveryMs', 0, CHAOS_LIMITS.maxPhaseMs, promises.recoverWithinMs + 1_500),
    faults,
    promises,
  };
  if (scenario.holdMs > CHAOS_LIMITS.maxHoldMs)
    throw new CliError('USAGE', `--hold must be at most ${CHAOS_LIMITS.maxHoldMs} ms, received ${scenario.holdMs}`);
  return scenario;
}

function resolveFault(raw: unknown, field: string, o: ScenarioOverrides, bad: (msg: string) => CliError): FaultSpec {
  if (typeof raw !== 'object' || raw === null) throw bad(`${field} must be an object`);
  const f = raw as Json;
  switch (f.kind) {
    case 'proxy': {
      const mode = f.mode;
      if (mode !== 'latency' && mode !== 'blackhole' && mode !== 'reset')
        throw bad(`${field}.mode must be latency, blackhole or reset, received ${show(mode)}`);
      const latencyMs = f.latencyMs ?? 1_000;
      if (typeof latencyMs !== 'number' || !(latencyMs >= 0 && latencyMs <= CHAOS_LIMITS.maxLatencyMs))
        throw bad(`${field}.latencyMs must be 0..${CHAOS_LIMITS.maxLatencyMs}, received ${show(latencyMs)}`);
      const listenPort = o.listenPort ?? f.listenPort;
      const upstream = o.upstream ?? f.upstream;
      if (listenPort === undefined) throw new CliError('USAGE', `${field}: a proxy fault needs --listen <port>`);
      if (typeof listenPort !== 'number' || !Number.isInteger(listenPort) || listenPort < 1 || listenPort > 65_535)
        throw bad(`${field}.listenPort must be a port number, received ${show(listenPort)}`);
      if (typeof upstream !== 'string')
        throw new CliError('USAGE', `${field}: a proxy fault needs --upstream <host:port>`);
      return { kind: 'proxy', mode, latencyMs, listenPort, upstream };
    }
    case 'pause':
      if (f.pid !== undefined)
        throw bad(`${field}: the process to pause is named on the command line (--pid), not in the file`);
      return { kind: 'pause' };
    case 'lock': {
      if (typeof f.table !== 'string' || !/^[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*)?$/.test(f.table))
        throw bad(`${field}.table must be a table name (schema.table), received ${show(f.table)}`);
      const lockMode = f.lockMode ?? 'ACCESS EXCLUSIVE';
      if (!(LOCK_MODES as readonly unknown[]).includes(lockMode))
        throw bad(`${field}.lockMode must be one of ${LOCK_MODES.join(', ')}, received ${show(lockMode)}`);
      return { kind: 'lock', table: f.table, lockMode: lockMode as LockMode };
    }
    case 'pg-sleep': {
      const sessions = f.sessions ?? 5;
      if (
        typeof sessions !== 'number' ||
        !Number.isInteger(sessions) ||
        sessions < 1 ||
        sessions > CHAOS_LIMITS.maxSleepSessions
      )
        throw bad(`${field}.sessions must be 1..${CHAOS_LIMITS.maxSleepSessions}, received ${show(sessions)}`);
      return { kind: 'pg-sleep', sessions };
    }
    case 'admin': {
      const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
      if (!isObj(f.inject)) throw bad(`${field}.inject must be the JSON body that switches the fault on`);
      if (f.remove !== undefined && !isObj(f.remove)) throw bad(`${field}.remove must be a JSON object`);
      const method = f.method ?? 'PUT';
      if (method !== 'PUT' && method !== 'POST')
        throw bad(`${field}.method must be PUT or POST, received ${show(method)}`);
      const path = f.path ?? '/admin/faults';
      if (typeof path !== 'string' || !path.startsWith('/')) throw bad(`${field}.path must start with /`);
      return { kind: 'admin', path, method, inject: f.inject, remove: f.remove ?? { kind: 'clear' } };
    }
    default:
      throw bad(`${field}.kind must be proxy, pause, lock, pg-sleep or admin, received ${show(f.kind)}`);
  }
}

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));
