import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino } from 'pino';
import {
  type AdmissionControl,
  formatServerTiming,
  type RequestContext,
  RequestLifecycle,
  resolveRequestId,
  runWithContext,
} from '../core/index.js';
import { errorBody, HangproofError } from '../errors.js';
import type { Observatory } from '../observe/observatory.js';
import { createAdminTokenCheck } from './admin-token.js';
import { type HangproofOptions, type ResolvedHangproofOptions, resolveHangproofOptions } from './options.js';
import { Readiness, type ReadinessCheck, type ReadinessCheckOptions, type ReadinessReport } from './readiness.js';
import { RefusalPacer } from './refusal-pacer.js';
import { toHangproofError } from './to-hangproof-error.js';

/** Options of the node:http based adapters (http, Express, Hono): the Fastify plugin's, plus these. */
export interface NodeEdgeOptions extends HangproofOptions {
  /**
   * The overload guard deciding, before a request costs anything, whether it is served (see
   * `overloadGuard` in hangproof/observe). @default undefined (every request is served)
   */
  readonly admission?: AdmissionControl | undefined;
  /**
   * hangproof/observe on this edge (`createObservatory`): /metrics and /status served before the
   * application's routes, shedding with the observatory's limit and pressure (it installs its own
   * overload guard, so leave `admission` unset), the stall detector, the probe listener and the
   * OpenTelemetry wiring. `close()` (and installShutdown) closes it. @default undefined
   */
  readonly observe?: Observatory | undefined;
}

// Per-request state kept on the raw response, so a request allocates no state object or closure.
const kCtx = Symbol('hangproof.ctx');
const kAdmitted = Symbol('hangproof.admitted');
/** Set on a response the edge itself answered at its abort: the handler's late writes are dropped. */
const kAnsweredAtAbort = Symbol('hangproof.answered-at-abort');
type EdgeResponse = ServerResponse & {
  [kCtx]?: RequestContext | undefined;
  [kAdmitted]?: boolean;
  [kAnsweredAtAbort]?: boolean;
};

const CLIENT_CLOSED = new HangproofError('CLIENT_CLOSED_REQUEST');
const noop = (): void => {};

/**
 * The request edge on node:http's request and response, for every adapter whose framework runs
 * on them (a plain listener, Express, Hono on @hono/node-server): refusals before any context,
 * health and readiness probes, the request id, the deadline carried in AsyncLocalStorage, the
 * 504 REQUEST_TIMEOUT at the deadline even when the handler never answers, Server-Timing for
 * admins, the error shape, the one log line, and draining at shutdown. An adapter calls `begin`
 * once per request and `fail` for the errors its framework hands it.
 */
export class NodeEdge {
  readonly options: ResolvedHangproofOptions;
  readonly lifecycle: RequestLifecycle;
  readonly readiness: Readiness;
  readonly #isAdminToken: (presented: unknown) => boolean;
  readonly #routeAtEnd: ((res: ServerResponse) => string | undefined) | undefined;
  readonly #startedAt = Date.now();
  readonly #pacer: RefusalPacer;
  /** The shared 'close' listener of every response (`this` is the response). */
  readonly #onClose: (this: EdgeResponse) => void;
  readonly #observer: Observatory | undefined;
  /** The observer's status requests fail through the edge's error path. */
  readonly #failStatus = (res: ServerResponse, err: unknown): void => this.fail(res, err);

