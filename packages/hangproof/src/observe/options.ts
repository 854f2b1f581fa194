import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { nonNegativeInt, numberWhere, oneOf, optionalFunction, positiveInt } from '../core/option-checks.js';
import { type GradientLimitOptions, resolveGradientLimitOptions } from './gradient-limit.js';

/** Anything with a `stats()` snapshot, such as a hangproof Postgres pool. Numeric fields become gauges. */
export interface PoolStatsSource {
  stats(): object;
}

/** The dependency layer (or anything else) with a `status()` snapshot, shown as is on /status. */
export interface DependencyStatusSource {
  status(): unknown;
}

/**
 * Extra top-level fields of /status.json, such as a cluster-wide view. Called at most once per
 * snapshot (snapshots are cached for 1 s), with a signal that aborts at `extraStatusTimeoutMs`.
 */
export type ExtraStatusSource = (
  signal: AbortSignal,
) => Readonly<Record<string, unknown>> | Promise<Readonly<Record<string, unknown>>>;

/**
 * Decides whether a request may read /metrics and /status without the admin token. It is given
 * the framework's request: a FastifyRequest for the Fastify plugin, node's IncomingMessage for an
 * observatory on the node:http adapters (`createObservatory`).
 */
export type AllowRule<R = FastifyRequest> = (request: R) => boolean | Promise<boolean>;

/**
 * Options of the `observe` Fastify plugin and of `createObservatory` (where `R`, the request the
 * `allow` rule reads, is node's IncomingMessage). Defaults live in OBSERVE_DEFAULTS.
 */
