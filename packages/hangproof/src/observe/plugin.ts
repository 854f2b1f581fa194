import type { Channel } from 'node:diagnostics_channel';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Registry } from 'prom-client';
import { channels, type QueryEvent, type RequestContext, type RequestEndEvent } from '../core/index.js';
import { detectOtelApi } from '../core/otel-api.js';
import { LOG_EVENTS } from '../log-events.js';
import { AdminAccess } from './admin-access.js';
import { ConcurrencyLimiter } from './concurrency-limiter.js';
import { EventLoopMonitor } from './event-loop-monitor.js';
import { ExtraStatus } from './extra-status.js';
import { GradientLimit } from './gradient-limit.js';
import { heartbeats } from './heartbeats.js';
import type { LatencySeries } from './latency-series.js';
import { Measurements } from './measurements.js';
import { type ObserveOptions, resolveObserveOptions } from './options.js';
import type { CitizenTracer } from './otel-citizen.js';
import type { RequestTracer } from './otel-tracing.js';
import { createOverloadGuard } from './overload-guard.js';
import { ProbeListener } from './probe-listener.js';
import { createRegistry } from './prometheus.js';
import { stallFrameText } from './stall-frame-text.js';
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

/** The response of a traced request, tagged with its context for the shared 'close' listener. */
const kTracedContext = Symbol('hangproof.traced-context');
type TracedResponse = ServerResponse & { [kTracedContext]?: RequestContext | undefined };

/** Subscribes `fn` to `channel`; returns the unsubscribe. */
function listen(channel: Channel, fn: (message: unknown) => void): () => void {
  channel.subscribe(fn);
  return () => channel.unsubscribe(fn);
}

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
  // The edge's logger (itself the application's by default): one stream for every line.
  const logger = opts.logger ?? edge.lifecycle.log.logger;
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
  let citizen: CitizenTracer | undefined;
  const unsubscribes: (() => void)[] = [];
  if (opts.tracing === 'auto') {
    // The application's own tracer provider wins: hangproof joins its traces and exports nothing
    // itself. Without one, the OTLP variables ask for hangproof's own exporter. Either module is
    // imported only here, so a service without OpenTelemetry loads none of it.
    const api = await detectOtelApi();
    if (api !== undefined) {
      const { createCitizenTracer } = await import('./otel-citizen.js');
      const c = createCitizenTracer(api);
      citizen = c;
      unsubscribes.push(
        listen(channels.query, (m) => c.onQuery(m as QueryEvent)),
        listen(channels.requestEnd, (m) => c.onRequestEnd((m as RequestEndEvent).ctx)),
      );
    } else {
      const { tracingRequested, createOtelTracer } = await import('./otel-tracing.js');
      if (tracingRequested()) {
        const t = await createOtelTracer(opts.serviceName);
        tracer = t;
        unsubscribes.push(listen(channels.requestEnd, (m) => t.onRequestEnd(m as RequestEndEvent)));
      }
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
                event: LOG_EVENTS.eventLoopStall,
                stall_ms: report.durationMs,
                stack: report.stack?.map(stallFrameText),
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

  const exempt = new Set<string>(opts.exemptPaths);
  const ownRoutes = new Set<string>();
  const routeExempt = (path: string): void => {
    exempt.add(path);
    if (path !== opts.metricsPath) ownRoutes.add(path);
  };
  edge.lifecycle.setAdmission(
    createOverloadGuard({
      limiter,
      adaptive,
      pressure: () => monitor.pressure,
      exempt: (path) => exempt.has(path),
      onShed: (reason) => measurements.recordShed(reason),
      retryAfterSec: opts.retryAfterSec,
      logger,
    }),
  );

  if (tracer !== undefined) {
    const noteParent = tracer.noteParent.bind(tracer);
    app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
      const ctx = request.hangproof;
      const tp = request.headers.traceparent;
      if (ctx !== null && typeof tp === 'string') noteParent(ctx, tp);
      done();
    });
  }
  if (citizen !== undefined) {
    const c = citizen;
    // Runs before the HTTP instrumentation's own 'close' listener, which ends the request span:
    // the outcome has to be on the span by then.
    function onClosing(this: TracedResponse): void {
      const ctx = this[kTracedContext];
      this[kTracedContext] = undefined;
      if (ctx !== undefined) c.onResponseClosing(ctx, !this.writableEnded);
    }
    app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
      const ctx = request.hangproof;
      if (ctx !== null) {
        c.onRequestStart(ctx);
        (reply.raw as TracedResponse)[kTracedContext] = ctx;
        reply.raw.prependListener('close', onClosing);
      }
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
      tracing: tracer !== undefined || citizen !== undefined,
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
    for (const unsubscribe of unsubscribes) unsubscribe();
    await probe?.close();
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
 * shedding on loop delay or heap; OpenTelemetry: spans in the application's own traces when it
 * registered a tracer provider, else hangproof's own export when the OTLP variables are set.
 * Register it after the `hangproof` plugin, once per process.
 */
export const observe = fp(observePlugin, { fastify: '5.x', name: 'hangproof-observe', dependencies: ['hangproof'] });
