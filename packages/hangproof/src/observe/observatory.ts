import type { Channel } from 'node:diagnostics_channel';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  channels,
  type QueryEvent,
  type RequestContext,
  type RequestEndEvent,
  type RequestLifecycle,
} from '../core/index.js';
import { detectOtelApi } from '../core/otel-api.js';
import { errorBody, HangproofError } from '../errors.js';
import { LOG_EVENTS } from '../log-events.js';
import { type AccessRequest, AdminAccess } from './admin-access.js';
import { ConcurrencyLimiter } from './concurrency-limiter.js';
import { EventLoopMonitor } from './event-loop-monitor.js';
import { type ExportedWindows, exportWindows } from './export-windows.js';
import { ExtraStatus } from './extra-status.js';
import { GradientLimit } from './gradient-limit.js';
import { heartbeats } from './heartbeats.js';
import { Measurements } from './measurements.js';
import { type ObserveOptions, type ResolvedObserveOptions, resolveObserveOptions } from './options.js';
import type { CitizenTracer } from './otel-citizen.js';
import type { RequestTracer } from './otel-tracing.js';
import { createOverloadGuard } from './overload-guard.js';
import { ProbeListener } from './probe-listener.js';
import { createRegistry } from './prometheus.js';
import { stallFrameText } from './stall-frame-text.js';
import { watchStalls } from './stall-watchdog.js';
import { loadStatusTemplates, StatusEndpoints, type StatusTemplates } from './status-endpoints.js';
import { serveStatus } from './status-handler.js';
import { buildStatusSnapshot } from './status-snapshot.js';
import type { WindowName } from './windowed-histogram.js';

/** What observe reads: the prom-client registry, the status snapshot, the windows, the probe port. */
export interface ObserveApi {
  /** The prom-client Registry behind /metrics (not the global one). */
  readonly registry: Registry;
  /** observe's own data behind /status.json (without the `extraStatus` fields, which only the route adds). */
  snapshot(): Record<string, unknown>;
  /** Every series' window, encoded so another instance can merge it with `mergeEncoded`. */
  exportWindows(window: WindowName): ExportedWindows;
  /** The port of the probe listener once started; undefined when `probePort` is false. */
  probePort(): number | undefined;
}

/** The request edge an observatory serves, whatever the framework (the Fastify plugin, a NodeEdge). */
export interface ObservedEdge {
  readonly deadlineMs: number;
  /** The edge's admin token: the observatory's when it has none of its own. */
  readonly adminToken: string | undefined;
  readonly healthPath: string;
  readonly readyPath: string;
  /** Where the overload guard is installed and whose logger observe uses by default. */
  readonly lifecycle: RequestLifecycle;
  readiness(): Promise<{ readonly ready: boolean }>;
  shuttingDown(): boolean;
}

/** Answers a status request's error (UNAUTHORIZED, ...) in the error shape. */
export type StatusErrorWriter = (res: ServerResponse, err: unknown) => void;

/** The response of a traced request, tagged with its context for the shared 'close' listener. */
const kTracedContext = Symbol('hangproof.traced-context');
type TracedResponse = ServerResponse & { [kTracedContext]?: RequestContext | undefined };

/** Longest wait for the span exporter to flush at close, in ms. */
const TRACER_SHUTDOWN_MS = 5_000;

/** Subscribes `fn` to `channel`; returns the unsubscribe. */
function listen(channel: Channel, fn: (message: unknown) => void): () => void {
  channel.subscribe(fn);
  return () => channel.unsubscribe(fn);
}

/** Without an edge's error path: the error shape, with the request id the edge set, if any. */
const writeStatusError: StatusErrorWriter = (res, err) => {
  if (res.headersSent || res.writableEnded) return;
  const error = err instanceof HangproofError ? err : new HangproofError('INTERNAL');
  const id = res.getHeader('x-request-id');
  res.statusCode = error.statusCode;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(errorBody(error, typeof id === 'string' ? id : '')));
};

/**
 * Everything hangproof/observe runs, whatever the framework: per-route, Postgres, pool and
 * dependency latency windows; the Prometheus registry; the status endpoints; event-loop delay
 * and stall reports; the concurrency limit (fixed or adaptive) and the overload guard; the probe
 * listener; OpenTelemetry (spans in the application's own traces when it registered a tracer
 * provider, else hangproof's own export when the OTLP variables are set).
 *
 * Its life: created (options checked, templates and OpenTelemetry loaded), attached to one edge
 * (the guard installed, measuring and the stall watchdog begin), started (the probe listener
 * binds), closed (everything stops, so the process can exit). `R` is the request the `allow`
 * rule reads: node's IncomingMessage, or a FastifyRequest inside the Fastify plugin.
 */