export interface ObserveOptions<R = FastifyRequest> {
  /**
   * Token that unlocks /metrics and /status, presented in `X-Admin-Token` (or through the login
   * form of /status). At least 16 characters. @default the `adminToken` given to the hangproof plugin
   */
  readonly adminToken?: string | undefined;
  /**
   * Extra rule that also grants access, e.g. `(req) => req.ip === '127.0.0.1'` for a scraper on the
   * same host. Either the token or the rule suffices. @default undefined (token only)
   */
  readonly allow?: AllowRule<R> | undefined;
  /** Connection pools by name, each with a `stats()` method, shown on /status and as gauges. @default {} */
  readonly pools?: Readonly<Record<string, PoolStatsSource>>;
  /** The dependency layer's status source, shown on /status next to measured latencies. @default undefined */
  readonly dependencies?: DependencyStatusSource | undefined;
  /**
   * The service's effective timeout settings (deadline, server timeouts, statement timeout,
   * dependency timeouts/retries/breaker delays), published under `settings` in /status.json for
   * `hangproof doctor`. A function is called at each read. @default {}
   */
  readonly settings?: Readonly<Record<string, unknown>> | (() => Readonly<Record<string, unknown>>);
  /**
   * Extra top-level fields of /status.json (e.g. `{ cluster }`), computed by the service. Keys that
   * observe already uses (`service`, `endpoints`, ...) are ignored and logged once. A call slower
   * than `extraStatusTimeoutMs`, or one that fails, is left out and reported under `warnings`, so
   * the status page never waits on it. @default undefined (no extra fields)
   */
  readonly extraStatus?: ExtraStatusSource | undefined;
  /**
   * Longest wait for `extraStatus`, in ms; its signal aborts then and the snapshot is served
   * without its fields. Keep it well below the request deadline. @default 500
   */
  readonly extraStatusTimeoutMs?: number;
  /**
   * Logger for loop stalls and shedding. @default the hangproof plugin's logger (Fastify); for
   * `overloadGuard`, the logger of the node:http edge it is installed in
   */
  readonly logger?: Logger | undefined;
  /** Path of the Prometheus endpoint; `false` to not register it. @default '/metrics' */
  readonly metricsPath?: string | false;
  /** Path of the status page; its data is at `<statusPath>.json`; `false` to not register them. @default '/status' */
  readonly statusPath?: string | false;
  /** Register prom-client's default process metrics (CPU, memory, GC, handles). @default true */
  readonly defaultMetrics?: boolean;
  /** Upper bounds of the Prometheus histogram buckets, in seconds, ascending. @default 0.005 ... 30 */
  readonly bucketsSec?: readonly number[];
  /** Routes (method + pattern) measured separately; further ones are counted together as `(other)`. @default 200 */
  readonly maxRoutes?: number;
  /** Query fingerprints measured separately; further ones are counted as `(other)`. @default 50 */
  readonly maxQueryFingerprints?: number;
  /** Dependencies and pools measured separately, each; further ones are counted as `(other)`. @default 50 */
  readonly maxDependencies?: number;
  /** A request at least this slow is kept, with its spans, among the recent slow requests, in ms. @default 1000 */
  readonly slowRequestMs?: number;
  /** Recent slow requests, timeouts and stalls kept for /status (each list). @default 20 */
  readonly recentLimit?: number;
  /**
   * Requests allowed in flight at once; beyond it a request waits at most `queueWaitMs` in a queue
   * of `maxQueued`, else gets 503 OVERLOADED at once. 0 disables the limit. @default 200
   */
  readonly maxInFlight?: number;
  /** Requests that may wait for a slot at once; 0 rejects at once when the limit is reached. @default 50 */
  readonly maxQueued?: number;
  /**
   * Longest wait for a slot, in ms; keep it far below the deadline. @default 100, or
   * ADAPTIVE_QUEUE_WAIT_MS (10) with `adaptiveLimit`
   */
  readonly queueWaitMs?: number;
  /**
   * Let the limit follow the service's latency instead of staying at `maxInFlight`, which becomes
   * its ceiling: it shrinks while requests queue inside the service (latency rises) and creeps
   * back up while latency holds (see GradientLimit). `true` uses the defaults. Suits routes of
   * similar cost; a mix of fast and slow routes makes latency a poor signal. @default false
   */
  readonly adaptiveLimit?: boolean | GradientLimitOptions;
  /** Seconds sent in `Retry-After` with 503 OVERLOADED. @default 2 */
  readonly retryAfterSec?: number;
  /**
   * Shed new requests (503 OVERLOADED) while the event-loop delay of the last sample exceeds this,
   * in ms. 0 disables it. @default 1000
   */
  readonly maxEventLoopDelayMs?: number;
  /** Shed new requests while the V8 heap in use exceeds this, in bytes. 0 disables it. @default 0 */
  readonly maxHeapUsedBytes?: number;
  /** How often event-loop delay and heap use are sampled, in ms. @default 1000 */
  readonly sampleIntervalMs?: number;
  /** Paths never shed or queued (probes, metrics, status). The metrics and status paths are always added. @default ['/healthz', '/readyz'] */
  readonly exemptPaths?: readonly string[];
  /**
   * A blocked event loop longer than this is reported as a stall (log line, /status, counter), in ms.
   * 0 disables the watchdog. @default 200
   */
  readonly stallThresholdMs?: number;
  /**
   * Capture the JavaScript stack of the code blocking the loop: the watchdog thread pauses the main
   * thread through the in-process inspector (no network port) for a moment. @default true
   */
  readonly captureStallStacks?: boolean;
  /**
   * OpenTelemetry (`'auto'`): when the application registered a global tracer provider, hangproof's
   * spans join its traces (the instrumentation's request span enriched, no second one); else
   * hangproof's own exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` or
   * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. `false`: never. @default 'auto'
   */
  readonly tracing?: 'auto' | false;
  /** `service.name` of exported spans. @default OTEL_SERVICE_NAME, else 'hangproof-service' */
  readonly serviceName?: string | undefined;
  /** How long a status-page login lasts, in seconds. @default 43_200 (12 h) */
  readonly sessionMaxAgeSec?: number;
  /**
   * Port of the probe listener: `/healthz` and `/readyz` served by a worker thread from the main
   * loop's heartbeat in shared memory, so they answer in milliseconds even while the main port is
   * flooded. `false` does not start it; 0 binds an ephemeral port (`app.observe.probePort()`
   * tells which). It binds when the app is ready and closes with it. @default false
   */
  readonly probePort?: number | false;
  /** Address the probe listener binds (the pod IP must reach it for Kubernetes probes). @default '0.0.0.0' */
  readonly probeHost?: string;
  /**
   * The probe listener answers 503 `stalled` (liveness) and `not_ready` (readiness) once the main
   * loop's heartbeat is older than this, in ms. @default 1000
   */
  readonly probeStalledAfterMs?: number;
}

