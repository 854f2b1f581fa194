import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { createDependencies, type Dependencies } from 'hangproof/deps';
import { deriveServerTimeouts, hangproof, serverOptions } from 'hangproof/fastify';
import { heartbeats, OBSERVE_DEFAULTS, observe } from 'hangproof/observe';
import { createDatabase, type Database, type PlanEvidenceOptions } from 'hangproof/pg';
import { type Logger, pino } from 'pino';
import { createAuthenticator } from './auth.js';
import { type ClusterViewOptions, registerClusterView } from './cluster/cluster-view.js';
import type { DeskContext } from './desk-context.js';
import { FaultBoard } from './faults.js';
import { HeldLocks } from './held-locks.js';
import type { JobName } from './jobs/job-definitions.js';
import { type HeartbeatSink, type JobRunner, type JobSchedule, startJobRunner } from './jobs/job-runner.js';
import { createQuotes } from './providers/quotes.js';
import { adminRoutes } from './routes/admin-routes.js';
import { botRoutes } from './routes/bot-routes.js';
import { dashboardRoutes } from './routes/dashboard-routes.js';
import { exportRoutes } from './routes/export-routes.js';
import { riskRoutes } from './routes/risk-routes.js';
import { type StreamOptions, streamRoute } from './routes/stream-route.js';
import { summaryRoutes } from './routes/summary-routes.js';

/** What buildDesk needs. Defaults live in DESK_DEFAULTS. */
export interface DeskOptions {
  /** The desk's database (already migrated and seeded). Required. */
  readonly databaseUrl: string;
  /** Base URL of the market-data provider. Required. */
  readonly marketDataUrl: string;
  /** Base URL of the broker. Required. */
  readonly brokerUrl: string;
  /** Unlocks /admin/faults, /status, /metrics and Server-Timing. At least 16 characters. Required. */
  readonly adminToken: string;
  /** @default pino at info to stdout */
  readonly logger?: Logger;
  /** Deadline of an API request, in ms. @default 3_000 */
  readonly deadlineMs?: number;
  /** Connections of the API's pool. @default 10 */
  readonly poolMax?: number;
  /** When a statement sends its own limits (hangproof/pg `statementLimits`). @default 'when-shorter' */
  readonly statementLimits?: 'when-shorter' | 'always';
  /**
   * Port of the probe listener (hangproof/observe `probePort`): `/healthz` and `/readyz` answered
   * from a worker thread, in milliseconds even while the main port is flooded. @default false (off)
   */
  readonly probePort?: number | false;
  /** Server-side limit of one statement, in ms. @default 2_000 */
  readonly statementTimeoutMs?: number;
  /** Longest wait for a row lock, in ms. @default 1_000 */
  readonly lockTimeoutMs?: number;
  /** A statement slower than this is logged, and its plan captured (hangproof/pg `slowQueryMs`), in ms. @default 250 */
  readonly slowQueryMs?: number;
  /** A connection held longer than this is logged with its holder (hangproof/pg `leakDetectionMs`), in ms. @default 10_000 */
  readonly leakDetectionMs?: number;
  /** Plan capture of slow statements (hangproof/pg `planEvidence`). @default hangproof/pg's PLAN_EVIDENCE_DEFAULTS */
  readonly planEvidence?: PlanEvidenceOptions | false;
  /** Time between provider health probes, in ms. @default 5_000 */
  readonly providerProbeMs?: number;
  /** Run the background loops in this process; `false` for an API-only instance. @default true */
  readonly jobs?: boolean;
  /** Overrides of the loops' schedules. @default JOB_SCHEDULES */
  readonly jobSchedules?: Partial<Record<JobName, JobSchedule>>;
  /** Limits of the WebSocket stream. @default STREAM_DEFAULTS */
  readonly stream?: StreamOptions;
  /** Register hangproof/observe (/status, /metrics, overload limit). @default true */
  readonly observe?: boolean;
  /**
   * Extra fields of the `settings` object in /status.json, for `hangproof doctor` (the cluster
   * launcher adds `instances`). @default {}
   */
  readonly statusSettings?: Readonly<Record<string, unknown>>;
  /**
   * Run as one instance of a cluster: export this instance's latency windows to its peers and add
   * the merged view of all instances under `cluster` in /status.json. Needs `observe`.
   * @default undefined (a single instance)
   */
  readonly cluster?: ClusterViewOptions;
}

export const DESK_DEFAULTS = Object.freeze({
  deadlineMs: 3_000,
  poolMax: 10,
  statementTimeoutMs: 2_000,
  lockTimeoutMs: 1_000,
  slowQueryMs: 250,
  leakDetectionMs: 10_000,
  providerProbeMs: 5_000,
  jobs: true,
  observe: true,
});

/** A built desk: the Fastify app plus the resources it owns, closed in order by `close()`. */
export interface Desk {
  readonly app: FastifyInstance;
  readonly db: Database;
  readonly deps: Dependencies;
  readonly jobs: JobRunner | undefined;
  /** Stops jobs, releases held locks, closes dependencies and the pool: what runs after the app drained. */
  release(): Promise<void>;
  /** Closes streams, drains the app, then `release()`. */
  close(): Promise<void>;
}

/**
 * Builds the desk on an existing database and providers, without listening: `npm start` (main.ts)
 * and the tests both use it, the tests on port 0 with the small seed.
 */
