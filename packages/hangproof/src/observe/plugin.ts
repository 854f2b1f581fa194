import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { pino } from 'pino';
import type { Registry } from 'prom-client';
import { channels, type RequestContext, type RequestEndEvent } from '../core/index.js';
import { HangproofError } from '../errors.js';
import { AdminAccess } from './admin-access.js';
import { ConcurrencyLimiter } from './concurrency-limiter.js';
import { EventLoopMonitor, type PressureReason } from './event-loop-monitor.js';
import { ExtraStatus } from './extra-status.js';
import { GradientLimit } from './gradient-limit.js';
import { heartbeats } from './heartbeats.js';
import type { LatencySeries } from './latency-series.js';
import { Measurements } from './measurements.js';
import { type ObserveOptions, resolveObserveOptions } from './options.js';
import type { RequestTracer } from './otel-tracing.js';
import { ProbeListener } from './probe-listener.js';
import { createRegistry } from './prometheus.js';
import { watchStalls } from './stall-watchdog.js';
import { registerStatusRoutes } from './status-routes.js';
import { buildStatusSnapshot } from './status-snapshot.js';
import type { EncodedWindow, WindowName } from './windowed-histogram.js';

/** Encoded windows of every series, for merging across instances (`mergeEncoded`). */
export interface ExportedWindows {
  readonly window: WindowName;
  readonly routes: readonly { readonly method: string; readonly route: string; readonly latency: EncodedWindow }[];
  readonly postgres: EncodedWindow;
  readonly queries: readonly {
    readonly queryId: string;
    readonly fingerprint: string;
    readonly latency: EncodedWindow;
  }[];
  readonly poolAcquire: readonly { readonly pool: string; readonly latency: EncodedWindow }[];
  readonly dependencies: readonly { readonly dependency: string; readonly latency: EncodedWindow }[];
}

/** What the plugin adds to the Fastify instance as `app.observe`. */
export interface ObserveApi {
  /** The prom-client Registry behind /metrics (not the global one). */
  readonly registry: Registry;
  /** observe's own data behind /status.json (without the `extraStatus` fields, which only the route adds). */
  snapshot(): Record<string, unknown>;
  /** Every series' window, encoded so another instance can merge it with `mergeEncoded`. */
  exportWindows(window: WindowName): ExportedWindows;
  /** The port of the probe listener once the app is ready; undefined when `probePort` is false. */
  probePort(): number | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    observe: ObserveApi;
  }
}

/** At most one "shedding" warning per interval, however many requests are refused. */
const SHED_LOG_INTERVAL_MS = 10_000;

/** Longest wait for the span exporter to flush at close, in ms. */
const TRACER_SHUTDOWN_MS = 5_000;

