import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { pino } from 'pino';
import {
  formatServerTiming,
  type InFlightRequests,
  type RequestContext,
  RequestLifecycle,
  resolveRequestId,
  runWithContext,
} from '../core/index.js';
import { errorBody, HangproofError } from '../errors.js';
import { createAdminTokenCheck } from './admin-token.js';
import { pinoLoggerOf } from './framework-logger.js';
import { frontDoorOf } from './front-door.js';
import {
  type HangproofOptions,
  type ResolvedHangproofOptions,
  type RouteHangproofConfig,
  resolveHangproofOptions,
} from './options.js';
import { Readiness, type ReadinessCheck, type ReadinessCheckOptions, type ReadinessReport } from './readiness.js';
import { RefusalPacer } from './refusal-pacer.js';
import { toHangproofError } from './to-hangproof-error.js';

/** What the plugin adds to the Fastify instance as `app.hangproof`. */
export interface HangproofApi {
  readonly options: ResolvedHangproofOptions;
  /** The framework-neutral request lifecycle behind the plugin (observe installs its overload guard here). */
  readonly lifecycle: RequestLifecycle;
  /** Registers a check `/readyz` runs (with a timeout, cached). */
  addReadinessCheck(name: string, check: ReadinessCheck, options?: ReadinessCheckOptions): void;
  /** The current readiness answer (cached like `/readyz`). */
  readiness(): Promise<ReadinessReport>;
  /** Contexts of the requests in flight right now. */
  inFlight(): InFlightRequests;
  /** True when the request carries the configured admin token. */
  isAdmin(request: FastifyRequest): boolean;
  /** Turns `/readyz` to 503 and answers new requests 503 SHUTTING_DOWN. Called by installShutdown. */
  beginShutdown(): void;
  readonly shuttingDown: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    hangproof: HangproofApi;
  }
  interface FastifyRequest {
    /** The hangproof context of this request (deadline, signal, spans); null for a refused request. */
    hangproof: RequestContext | null;
  }
  interface FastifyContextConfig {
    hangproof?: RouteHangproofConfig;
  }
}

// Per-request state of the adapter, kept in reply decorations (fields of Fastify's Reply, set up
// once by decorateReply) so a request allocates no state object and no closure for it.
/**
 * performance.now() when an async handler resolved: from there to the headers is serialization,
 * and a deadline firing after it must not send a second answer.
 */
const kHandlerEndedAt = Symbol('hangproof.handler-ended-at');
/** The request holds a slot of observe's overload guard, given back at its end. */
const kAdmitted = Symbol('hangproof.admitted');
/** The raw response's way back to its reply, for the shared 'close' listener. */
const kReply = Symbol('hangproof.reply');

interface EdgeReply extends FastifyReply {
  [kHandlerEndedAt]: number;
  [kAdmitted]: boolean;
}
type TaggedResponse = ServerResponse & { [kReply]?: EdgeReply | undefined };

const CLIENT_CLOSED = new HangproofError('CLIENT_CLOSED_REQUEST');
const NOT_FOUND = new HangproofError('NOT_FOUND', { message: 'no route matches this method and path' });