export async function buildDesk(options: DeskOptions): Promise<Desk> {
  const o = { ...DESK_DEFAULTS, ...options };
  const logger = o.logger ?? pino({ name: 'desk' });
  const db = createDatabase({
    connectionString: o.databaseUrl,
    name: 'desk',
    max: o.poolMax,
    statementLimits: o.statementLimits ?? 'when-shorter',
    acquireTimeoutMs: 1_000,
    statementTimeoutMs: o.statementTimeoutMs,
    lockTimeoutMs: o.lockTimeoutMs,
    applicationName: 'desk',
    slowQueryMs: o.slowQueryMs,
    leakDetectionMs: o.leakDetectionMs,
    ...(o.planEvidence === undefined ? {} : { planEvidence: o.planEvidence }),
    logger: logger.child({ component: 'pg' }),
  });
  const deps = createDependencies({ logger: logger.child({ component: 'deps' }) });
  const health = { path: '/health', intervalMs: o.providerProbeMs, timeoutMs: Math.min(1_000, o.providerProbeMs - 1) };
  const marketData = deps.http('market-data', {
    baseUrl: o.marketDataUrl,
    timeoutMs: 800,
    attemptTimeoutMs: 400,
    connectTimeoutMs: 300,
    health,
  });
  const broker = deps.http('broker', {
    baseUrl: o.brokerUrl,
    timeoutMs: 1_500,
    attemptTimeoutMs: 700,
    connectTimeoutMs: 300,
    health,
  });

  const app = Fastify({
    ...serverOptions({ maxDeadlineMs: o.deadlineMs, bodyLimitBytes: 64 * 1024 }),
    // Unknown fields are refused (400), not silently dropped: a typo in a filter or a body field
    // must not quietly return something else than what was asked.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  });
  await app.register(hangproof, { deadlineMs: o.deadlineMs, adminToken: o.adminToken, logger });
  if (o.cluster !== undefined && !o.observe) throw new TypeError('cluster needs observe: true');
  const cluster = o.cluster === undefined ? undefined : registerClusterView(app, o.cluster);
  if (o.observe) {
    await app.register(observe, {
      ...cluster,
      serviceName: 'desk',
      // The limit follows the desk's latency, and a request over it is refused at once instead of
      // queueing: under a storm this kept 0.92x of capacity against 0.67x with observe's defaults
      // (200 in flight and a queue of 50; docs/guides/storms.md, `npm run bench -- storm`).
      adaptiveLimit: true,
      maxQueued: 0,
      // The fault switchboard is never shed: an overload is when an operator (or `hangproof chaos`)
      // most needs to switch a fault off. It is admin-only, so strangers cannot use the exemption.
      exemptPaths: [...OBSERVE_DEFAULTS.exemptPaths, '/admin/faults'],
      probePort: o.probePort ?? false,
      pools: { desk: db },
      dependencies: deps,
      logger,
      settings: () => ({
        deadlineMs: o.deadlineMs,
        statementTimeoutMs: o.statementTimeoutMs,
        lockTimeoutMs: o.lockTimeoutMs,
        // The same values in the layout `hangproof doctor --service` audits.
        server: deriveServerTimeouts({ maxDeadlineMs: o.deadlineMs }),
        pg: {
          statementTimeoutMs: o.statementTimeoutMs,
          lockTimeoutMs: o.lockTimeoutMs,
          acquireTimeoutMs: 1_000,
          max: o.poolMax,
        },
        ...o.statusSettings,
      }),
    });
  }
  app.hangproof.addReadinessCheck('postgres', (signal) => db.readinessCheck(signal), { timeoutMs: 1_000 });
  app.hangproof.addReadinessCheck('providers', deps.readinessCheck(), { timeoutMs: 100, critical: false });

  const heldLocks = new HeldLocks(o.databaseUrl);
  let jobs: JobRunner | undefined;
  const desk: DeskContext = {
    db,
    authenticate: createAuthenticator(db),
    deps,
    marketData,
    broker,
    quotes: createQuotes(deps, marketData),
    faults: new FaultBoard(),
    heldLocks,
    logger,
    jobIntervalMs: (loop) => jobs?.schedule(loop as JobName).everyMs ?? 60_000,
  };

  // Streams get a clear 1001 before @fastify/websocket's own preClose closes the server.
  let stream: { closeAll(): void } | undefined;
  app.addHook('preClose', (done) => {
    stream?.closeAll();
    done();
  });
  await app.register(websocket, { options: { maxPayload: 4 * 1024 } });
  await app.register(async (scope) => {
    await summaryRoutes(scope, desk);
    await botRoutes(scope, desk);
    await riskRoutes(scope, desk);
    await exportRoutes(scope, desk);
    stream = await streamRoute(scope, desk, o.stream);
    await adminRoutes(scope, desk, { 'market-data': o.marketDataUrl, broker: o.brokerUrl });
    await dashboardRoutes(scope);
  });

  if (o.jobs) {
    const sink: HeartbeatSink = heartbeats;
    jobs = await startJobRunner({
      databaseUrl: o.databaseUrl,
      db,
      deps,
      logger: logger.child({ component: 'jobs' }),
      heartbeats: sink,
      ...(o.jobSchedules === undefined ? {} : { schedules: o.jobSchedules }),
    });
  }

  let releasing: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  const release = (): Promise<void> => {
    releasing ??= (async () => {
      await jobs?.stop();
      await heldLocks.releaseAll();
      await deps.close();
      await db.close();
    })();
    return releasing;
  };
  return {
    app,
    db,
    deps,
    jobs,
    release,
    close: () => {
      closing ??= app.close().then(release);
      return closing;
    },
  };
}
