import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { pino } from 'pino';
import { channels, formatServerTiming, publish, RequestContext, runWithContext } from '../core/index.js';
import { errorBody, HangproofError } from '../errors.js';
import { createAdminTokenCheck } from './admin-token.js';
import {
  type HangproofOptions,
  type ResolvedHangproofOptions,
  type RouteHangproofConfig,
  resolveHangproofOptions,
} from './options.js';
import { Readiness, type ReadinessCheck, type ReadinessCheckOptions, type ReadinessReport } from './readiness.js';
import { levelFor, type RequestOutcome, writeRequestLog } from './request-log.js';
import { parseTimeoutHeader } from './timeout-header.js';
import { toHangproofError } from './to-hangproof-error.js';

/** What the plugin adds to the Fastify instance as `app.hangproof`. */
export interface HangproofApi {
  readonly options: ResolvedHangproofOptions;
  /** Registers a check `/readyz` runs (with a timeout, cached). */
  addReadinessCheck(name: string, check: ReadinessCheck, options?: ReadinessCheckOptions): void;
  /** The current readiness answer (cached like `/readyz`). */
  readiness(): Promise<ReadinessReport>;
  /** Contexts of the requests in flight right now. */
  inFlight(): ReadonlySet<RequestContext>;
  /** True when the request carries the configured admin token. */
  isAdmin(request: FastifyRequest): boolean;
  /** Turns `/readyz` to 503 and answers new requests 503 SHUTTING_DOWN. Called by installShutdown. */
  beginShutdown(): void;
  readonly shuttingDown: boolean;
}

interface EdgeState {
  readonly ctx: RequestContext;
  errorCode: string | undefined;
  err: unknown;
  /** Set while the handler's promise is raced against the signal: rejects the race with the abort reason. */
  rejectRace: ((reason: unknown) => void) | undefined;
  /** performance.now() when an async handler resolved; the time from there to onSend is serialization. */
  handlerEndedAt: number;
  /** A response is on its way out (onSend ran): a deadline firing now must not send a second one. */
  responding: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    hangproof: HangproofApi;
  }
  interface FastifyRequest {
    /** The hangproof context of this request (deadline, signal, spans). */
    hangproof: RequestContext | null;
  }
  interface FastifyContextConfig {
    hangproof?: RouteHangproofConfig;
  }
}

const kState = Symbol('hangproof.edge-state');
type WithState = FastifyRequest & { [kState]?: EdgeState };
const stateOf = (request: FastifyRequest): EdgeState | undefined => (request as WithState)[kState];