async function observePlugin(app: FastifyInstance, input: ObserveOptions): Promise<void> {
  const edge = app.hangproof;
  const opts = resolveObserveOptions({ ...input, adminToken: input.adminToken ?? edge.options.adminToken });
  if (opts.extraStatus !== undefined && opts.extraStatusTimeoutMs >= edge.options.deadlineMs) {
    // Otherwise a slow extraStatus would turn /status.json into a 504 instead of a warning.
    throw new RangeError(
      `extraStatusTimeoutMs must be below the hangproof deadlineMs (${edge.options.deadlineMs}), received ${opts.extraStatusTimeoutMs}`,
    );
  }
  const logger = opts.logger ?? pino();
  const measurements = new Measurements(opts);
  measurements.subscribe();
  const monitor = new EventLoopMonitor(opts);
  monitor.start();
  const limiter =
    opts.maxInFlight > 0
      ? new ConcurrencyLimiter({
          maxInFlight: opts.maxInFlight,
          maxQueued: opts.maxQueued,
          queueWaitMs: opts.queueWaitMs,
        })
      : undefined;
  const registry = createRegistry({
    measurements,
    monitor,
    limiter,
    heartbeats,
    pools: opts.pools,
    bucketsSec: opts.bucketsSec,
    defaultMetrics: opts.defaultMetrics,
  });

  let tracer: RequestTracer | undefined;
  let onTracedEnd: ((m: unknown) => void) | undefined;
  if (opts.tracing === 'auto') {
    // Imported only here, so that without OTLP variables no OpenTelemetry code is loaded.
    const { tracingRequested, createOtelTracer } = await import('./otel-tracing.js');
    if (tracingRequested()) {
      const t = await createOtelTracer(opts.serviceName);
      tracer = t;
      onTracedEnd = (m) => t.onRequestEnd(m as RequestEndEvent);
      channels.requestEnd.subscribe(onTracedEnd);
    }
  }

  const stopStalls =
    opts.stallThresholdMs > 0
      ? watchStalls(
          { thresholdMs: opts.stallThresholdMs, captureStacks: opts.captureStallStacks },
          { inFlight: () => edge.inFlight(), endedSince: (perfNow) => measurements.endedSince(perfNow) },
          (report) => {
            measurements.recordStall(report);
            logger.warn(
              {
                event: 'event_loop_stall',
                stall_ms: report.durationMs,
                stack: report.stack?.map((f) => `${f.functionName} (${f.url}:${f.line}:${f.column})`),
                stack_note: report.stackNote,
                stack_after_ms: report.stackAfterMs,
                in_flight: report.inFlight,
                in_flight_during_stall: report.inFlightDuringStall,
              },
              `event loop blocked for ${report.durationMs} ms`,
            );
          },
        )
      : undefined;

  // Overload guard: a slot per admitted request, decided by the edge's lifecycle before the request
  // gets a context and given back when it ends. With an adaptive limit the context's admission
  // fields remember when it got its slot and how many held one then: the limit's sample.
  const adaptive =
    limiter !== undefined && opts.adaptiveLimit !== false
      ? new GradientLimit(opts.maxInFlight, opts.adaptiveLimit === true ? {} : opts.adaptiveLimit)
      : undefined;
  if (adaptive !== undefined) limiter?.setLimit(adaptive.limit);

  let lastShedLogAt = 0;
  let shedSinceLog = 0;
  const shedErrors = new Map<string, HangproofError>();
  const shed = (reason: PressureReason | 'concurrency' | 'queue_timeout'): HangproofError => {
    measurements.recordShed(reason);
    shedSinceLog++;
    const now = Date.now();
    if (now - lastShedLogAt >= SHED_LOG_INTERVAL_MS) {
      logger.warn(
        { event: 'load_shedding', reason, shed: shedSinceLog, in_flight: limiter?.inFlight, queued: limiter?.queued },
        'shedding load: answering 503 OVERLOADED',
      );
      lastShedLogAt = now;
      shedSinceLog = 0;
    }
    // One error per reason, built once: a refusal must cost far less than serving.
    let error = shedErrors.get(reason);
    if (error === undefined) {
      error = new HangproofError('OVERLOADED', { retryAfterSec: opts.retryAfterSec, details: { reason } });
      shedErrors.set(reason, error);
    }
    return error;
  };

  const exempt = new Set<string>(opts.exemptPaths);
  const ownRoutes = new Set<string>();
  const routeExempt = (path: string): void => {
    exempt.add(path);
    if (path !== opts.metricsPath) ownRoutes.add(path);
  };

  // Exempt paths (probes, /metrics, /status) are matched on the raw URL: admission runs before
  // routing work. A query string does not change the path.
  const exemptUrl = (url: string): boolean => {
    if (exempt.size === 0) return false;
    const q = url.indexOf('?');
    return exempt.has(q < 0 ? url : url.slice(0, q));
  };
  const admitted = (ctx: RequestContext): void => {
    if (adaptive !== undefined) {
      ctx.admittedAt = performance.now();
      ctx.inFlightAtAdmission = limiter?.inFlight ?? 0;
    }
  };
  edge.lifecycle.setAdmission({
    admit: (url) => {
      if (exemptUrl(url)) return 'exempt';
      const pressure = monitor.pressure;
      if (pressure !== undefined) return shed(pressure);
      if (limiter === undefined || limiter.tryAcquire()) return undefined;
      return limiter.canWait() ? 'wait' : shed('concurrency');
    },
    wait: async (ctx) => {
      const granted = (await limiter?.wait(ctx.signal)) ?? true;
      // A request that ended while it waited (client gone, deadline answered) goes no further.
      if (ctx.aborted || ctx.ended) {
        if (granted) limiter?.release();
        return shed('queue_timeout');
      }
      if (!granted) return shed('queue_timeout');
      admitted(ctx);
      return undefined;
    },
    onAdmit: admitted,
    release: (ctx) => {
      if (limiter === undefined) return;
      limiter.release();
      if (adaptive === undefined || !(ctx.admittedAt > 0)) return;
      const now = performance.now();
      if (adaptive.addSample(now - ctx.admittedAt, ctx.inFlightAtAdmission, now)) limiter.setLimit(adaptive.limit);
    },
  });

  if (tracer !== undefined) {
    const noteParent = tracer.noteParent.bind(tracer);
    app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
      const ctx = request.hangproof;
      const tp = request.headers.traceparent;
      if (ctx !== null && typeof tp === 'string') noteParent(ctx, tp);
      done();
    });
  }

  const snapshot = (): Record<string, unknown> =>
    buildStatusSnapshot({
      measurements,
      monitor,
      limiter,
      heartbeats,
      options: opts,
      tracing: tracer !== undefined,
      ownRoutes,
    });

  // The probe listener binds once the app is ready (its routes and readiness checks are known)
  // and stops at close; the edge's preClose hook has begun shutdown by the time ours runs.
  let probe: ProbeListener | undefined;
  if (opts.probePort !== false) {
    const probePort = opts.probePort;
    app.addHook('onReady', async () => {
      probe = await ProbeListener.start(
        {
          host: opts.probeHost,
          port: probePort,
          stalledAfterMs: opts.probeStalledAfterMs,
          healthPath: edge.options.healthPath || '/healthz',
          readyPath: edge.options.readyPath || '/readyz',
        },
        {
          readiness: () => edge.readiness(),
          shuttingDown: () => edge.shuttingDown,
          onThreadError: (err) => logger.error({ event: 'probe_listener_failed', err }, 'the probe listener stopped'),
        },
      );
    });
    app.addHook('preClose', (done) => {
      probe?.markDraining();
      done();
    });
  }

  app.decorate('observe', {
    registry,
    snapshot,
    exportWindows: (window: WindowName) => exportWindows(measurements, window),
    probePort: () => probe?.port,
  } satisfies ObserveApi);

  const access = new AdminAccess({
    token: opts.adminToken,
    allow: opts.allow,
    sessionMaxAgeSec: opts.sessionMaxAgeSec,
  });
  await registerStatusRoutes(app, {
    access,
    registry,
    snapshot,
    extra:
      opts.extraStatus === undefined
        ? undefined
        : new ExtraStatus({ source: opts.extraStatus, timeoutMs: opts.extraStatusTimeoutMs, logger }),
    metricsPath: opts.metricsPath,
    statusPath: opts.statusPath,
    exempt: routeExempt,
  });

  app.addHook('onClose', async () => {
    measurements.unsubscribe();
    edge.lifecycle.setAdmission(undefined);
    monitor.stop();
    stopStalls?.();
    await probe?.close();
    if (onTracedEnd !== undefined) channels.requestEnd.unsubscribe(onTracedEnd);
    await tracer?.shutdown(TRACER_SHUTDOWN_MS);
  });
}