async function hangproofPlugin(app: FastifyInstance, input: HangproofOptions): Promise<void> {
  const opts = resolveHangproofOptions(input);
  const lifecycle = new RequestLifecycle({
    deadlineMs: opts.deadlineMs,
    slowWarnMs: opts.slowWarnMs,
    slowErrorMs: opts.slowErrorMs,
    // One logger convention: the application's own (Fastify's app.log), else pino on stdout.
    logger: opts.logger ?? pinoLoggerOf(app.log) ?? pino(),
    quietProbes: opts.quietProbes,
  });
  const isAdminToken = createAdminTokenCheck(opts.adminToken);
  const readiness = new Readiness(opts.readinessCacheMs);
  const pacer = new RefusalPacer(opts.refusalPauseMs);
  const beginShutdown = (): void => {
    readiness.markShuttingDown();
    const inFlight = lifecycle.beginShutdown() as FastifyReply[];
    pacer.flush();
    // While draining, each connection closes after its response: an idle keep-alive socket would
    // otherwise hold server.close() open until keepAliveTimeout.
    for (const reply of inFlight) if (!reply.raw.headersSent) reply.header('connection', 'close');
  };

  const isAdmin = (request: FastifyRequest): boolean => isAdminToken(request.headers['x-admin-token']);

  app.decorate('hangproof', {
    options: opts,
    lifecycle,
    addReadinessCheck: (name, check, options) => readiness.add(name, check, options),
    readiness: () => readiness.evaluate(),
    inFlight: () => lifecycle.inFlight,
    isAdmin,
    beginShutdown,
    get shuttingDown() {
      return lifecycle.shuttingDown;
    },
  } satisfies HangproofApi);
  app.decorateRequest('hangproof', null);
  app.decorateReply(kHandlerEndedAt, 0);
  app.decorateReply(kAdmitted, false);

  /** The shared 'close' listener of every response (`this` is the raw response). */
  function onResponseClose(this: TaggedResponse): void {
    const reply = this[kReply];
    const ctx = reply?.request.hangproof;
    if (reply === undefined || ctx === null || ctx === undefined) return;
    this[kReply] = undefined;
    let statusCode = this.statusCode;
    if (reply.request.raw.headers.upgrade !== undefined && reply.sent) {
      // An upgraded connection (WebSocket) the route took over: it ends when the socket closes.
      statusCode = 101;
    } else if (!this.writableEnded) {
      ctx.abort(CLIENT_CLOSED);
      statusCode = 499;
      ctx.errorCode = 'CLIENT_CLOSED_REQUEST';
    }
    ctx.statusCode = statusCode;
    const now = performance.now();
    // The serialization span, for the requests whose spans are read (slow ones: the detailed log
    // line, /status); admins got theirs in Server-Timing already.
    const handlerEndedAt = reply[kHandlerEndedAt];
    if (
      handlerEndedAt > 0 &&
      now - ctx.startedAt >= opts.slowWarnMs &&
      !ctx.spans.some((sp) => sp.kind === 'serialization')
    ) {
      ctx.addSpan({
        name: 'serialization',
        kind: 'serialization',
        startMs: handlerEndedAt - ctx.startedAt,
        durationMs: now - handlerEndedAt,
      });
    }
    lifecycle.end(ctx, reply[kAdmitted], now);
  }

  // With serverOptions(), refusals are answered in the server's own listener, before Fastify routes
  // the request; the onRequest hook below then takes the admitted request's slot in the same turn.
  const door = frontDoorOf(app.server);
  if (door !== undefined) {
    door.refuse = (req, res) => {
      const refusal = lifecycle.peek(req.url ?? '/');
      if (refusal === undefined) return false;
      pacer.refuse(req, res, refusal, resolveRequestId(req.headers['x-request-id']), lifecycle.shuttingDown);
      return true;
    };
  }

  app.addHook('onRequest', (request, reply, done) => {
    // Refusals (shutting down, overloaded) are decided before any context, span or log line.
    const admission = lifecycle.admit(request.url);
    if (typeof admission === 'object') {
      // Refused after routing (no front door): answered on the raw response, Fastify told so.
      reply.hijack();
      pacer.refuse(request.raw, reply.raw, admission, request.id, lifecycle.shuttingDown);
      return;
    }
    const edgeReply = reply as EdgeReply;
    // routeOptions is a getter that builds a new object on each access: read it once.
    const route = request.routeOptions;
    const ctx = lifecycle.begin({
      requestId: request.id,
      method: request.method,
      route: route.url ?? '',
      url: request.url,
      budgetMs: lifecycle.budgetFor(route.config?.hangproof?.deadlineMs, request.headers[opts.timeoutHeader]),
      onAbort: answerAbort,
      owner: reply,
    });
    request.hangproof = ctx;
    reply.header('x-request-id', ctx.requestId);
    if (lifecycle.shuttingDown) reply.header('connection', 'close');
    // Server-Timing only for admins: set as the headers go out, with the serialization span.
    if (opts.dangerouslyExposeServerTimingToAll || isAdmin(request)) addServerTiming(reply.raw, ctx, edgeReply);
    (reply.raw as TaggedResponse)[kReply] = edgeReply;
    reply.raw.on('close', onResponseClose);
    if (admission !== 'wait') {
      if (admission === 'admitted') {
        edgeReply[kAdmitted] = true;
        lifecycle.admitted(ctx);
      }
      runWithContext(ctx, done);
      return;
    }
    // The admission queue: a short bounded wait that ends with the request if it ends first.
    lifecycle.admission?.wait(ctx).then((refusal) => {
      if (ctx.aborted || ctx.ended || reply.sent) return;
      if (refusal !== undefined) return done(refusal);
      edgeReply[kAdmitted] = true;
      runWithContext(ctx, done);
    });
  });

  // A plain app.close() drains too, not only the signal handler: without this, a response that
  // completes after close() began leaves its keep-alive socket open, and close() then waits for
  // keepAliveTimeout (72 s by default) before it returns.
  app.addHook('preClose', (done) => {
    beginShutdown();
    done();
  });

  // Every handler registered after the plugin is watched by its request's deadline: a handler that
  // never settles still gets its 504 (answerAbort sends it), and what it settles with after that is
  // dropped instead of being sent twice.
  app.addHook('onRoute', (route: RouteOptions) => {
    const handler = route.handler;
    route.handler = function watched(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      const result: unknown = handler.call(this, request, reply);
      const ctx = request.hangproof;
      if (ctx === null || !isThenable(result)) return result;
      return dropWhenAnswered(ctx, reply as EdgeReply, result);
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
    const ctx = request.hangproof;
    const error = toHangproofError(err, ctx?.aborted ? ctx.abortReason : undefined);
    if (ctx !== null) {
      ctx.errorCode = error.code;
      ctx.err = err;
    }
    if (error.retryAfterSec !== undefined) reply.header('retry-after', String(Math.ceil(error.retryAfterSec)));
    reply.code(error.statusCode).send(errorBody(error, request.id));
  });

  // Sent as a plain payload: an application's own setErrorHandler must not turn it into a 500.
  app.setNotFoundHandler((request, reply) => {
    const ctx = request.hangproof;
    if (ctx !== null) ctx.errorCode = 'NOT_FOUND';
    sendError(reply, NOT_FOUND, request.id);
  });

  if (opts.healthPath !== false) {
    lifecycle.probePaths.add(opts.healthPath);
    const startedAt = Date.now();
    app.get(opts.healthPath, (_request, reply) => {
      reply.send({ status: 'ok', uptimeSec: Math.round((Date.now() - startedAt) / 1000) });
    });
  }
  if (opts.readyPath !== false) {
    lifecycle.probePaths.add(opts.readyPath);
    app.get(opts.readyPath, async (_request, reply) => {
      const report = await readiness.evaluate();
      reply.code(report.ready ? 200 : 503);
      return { status: report.ready ? 'ready' : 'not_ready', ...report };
    });
  }
}

function restoreContext(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
  const ctx = request.hangproof;
  if (ctx === null) done();
  else runWithContext(ctx, done);
}

/**
 * The handler's promise, with what it settles with after the request aborted dropped: by then
 * answerAbort has answered (or the client has gone), so a late value must not be sent twice and a
 * late failure (often the abort's own) must not reach Fastify, which would log it as an error.
 * One `then` and no promise of its own: every promise costs AsyncLocalStorage's hooks on Node 20.
 */
function dropWhenAnswered(ctx: RequestContext, reply: EdgeReply, result: PromiseLike<unknown>): PromiseLike<unknown> {
  return result.then(
    (value) => {
      if (ctx.aborted) return undefined;
      reply[kHandlerEndedAt] = performance.now();
      return value;
    },
    (err: unknown) => {
      if (ctx.aborted) return undefined;
      throw err;
    },
  );
}

/**
 * Ends the request at its abort (deadline, draining): sends the error body itself, as a plain
 * payload, so no error handler of the application (setErrorHandler) can turn the 504 into
 * something else. A response already streaming is cut short.
 */
function answerAbort(ctx: RequestContext): void {
  const reply = ctx.owner as EdgeReply;
  const reason = ctx.abortReason;
  if (reason === undefined) return;
  const responding = reply.sent || reply[kHandlerEndedAt] > 0;
  if (reason.code !== 'CLIENT_CLOSED_REQUEST' && !responding) {
    ctx.errorCode = reason.code;
    if (reply.raw.headersSent) {
      // A streamed response had already begun: a 504 can no longer be sent, so cut it short.
      reply.raw.destroy(reason);
    } else {
      sendError(reply, reason, ctx.requestId);
    }
  }
}

/** The error shape as a plain JSON payload: no error handler runs for it. */
function sendError(reply: FastifyReply, error: HangproofError, requestId: string): void {
  if (error.retryAfterSec !== undefined) reply.header('retry-after', String(Math.ceil(error.retryAfterSec)));
  reply
    .code(error.statusCode)
    .type('application/json; charset=utf-8')
    .send(JSON.stringify(errorBody(error, requestId)));
}

/** Sets Server-Timing (with the serialization span) just before this response's headers go out. */
function addServerTiming(res: ServerResponse, ctx: RequestContext, reply: EdgeReply): void {
  const writeHead = res.writeHead;
  res.writeHead = function writeHeadWithTiming(this: ServerResponse, ...args: unknown[]) {
    const handlerEndedAt = reply[kHandlerEndedAt];
    if (handlerEndedAt > 0) {
      ctx.addSpan({
        name: 'serialization',
        kind: 'serialization',
        startMs: handlerEndedAt - ctx.startedAt,
        durationMs: performance.now() - handlerEndedAt,
      });
    }
    if (!this.headersSent) this.setHeader('server-timing', formatServerTiming(ctx));
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as typeof res.writeHead;
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