  constructor(input: NodeEdgeOptions, routeAtEnd?: (res: ServerResponse) => string | undefined) {
    this.options = resolveHangproofOptions(input);
    this.lifecycle = new RequestLifecycle({
      deadlineMs: this.options.deadlineMs,
      slowWarnMs: this.options.slowWarnMs,
      slowErrorMs: this.options.slowErrorMs,
      logger: this.options.logger ?? pino(),
      quietProbes: this.options.quietProbes,
    });
    this.lifecycle.setAdmission(input.admission);
    this.readiness = new Readiness(this.options.readinessCacheMs);
    this.#pacer = new RefusalPacer(this.options.refusalPauseMs);
    this.#observer = input.observe;
    if (input.observe !== undefined) {
      if (input.admission !== undefined) {
        throw new TypeError('pass either admission or observe: the observatory installs its own overload guard');
      }
      input.observe.attach({
        deadlineMs: this.options.deadlineMs,
        adminToken: this.options.adminToken,
        healthPath: this.options.healthPath || '/healthz',
        readyPath: this.options.readyPath || '/readyz',
        lifecycle: this.lifecycle,
        readiness: () => this.readiness.evaluate(),
        shuttingDown: () => this.lifecycle.shuttingDown,
      });
    }
    this.#isAdminToken = createAdminTokenCheck(this.options.adminToken);
    this.#routeAtEnd = routeAtEnd;
    const lifecycle = this.lifecycle;
    const edge = this;
    this.#onClose = function onClose(this: EdgeResponse): void {
      const ctx = this[kCtx];
      if (ctx === undefined) return;
      this[kCtx] = undefined;
      let statusCode = this.statusCode;
      if (!this.writableEnded) {
        ctx.abort(CLIENT_CLOSED);
        statusCode = 499;
        ctx.errorCode = 'CLIENT_CLOSED_REQUEST';
      }
      ctx.statusCode = statusCode;
      const route = edge.#routeAtEnd?.(this);
      if (route !== undefined) ctx.name = route;
      lifecycle.end(ctx, this[kAdmitted] === true);
    };
  }

  /** Registers a check `/readyz` runs (with a timeout, cached). */
  addReadinessCheck(name: string, check: ReadinessCheck, options?: ReadinessCheckOptions): void {
    this.readiness.add(name, check, options);
  }

  /** The current readiness answer (cached like `/readyz`). */
  evaluateReadiness(): Promise<ReadinessReport> {
    return this.readiness.evaluate();
  }

  /** True when the request carries the configured admin token (X-Admin-Token). */
  isAdmin(req: IncomingMessage): boolean {
    return this.#isAdminToken(req.headers['x-admin-token']);
  }

  /** Turns `/readyz` to 503 and answers new requests 503 SHUTTING_DOWN (keep-alive closed). */
  beginShutdown(): void {
    this.readiness.markShuttingDown();
    const inFlight = this.lifecycle.beginShutdown() as ServerResponse[];
    this.#pacer.flush();
    this.#observer?.beginShutdown();
    // The requests in flight close their connection after answering: an idle keep-alive socket
    // would otherwise hold server.close() open until keepAliveTimeout.
    for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
  }

  get shuttingDown(): boolean {
    return this.lifecycle.shuttingDown;
  }

  /** Stops what the edge runs beside requests (its observatory's timers, threads and export); idempotent. */
  close(): Promise<void> {
    return this.#observer?.close() ?? Promise.resolve();
  }

  /**
   * Starts a request: answers refusals and the health and readiness probes itself, otherwise
   * builds the request's context and calls `proceed` inside it (AsyncLocalStorage). `route` is the
   * route pattern when the framework knows it already (else '' and `routeAtEnd` names it later).
   */
  begin(req: IncomingMessage, res: ServerResponse, route: string, proceed: (ctx: RequestContext) => void): void {
    const url = req.url ?? '/';
    // Probes first: they answer (truthfully) even while requests are refused or drained.
    if (this.#answerProbe(url, res)) return;
    const decision = this.lifecycle.admit(url);
    if (typeof decision === 'object') {
      this.#refuse(req, res, decision);
      return;
    }
    const ctx = this.lifecycle.begin({
      requestId: resolveRequestId(req.headers['x-request-id']),
      method: req.method ?? 'GET',
      route,
      url,
      budgetMs: this.lifecycle.budgetFor(undefined, req.headers[this.options.timeoutHeader]),
      onAbort: answerAbort,
      owner: res,
    });
    const r = res as EdgeResponse;
    r[kCtx] = ctx;
    res.setHeader('x-request-id', ctx.requestId);
    if (this.options.dangerouslyExposeServerTimingToAll || this.isAdmin(req)) addServerTiming(res, ctx);
    if (this.lifecycle.shuttingDown) res.setHeader('connection', 'close');
    res.on('close', this.#onClose);
    const observer = this.#observer;
    if (observer?.tracesRequests) observer.requestStarted(ctx, req.headers, res);
    if (decision === 'admitted') {
      r[kAdmitted] = true;
      this.lifecycle.admitted(ctx);
    } else if (decision === 'wait') {
      // The admission queue: a short bounded wait that ends with the request if it ends first.
      this.lifecycle.admission?.wait(ctx).then((refusal) => {
        if (ctx.aborted || ctx.ended) return;
        if (refusal !== undefined) {
          this.fail(res, refusal);
          return;
        }
        r[kAdmitted] = true;
        proceed(ctx);
      });
      return;
    }
    // The observatory's own endpoints (exempt from admission, so never queued above).
    if (observer?.serves(req)) {
      if (ctx.name === '') ctx.name = pathOf(url);
      runWithContext(ctx, () => observer.handle(req, res, this.#failStatus));
      return;
    }
    proceed(ctx);
  }

  /**
   * Answers `err` in the error shape (status, code, message, requestId; never a stack or SQL)
   * unless the response is already out; the request's own deadline or disconnect wins over
   * whatever error its handler surfaced for it.
   */
  fail(res: ServerResponse, err: unknown): void {
    const ctx = (res as EdgeResponse)[kCtx];
    const error = toHangproofError(err, ctx?.aborted ? ctx.abortReason : undefined);
    if (ctx !== undefined) {
      ctx.errorCode = error.code;
      ctx.err = err;
    }
    if (res.headersSent || res.writableEnded) return;
    writeError(res, error, ctx?.requestId ?? resolveRequestId(undefined));
  }

  /** The context of the request behind `res`, while it runs. */
  contextOf(res: ServerResponse): RequestContext | undefined {
    return (res as EdgeResponse)[kCtx];
  }

  /**
   * True when the edge answered `res` itself at the request's abort (the deadline's 504, draining):
   * whatever the handler does or throws afterwards is too late and is dropped.
   */
  answeredAtAbort(res: ServerResponse): boolean {
    return (res as EdgeResponse)[kAnsweredAtAbort] === true;
  }

  #refuse(req: IncomingMessage, res: ServerResponse, error: HangproofError): void {
    this.#pacer.refuse(req, res, error, resolveRequestId(req.headers['x-request-id']), this.lifecycle.shuttingDown);
  }

  /** Answers /healthz and /readyz; true when `url` was one of them. */
  #answerProbe(url: string, res: ServerResponse): boolean {
    const { healthPath, readyPath } = this.options;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const health = path === healthPath;
    if (!health && path !== readyPath) return false;
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.setHeader('cache-control', 'no-store');
    if (health) {
      res.end(JSON.stringify({ status: 'ok', uptimeSec: Math.round((Date.now() - this.#startedAt) / 1000) }));
      return true;
    }
    this.readiness.evaluate().then(
      (report) => {
        res.statusCode = report.ready ? 200 : 503;
        res.end(JSON.stringify({ status: report.ready ? 'ready' : 'not_ready', ...report }));
      },
      () => {
        res.statusCode = 503;
        res.end(JSON.stringify({ status: 'not_ready' }));
      },
    );
    return true;
  }
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** Sets Server-Timing just before the headers go out (admins only: it wraps this one response). */
function addServerTiming(res: ServerResponse, ctx: RequestContext): void {
  const writeHead = res.writeHead;
  res.writeHead = function writeHeadWithTiming(this: ServerResponse, ...args: unknown[]) {
    if (!this.headersSent) this.setHeader('server-timing', formatServerTiming(ctx));
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as typeof res.writeHead;
}

/** Ends the request at its abort: the 504 (or 503 SHUTTING_DOWN) if nothing was sent yet, else cut short. */
function answerAbort(ctx: RequestContext): void {
  const res = ctx.owner as EdgeResponse;
  const reason = ctx.abortReason;
  if (reason === undefined || reason.code === 'CLIENT_CLOSED_REQUEST' || res.writableEnded) return;
  ctx.errorCode = reason.code;
  if (res.headersSent) {
    // A streamed response had already begun: a 504 can no longer be sent, so cut it short.
    res.on('error', noop);
    res.destroy(reason);
  } else {
    writeError(res, reason, ctx.requestId);
  }
  res[kAnsweredAtAbort] = true;
  dropLateWrites(res);
}

/**
 * The handler runs on after the edge answered for it, and will answer too: `res.json()` from a
 * timer, a stream piped in, `setHeader` on a response already sent. Without hangproof those calls
 * would have been in time; here they would throw ERR_HTTP_HEADERS_SENT where nothing catches it
 * (a timer, a callback), and end the process. On this one response they become no-ops.
 */
function dropLateWrites(res: ServerResponse): void {
  const late = res as unknown as Record<string, unknown>;
  for (const method of ['setHeader', 'setHeaders', 'appendHeader', 'removeHeader', 'writeHead', 'flushHeaders']) {
    late[method] = function dropped(this: ServerResponse) {
      return this;
    };
  }
  late.write = (...args: unknown[]) => {
    callLast(args);
    return true;
  };
  late.end = function ended(this: ServerResponse, ...args: unknown[]) {
    callLast(args);
    return this;
  };
  res.on('error', noop);
}

/** Calls a write's callback (its last argument, when a function) as a written chunk would. */
function callLast(args: readonly unknown[]): void {
  const cb = args[args.length - 1];
  if (typeof cb === 'function') process.nextTick(cb as () => void);
}

function writeError(res: ServerResponse, error: HangproofError, requestId: string): void {
  res.statusCode = error.statusCode;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  if (error.retryAfterSec !== undefined) res.setHeader('retry-after', String(Math.ceil(error.retryAfterSec)));
  res.end(JSON.stringify(errorBody(error, requestId)));
}