/**
 * queueWaitMs when `adaptiveLimit` is on and no wait is given. The adaptive limit already sizes
 * the concurrency to what the service can serve, so a long wait in front of it only adds latency:
 * in the overload benchmark a 10 ms wait cut the served p99 from about 145 to under 70 ms for the
 * same served throughput. A few ms still absorb a burst that a slot freeing up would have served.
 */
export const ADAPTIVE_QUEUE_WAIT_MS = 10;

/** Bucket bounds around typical deadlines: 5 ms to 30 s. */
export const DEFAULT_BUCKETS_SEC = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);

export const OBSERVE_DEFAULTS = Object.freeze({
  metricsPath: '/metrics',
  statusPath: '/status',
  defaultMetrics: true,
  bucketsSec: DEFAULT_BUCKETS_SEC,
  maxRoutes: 200,
  maxQueryFingerprints: 50,
  maxDependencies: 50,
  slowRequestMs: 1000,
  recentLimit: 20,
  maxInFlight: 200,
  maxQueued: 50,
  queueWaitMs: 100,
  adaptiveLimit: false as boolean | GradientLimitOptions,
  retryAfterSec: 2,
  maxEventLoopDelayMs: 1000,
  maxHeapUsedBytes: 0,
  sampleIntervalMs: 1000,
  exemptPaths: Object.freeze(['/healthz', '/readyz']),
  stallThresholdMs: 200,
  captureStallStacks: true,
  tracing: 'auto',
  sessionMaxAgeSec: 43_200,
  extraStatusTimeoutMs: 500,
  probePort: false as number | false,
  probeHost: '0.0.0.0',
  probeStalledAfterMs: 1000,
} as const);

type Defaulted = keyof typeof OBSERVE_DEFAULTS;

export type ResolvedObserveOptions<R = FastifyRequest> = {
  readonly [K in Defaulted]-?: NonNullable<ObserveOptions[K]>;
} & {
  readonly adminToken: string | undefined;
  readonly allow: AllowRule<R> | undefined;
  readonly pools: Readonly<Record<string, PoolStatsSource>>;
  readonly dependencies: DependencyStatusSource | undefined;
  readonly settings: ObserveOptions['settings'];
  readonly extraStatus: ExtraStatusSource | undefined;
  readonly logger: Logger | undefined;
  readonly serviceName: string;
};