export class Observatory<R extends AccessRequest = IncomingMessage> implements ObserveApi {
  readonly registry: Registry;
  readonly #input: ResolvedObserveOptions<R>;
  readonly #measurements: Measurements;
  readonly #monitor: EventLoopMonitor;
  readonly #limiter: ConcurrencyLimiter | undefined;
  readonly #adaptive: GradientLimit | undefined;
  readonly #tracer: RequestTracer | undefined;
  readonly #citizen: CitizenTracer | undefined;
  readonly #templates: StatusTemplates | undefined;
  readonly #unsubscribes: (() => void)[] = [];
  readonly #ownRoutes = new Set<string>();
  /** `${method} ${path}` of each status endpoint, for `serves`. */
  readonly #served = new Set<string>();
  /** The shared 'close' listener of traced responses (`this` is the response). */
  readonly #onClosing: (this: TracedResponse) => void;
  #edge: ObservedEdge | undefined;
  #endpoints: StatusEndpoints<R> | undefined;
  #logger: Logger | undefined;
  #stopStalls: (() => void) | undefined;
  #probe: ProbeListener | undefined;
  #started: Promise<void> | undefined;
  #closed: Promise<void> | undefined;

  /** Checks the options and loads what the observatory needs before any request (see `createObservatory`). */
  static async create<R extends AccessRequest>(input: ObserveOptions<R>): Promise<Observatory<R>> {
    const opts = resolveObserveOptions(input);
    const [tracing, templates] = await Promise.all([
      loadTracing(opts),
      opts.statusPath === false ? undefined : loadStatusTemplates(),
    ]);
    return new Observatory(opts, tracing, templates);
  }

  private constructor(
    opts: ResolvedObserveOptions<R>,
    tracing: { tracer?: RequestTracer; citizen?: CitizenTracer },
    templates: StatusTemplates | undefined,
  ) {
    this.#input = opts;
    this.#tracer = tracing.tracer;
    this.#citizen = tracing.citizen;
    this.#templates = templates;
    const citizen = tracing.citizen;
    this.#onClosing = function onClosing(this: TracedResponse): void {
      const ctx = this[kTracedContext];
      this[kTracedContext] = undefined;
      if (ctx !== undefined) citizen?.onResponseClosing(ctx, !this.writableEnded);
    };
    this.#measurements = new Measurements(opts);
    this.#monitor = new EventLoopMonitor(opts);
    this.#limiter =
      opts.maxInFlight > 0
        ? new ConcurrencyLimiter({
            maxInFlight: opts.maxInFlight,
            maxQueued: opts.maxQueued,
            queueWaitMs: opts.queueWaitMs,
          })
        : undefined;
    this.#adaptive =
      this.#limiter !== undefined && opts.adaptiveLimit !== false
        ? new GradientLimit(opts.maxInFlight, opts.adaptiveLimit === true ? {} : opts.adaptiveLimit)
        : undefined;
    if (this.#adaptive !== undefined) this.#limiter?.setLimit(this.#adaptive.limit);
    this.registry = createRegistry({
      measurements: this.#measurements,
      monitor: this.#monitor,
      limiter: this.#limiter,
      heartbeats,
      pools: opts.pools,
      bucketsSec: opts.bucketsSec,
      defaultMetrics: opts.defaultMetrics,
    });
  }

  /** True when requests are traced: the edge then calls `requestStarted` for each. */
  get tracesRequests(): boolean {
    return this.#tracer !== undefined || this.#citizen !== undefined;
  }