function exportWindows(m: Measurements, window: WindowName): ExportedWindows {
  const now = Date.now();
  const enc = (s: LatencySeries): EncodedWindow => s.windows.exportWindow(window, now);
  return {
    window,
    routes: [...m.routes.series()].map((s) => ({
      method: s.labels.method ?? '',
      route: s.labels.route ?? '',
      latency: enc(s),
    })),
    postgres: enc(m.queryTotal),
    queries: [...m.queries.entries()].map(([fingerprint, s]) => ({
      queryId: s.labels.query_id ?? '',
      fingerprint,
      latency: enc(s),
    })),
    poolAcquire: [...m.poolAcquire.entries()].map(([pool, s]) => ({ pool, latency: enc(s) })),
    dependencies: [...m.dependencies.entries()].map(([dependency, s]) => ({ dependency, latency: enc(s) })),
  };
}

/**
 * hangproof's observability and overload protection for Fastify: per-route, Postgres, pool and
 * dependency latency windows; GET /metrics (Prometheus); the admin status page; event-loop delay
 * and stall reports with the blocking stack; a concurrency limit with a short bounded queue; load
 * shedding on loop delay or heap; OpenTelemetry export when the OTLP variables are set.
 * Register it after the `hangproof` plugin, once per process.
 */
export const observe = fp(observePlugin, { fastify: '5.x', name: 'hangproof-observe', dependencies: ['hangproof'] });