/** Applies the defaults and validates; throws RangeError/TypeError naming the option and value. */
export function resolveObserveOptions<R = FastifyRequest>(input: ObserveOptions<R> = {}): ResolvedObserveOptions<R> {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as ObserveOptions<R>;
  const adaptiveWait =
    defined.adaptiveLimit !== undefined && defined.adaptiveLimit !== false
      ? { queueWaitMs: ADAPTIVE_QUEUE_WAIT_MS }
      : {};
  const o = { ...OBSERVE_DEFAULTS, ...adaptiveWait, ...defined };
  for (const key of ['maxRoutes', 'maxQueryFingerprints', 'maxDependencies', 'recentLimit'] as const) {
    positiveInt(key, o[key]);
  }
  for (const key of [
    'maxInFlight',
    'maxQueued',
    'queueWaitMs',
    'maxEventLoopDelayMs',
    'maxHeapUsedBytes',
    'stallThresholdMs',
  ] as const) {
    nonNegativeInt(key, o[key]);
  }
  numberWhere('slowRequestMs', o.slowRequestMs, (v) => v > 0, 'a positive number of ms');
  positiveInt('retryAfterSec', o.retryAfterSec);
  numberWhere('sampleIntervalMs', o.sampleIntervalMs, (v) => Number.isInteger(v) && v >= 10, 'an integer >= 10');
  positiveInt('sessionMaxAgeSec', o.sessionMaxAgeSec);
  positiveInt('extraStatusTimeoutMs', o.extraStatusTimeoutMs);
  if (o.probePort !== false)
    numberWhere(
      'probePort',
      o.probePort,
      (v) => Number.isInteger(v) && v >= 0 && v <= 65_535,
      'false or a port 0..65535',
    );
  // Below a few heartbeat periods a busy but healthy loop would read as stalled.
  numberWhere(
    'probeStalledAfterMs',
    o.probeStalledAfterMs,
    (v) => Number.isInteger(v) && v >= 200,
    'an integer >= 200',
  );
  if (typeof o.probeHost !== 'string' || o.probeHost === '') {
    throw new TypeError(`probeHost must be a non-empty string, received ${String(o.probeHost)}`);
  }
  if (o.adaptiveLimit !== false) {
    if (o.adaptiveLimit !== true && (typeof o.adaptiveLimit !== 'object' || o.adaptiveLimit === null)) {
      throw new TypeError(`adaptiveLimit must be a boolean or an options object, received ${String(o.adaptiveLimit)}`);
    }
    if (o.maxInFlight === 0)
      throw new RangeError('adaptiveLimit needs maxInFlight > 0: it is the ceiling of the limit');
    resolveGradientLimitOptions(o.adaptiveLimit === true ? {} : o.adaptiveLimit, o.maxInFlight);
  }
  if (o.stallThresholdMs > 0 && o.stallThresholdMs < 20) {
    throw new RangeError(`stallThresholdMs must be 0 or >= 20, received ${o.stallThresholdMs}`);
  }
  const buckets = o.bucketsSec;
  if (buckets.length === 0 || buckets.some((b, i) => !(b > 0) || (i > 0 && b <= (buckets[i - 1] as number)))) {
    throw new RangeError(`bucketsSec must be positive and ascending, received [${buckets.join(', ')}]`);
  }
  for (const key of ['metricsPath', 'statusPath'] as const) {
    const p = o[key];
    if (p !== false && (typeof p !== 'string' || !p.startsWith('/'))) {
      throw new TypeError(`${key} must be a path starting with '/' or false, received ${String(p)}`);
    }
  }
  oneOf('tracing', o.tracing, ['auto', false]);
  if (input.adminToken !== undefined && (typeof input.adminToken !== 'string' || input.adminToken.length < 16)) {
    throw new RangeError(`adminToken must be at least 16 characters, received ${String(input.adminToken).length}`);
  }
  optionalFunction('allow', input.allow);
  for (const [name, pool] of Object.entries(input.pools ?? {})) {
    if (typeof pool?.stats !== 'function') throw new TypeError(`pools.${name} must have a stats() method`);
  }
  if (input.dependencies !== undefined && typeof input.dependencies.status !== 'function') {
    throw new TypeError('dependencies must have a status() method');
  }
  optionalFunction('extraStatus', input.extraStatus);
  return {
    ...o,
    adminToken: input.adminToken,
    allow: input.allow,
    pools: input.pools ?? {},
    dependencies: input.dependencies,
    settings: input.settings,
    extraStatus: input.extraStatus,
    logger: input.logger,
    serviceName: input.serviceName ?? process.env.OTEL_SERVICE_NAME ?? 'hangproof-service',
  };
}