async function hangproofPlugin(app: FastifyInstance, input: HangproofOptions): Promise<void> {
  const opts = resolveHangproofOptions(input);
  const logger = opts.logger ?? pino();
  const isAdminToken = createAdminTokenCheck(opts.adminToken);
  const readiness = new Readiness(opts.readinessCacheMs);
  const inFlight = new Set<RequestContext>();
  const probePaths = new Set<string>();

  const isAdmin = (request: FastifyRequest): boolean => isAdminToken(request.headers['x-admin-token']);

  app.decorate('hangproof', {
    options: opts,
    addReadinessCheck: (name, check, options) => readiness.add(name, check, options),
    readiness: () => readiness.evaluate(),
    inFlight: () => inFlight,
    isAdmin,
    beginShutdown: () => readiness.markShuttingDown(),
    get shuttingDown() {
      return readiness.shuttingDown;
    },
  } satisfies HangproofApi);
  app.decorateRequest('hangproof', null);
  app.decorateRequest(kState, undefined);

  app.addHook('onRequest', (request, reply, done) => {
    // routeOptions is a getter that builds a new object on each access: read it once.
    const route = request.routeOptions;
    let budgetMs = route.config?.hangproof?.deadlineMs ?? opts.deadlineMs;
    const asked = parseTimeoutHeader(request.headers[opts.timeoutHeader]);
    if (asked !== undefined && asked < budgetMs) budgetMs = asked;
    const ctx = new RequestContext({ requestId: request.id, budgetMs, name: route.url ?? '' });
    const state: EdgeState = {
      ctx,
      errorCode: undefined,
      err: undefined,
      rejectRace: undefined,
      handlerEndedAt: 0,
      responding: false,
    };
    request.hangproof = ctx;
    (request as WithState)[kState] = state;
    inFlight.add(ctx);
    reply.header('x-request-id', ctx.requestId);
    ctx.watchAbort(() => answerAbort(reply, state));
    // `on`, not `once`: a response closes once, and once() wraps every listener in a closure.
    reply.raw.on('close', () => finish(request, reply, state));
    if (readiness.shuttingDown) {
      reply.header('connection', 'close');
      reply.send(new HangproofError('SHUTTING_DOWN', { retryAfterSec: 1 }));
      return;
    }
    runWithContext(ctx, done);
  });

  // A plain app.close() drains too, not only the signal handler: without this, a response that
  // completes after close() began leaves its keep-alive socket open, and close() then waits for
  // keepAliveTimeout (72 s by default) before it returns.
  app.addHook('preClose', (done) => {
    readiness.markShuttingDown();
    done();
  });

  app.addHook('onSend', (request, reply, payload, done) => {
    const state = stateOf(request);
    if (state !== undefined) {
      const { ctx } = state;
      state.responding = true;
      if (state.handlerEndedAt > 0) {
        const now = performance.now();
        ctx.addSpan({
          name: 'serialization',
          kind: 'serialization',
          startMs: state.handlerEndedAt - ctx.startedAt,
          durationMs: now - state.handlerEndedAt,
        });
      }
      if (opts.dangerouslyExposeServerTimingToAll || isAdmin(request))
        reply.header('server-timing', formatServerTiming(ctx));
    }
    // While draining, close each connection after its response: an idle keep-alive socket would
    // otherwise hold server.close() open until keepAliveTimeout.
    if (readiness.shuttingDown) reply.header('connection', 'close');
    done(null, payload);
  });

  // Every handler registered after the plugin is raced against its request's signal, so a handler
  // that never settles still gets its 504 through Fastify's normal error path, and its late
  // result is dropped instead of being sent twice.
  app.addHook('onRoute', (route: RouteOptions) => {
    const handler = route.handler;
    route.handler = function raced(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      const result: unknown = handler.call(this, request, reply);
      const state = stateOf(request);
      if (state === undefined || !isThenable(result)) return result;
      return raceHandler(state, result);
    } as typeof handler;
    // Body parsing resumes in the socket's async context, not the request's: routes that take a
    // body re-enter the request context before validation, so their hooks and handler see it (as
    // @fastify/request-context does). Routes without a body never leave it and skip this hook.
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.some((m) => m !== 'GET' && m !== 'HEAD')) {
      const existing = route.preValidation;
      route.preValidation = [
        restoreContext,
        ...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]),
      ];
    }
  });

  app.setErrorHandler((err, request, reply) => {
    const state = stateOf(request);
    const abortReason = state?.ctx.aborted ? state.ctx.abortReason : undefined;
    const error = toHangproofError(err, abortReason);
    if (state !== undefined) {
      state.errorCode = error.code;
      state.err = err;
    }
    if (error.retryAfterSec !== undefined) reply.header('retry-after', String(Math.ceil(error.retryAfterSec)));
    reply.code(error.statusCode).send(errorBody(error, request.id));
  });

  app.setNotFoundHandler((_request, reply) => {
    reply.send(new HangproofError('NOT_FOUND', { message: 'no route matches this method and path' }));
  });

  if (opts.healthPath !== false) {
    probePaths.add(opts.healthPath);
    const startedAt = Date.now();
    app.get(opts.healthPath, (_request, reply) => {
      reply.send({ status: 'ok', uptimeSec: Math.round((Date.now() - startedAt) / 1000) });
    });
  }
  if (opts.readyPath !== false) {
    probePaths.add(opts.readyPath);
    app.get(opts.readyPath, async (_request, reply) => {
      const report = await readiness.evaluate();
      reply.code(report.ready ? 200 : 503);
      return { status: report.ready ? 'ready' : 'not_ready', ...report };
    });
  }

  function finish(request: FastifyRequest, reply: FastifyReply, state: EdgeState): void {
    const { ctx } = state;
    const durationMs = ctx.elapsedMs();
    let statusCode = reply.raw.statusCode;
    let errorCode = state.errorCode;
    if (request.raw.headers.upgrade !== undefined && reply.sent) {
      // An upgraded connection (WebSocket) the route took over: it ends when the socket closes.
      statusCode = 101;
    } else if (!reply.raw.writableEnded) {
      ctx.abort(new HangproofError('CLIENT_CLOSED_REQUEST'));
      statusCode = 499;
      errorCode = 'CLIENT_CLOSED_REQUEST';
    }
    ctx.end();
    inFlight.delete(ctx);
    const route = ctx.name;
    const q = request.url.indexOf('?');
    const outcome: RequestOutcome = {
      method: request.method,
      route,
      // The query string is left out: it may carry tokens.
      path: q < 0 ? request.url : request.url.slice(0, q),
      statusCode,
      errorCode,
      durationMs,
      err: state.err,
    };
    const level = probePaths.has(route) && opts.quietProbes && statusCode < 500 ? 'debug' : levelFor(outcome, opts);
    writeRequestLog(logger, ctx, outcome, level);
    publish(channels.requestEnd, () => ({ ctx, method: request.method, route, statusCode, errorCode, durationMs }));
  }
}

function restoreContext(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
  const ctx = request.hangproof;
  if (ctx === null) done();
  else runWithContext(ctx, done);
}

/**
 * Settles with the handler's promise, or rejects with the abort reason as soon as the request's
 * signal aborts. The request's one abort listener (answerAbort) triggers the rejection, so a
 * handler costs no listener of its own.
 */
function raceHandler(state: EdgeState, result: PromiseLike<unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (state.ctx.aborted) {
      reject(state.ctx.abortReason);
      return;
    }
    state.rejectRace = reject;
    result.then(
      (value) => {
        state.rejectRace = undefined;
        state.handlerEndedAt = performance.now();
        resolve(value);
      },
      (err: unknown) => {
        state.rejectRace = undefined;
        reject(err);
      },
    );
  });
}

/** Ends the request at its abort: rejects the raced handler, or sends the 504 itself (hooks, body, sync handlers). */
function answerAbort(reply: FastifyReply, state: EdgeState): void {
  const reason = state.ctx.abortReason;
  if (reason === undefined) return;
  if (state.rejectRace !== undefined) {
    const reject = state.rejectRace;
    state.rejectRace = undefined;
    reject(reason);
    return;
  }
  if (reason.code === 'CLIENT_CLOSED_REQUEST' || reply.sent || state.responding) return;
  if (reply.raw.headersSent) {
    // A streamed response had already begun: a 504 can no longer be sent, so cut it short.
    state.errorCode = reason.code;
    reply.raw.destroy(reason);
    return;
  }
  reply.send(reason);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * The hangproof Fastify plugin: every request gets an ID, a deadline carried in AsyncLocalStorage,
 * spans, one structured log line, and a 504 REQUEST_TIMEOUT at its deadline even when the handler
 * never returns. Register it before your routes.
 */
export const hangproof = fp(hangproofPlugin, { fastify: '5.x', name: 'hangproof' });