  /**
   * Binds the observatory to its edge, once: installs the overload guard as the edge's admission
   * control and begins measuring (channels, loop monitor, stall watchdog, span export).
   */
  attach(edge: ObservedEdge): void {
    if (this.#edge !== undefined) throw new TypeError('an observatory serves one edge; create one per app');
    if (this.#closed !== undefined) throw new TypeError('this observatory is closed');
    const opts = this.#input;
    if (opts.extraStatus !== undefined && opts.extraStatusTimeoutMs >= edge.deadlineMs) {
      // Otherwise a slow extraStatus would turn /status.json into a 504 instead of a warning.
      throw new RangeError(
        `extraStatusTimeoutMs must be below the hangproof deadlineMs (${edge.deadlineMs}), received ${opts.extraStatusTimeoutMs}`,
      );
    }
    this.#edge = edge;
    // The edge's logger (itself the application's by default): one stream for every line.
    const logger = opts.logger ?? edge.lifecycle.log.logger;
    this.#logger = logger;
    const adminToken = opts.adminToken ?? edge.adminToken;
    const endpoints = new StatusEndpoints<R>(
      {
        access: new AdminAccess<R>({ token: adminToken, allow: opts.allow, sessionMaxAgeSec: opts.sessionMaxAgeSec }),
        registry: this.registry,
        snapshot: () => this.snapshot(),
        extra:
          opts.extraStatus === undefined
            ? undefined
            : new ExtraStatus({ source: opts.extraStatus, timeoutMs: opts.extraStatusTimeoutMs, logger }),
        metricsPath: opts.metricsPath,
        statusPath: opts.statusPath,
      },
      this.#templates,
    );
    this.#endpoints = endpoints;
    for (const route of endpoints.routes()) this.#served.add(route);
    const exempt = new Set<string>(opts.exemptPaths);
    for (const path of endpoints.servedPaths()) {
      exempt.add(path);
      if (path !== opts.metricsPath) this.#ownRoutes.add(path);
    }

    this.#measurements.subscribe();
    this.#monitor.start();
    this.#subscribeTracing();
    this.#stopStalls = this.#watchStalls(edge, logger);
    // Overload guard: a slot per admitted request, decided by the edge's lifecycle before the
    // request gets a context and given back when it ends. With an adaptive limit the context's
    // admission fields remember when it got its slot and how many held one then: the limit's sample.
    const monitor = this.#monitor;
    const measurements = this.#measurements;
    edge.lifecycle.setAdmission(
      createOverloadGuard({
        limiter: this.#limiter,
        adaptive: this.#adaptive,
        pressure: () => monitor.pressure,
        exempt: (path) => exempt.has(path),
        onShed: (reason) => measurements.recordShed(reason),
        retryAfterSec: opts.retryAfterSec,
        logger,
      }),
    );
  }

  /**
   * The service starts serving: binds the probe listener (when `probePort` is set), once the edge's
   * routes and readiness checks are known, and tells the loop monitor that what blocked the loop
   * until now was startup, not load (EventLoopMonitor.servingFrom). Idempotent; rejects when the
   * port cannot be bound.
   */
  start(): Promise<void> {
    const edge = this.#edge;
    if (edge === undefined) return Promise.reject(new TypeError('attach the observatory to an edge before start()'));
    if (this.#started === undefined) {
      this.#monitor.servingFrom();
      this.#started = this.#startProbe(edge);
    }
    return this.#started;
  }

  /** The edge began draining: the probe listener says so now (its heartbeat would within 50 ms). */
  beginShutdown(): void {
    this.#probe?.markDraining();
  }

  /** Stops everything it runs (channels, timers, the watchdog and probe threads, span export). Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  /**
   * At a request's start, in its OpenTelemetry context (only when `tracesRequests`): joins the
   * caller's trace (own export) or tags the instrumentation's request span (citizen), whose outcome
   * is set from a 'close' listener that runs before the instrumentation's own ends that span.
   */
  requestStarted(ctx: RequestContext, headers: IncomingHttpHeaders, res: ServerResponse): void {
    const tracer = this.#tracer;
    if (tracer !== undefined) {
      const tp = headers.traceparent;
      if (typeof tp === 'string') tracer.noteParent(ctx, tp);
    }
    const citizen = this.#citizen;
    if (citizen !== undefined) {
      citizen.onRequestStart(ctx);
      (res as TracedResponse)[kTracedContext] = ctx;
      res.prependListener('close', this.#onClosing);
    }
  }

  /** True when `req` is one of the status endpoints `handle` answers (after `attach`). */
  serves(req: IncomingMessage): boolean {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    return this.#served.has(`${method} ${q < 0 ? url : url.slice(0, q)}`);
  }

  /**
   * Serves /metrics, /status, /status.json, the login and logout posts and the page's assets on
   * node:http's request and response, with the same access rules and headers as the Fastify
   * routes. Returns false when the request is none of them; errors (UNAUTHORIZED, ...) go to
   * `onError`, by default written in the error shape.
   */
  handle(
    this: Observatory<IncomingMessage>,
    req: IncomingMessage,
    res: ServerResponse,
    onError: StatusErrorWriter = writeStatusError,
  ): boolean {
    const endpoints = this.#endpoints;
    if (endpoints === undefined) return false;
    const served = serveStatus(endpoints, req, res);
    if (served === undefined) return false;
    served.then(undefined, (err: unknown) => onError(res, err));
    return true;
  }

  /** The status endpoints, for the Fastify plugin's routes (after `attach`). */
  get endpoints(): StatusEndpoints<R> {
    if (this.#endpoints === undefined) throw new TypeError('attach the observatory to an edge first');
    return this.#endpoints;
  }

  snapshot(): Record<string, unknown> {
    return buildStatusSnapshot({
      measurements: this.#measurements,
      monitor: this.#monitor,
      limiter: this.#limiter,
      heartbeats,
      options: this.#input,
      tracing: this.tracesRequests,
      ownRoutes: this.#ownRoutes,
    });
  }

  exportWindows(window: WindowName): ExportedWindows {
    return exportWindows(this.#measurements, window);
  }

  probePort(): number | undefined {
    return this.#probe?.port;
  }

  #subscribeTracing(): void {
    const citizen = this.#citizen;
    const tracer = this.#tracer;
    if (citizen !== undefined) {
      this.#unsubscribes.push(
        listen(channels.query, (m) => citizen.onQuery(m as QueryEvent)),
        listen(channels.requestEnd, (m) => citizen.onRequestEnd((m as RequestEndEvent).ctx)),
      );
    } else if (tracer !== undefined) {
      this.#unsubscribes.push(listen(channels.requestEnd, (m) => tracer.onRequestEnd(m as RequestEndEvent)));
    }
  }

  #watchStalls(edge: ObservedEdge, logger: Logger): (() => void) | undefined {
    const opts = this.#input;
    if (opts.stallThresholdMs <= 0) return undefined;
    const measurements = this.#measurements;
    return watchStalls(
      { thresholdMs: opts.stallThresholdMs, captureStacks: opts.captureStallStacks },
      { inFlight: () => edge.lifecycle.inFlight, endedSince: (perfNow) => measurements.endedSince(perfNow) },
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
    );
  }

  async #startProbe(edge: ObservedEdge): Promise<void> {
    const opts = this.#input;
    if (opts.probePort === false || this.#closed !== undefined) return;
    const logger = this.#logger;
    this.#probe = await ProbeListener.start(
      {
        host: opts.probeHost,
        port: opts.probePort,
        stalledAfterMs: opts.probeStalledAfterMs,
        healthPath: edge.healthPath,
        readyPath: edge.readyPath,
      },
      {
        readiness: () => edge.readiness(),
        shuttingDown: () => edge.shuttingDown(),
        onThreadError: (err) => logger?.error({ event: 'probe_listener_failed', err }, 'the probe listener stopped'),
      },
    );
  }

  async #close(): Promise<void> {
    this.#measurements.unsubscribe();
    this.#edge?.lifecycle.setAdmission(undefined);
    this.#monitor.stop();
    this.#stopStalls?.();
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    // A start still binding finishes first, so its thread is not left running.
    await this.#started?.catch(() => {});
    await this.#probe?.close();
    await this.#tracer?.shutdown(TRACER_SHUTDOWN_MS);
  }
}

/**
 * The application's own tracer provider wins: hangproof joins its traces and exports nothing
 * itself. Without one, the OTLP variables ask for hangproof's own exporter. Either module is
 * imported only here, so a service without OpenTelemetry loads none of it.
 */
async function loadTracing(
  opts: ResolvedObserveOptions<never>,
): Promise<{ tracer?: RequestTracer; citizen?: CitizenTracer }> {
  if (opts.tracing !== 'auto') return {};
  const api = await detectOtelApi();
  if (api !== undefined) {
    const { createCitizenTracer } = await import('./otel-citizen.js');
    return { citizen: createCitizenTracer(api) };
  }
  const { tracingRequested, createOtelTracer } = await import('./otel-tracing.js');
  if (!tracingRequested()) return {};
  return { tracer: await createOtelTracer(opts.serviceName) };
}

/**
 * hangproof/observe for the node:http adapters (`hangproof/http`, `/express`, `/hono`): pass it
 * as their `observe` option, then `await observatory.start()` (binds the probe listener when
 * `probePort` is set). The edge then serves /metrics and /status, sheds with the observatory's
 * limit, and `installShutdown({ server, edge })` closes it.
 *
 * ```ts
 * const observatory = await createObservatory({ maxInFlight: 64, adaptiveLimit: true, probePort: 9464 });
 * const listener = withHangproof(handler, { adminToken, observe: observatory });
 * await observatory.start();
 * ```
 */
export function createObservatory(options: ObserveOptions<IncomingMessage> = {}): Promise<Observatory> {
  return Observatory.create<IncomingMessage>(options);
}
