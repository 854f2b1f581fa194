/** hangproof/hono: the request edge for Hono on @hono/node-server. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context, ErrorHandler, MiddlewareHandler, NotFoundHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { type RequestContext, runWithContext } from '../../core/index.js';
import { HangproofError } from '../../errors.js';
import { NodeEdge, type NodeEdgeOptions } from '../node-edge.js';

export { NodeEdge, type NodeEdgeOptions } from '../node-edge.js';
export { installShutdown, type ShutdownHandle, type ShutdownOptions, type ShutdownTarget } from '../shutdown.js';

/** The bindings @hono/node-server gives every request: its node request and response. */
interface NodeBindings {
  readonly incoming?: IncomingMessage;
  readonly outgoing?: ServerResponse;
}
const nodeOf = (c: Context): NodeBindings => (c.env ?? {}) as NodeBindings;

/** What `hangproofHono` gives: the middleware, the error and not-found handlers, and the edge. */
export interface HangproofHono {
  /** Register first: `app.use('*', hp.middleware)`. */
  readonly middleware: MiddlewareHandler;
  /**
   * For `app.onError(hp.onError(yourHandler))`: a request hangproof already answered (deadline,
   * overload, draining) keeps its answer; every other error goes to your handler, or gets the
   * error shape without one.
   */
  onError(handler?: ErrorHandler): ErrorHandler;
  /** For `app.notFound(hp.notFound)`: 404 NOT_FOUND in the error shape. */
  readonly notFound: NotFoundHandler;
  readonly edge: NodeEdge;
}

const NOT_FOUND = new HangproofError('NOT_FOUND', { message: 'no route matches this method and path' });

/**
 * What the middleware returns for a request the edge has answered on the node response itself
 * (refused, a probe, the deadline's 504): @hono/node-server writes nothing for it.
 */
const alreadySent = (): Response => RESPONSE_ALREADY_SENT;

/**
 * The hangproof edge for Hono on @hono/node-server: the request is handled by the same edge as a
 * plain node:http listener (it owns the node response: ids, deadline, refusals, probes, the log
 * line), and the middleware runs the rest of the chain inside the request's context. At the
 * deadline the edge answers 504 on the node response itself and the middleware returns at once;
 * the handler's late result is never written.
 */
export function hangproofHono(options: NodeEdgeOptions = {}): HangproofHono {
  const edge = new NodeEdge(options);
  const answered = (c: Context): boolean => nodeOf(c).outgoing?.writableEnded === true;
  return {
    edge,
    middleware: (c, next) => {
      const { incoming: req, outgoing: res } = nodeOf(c);
      if (req === undefined || res === undefined) {
        throw new TypeError('hangproof/hono needs @hono/node-server (c.env.incoming and c.env.outgoing)');
      }
      return new Promise<Response | undefined>((resolve, reject) => {
        let started: RequestContext | undefined;
        // The route the request matched (the last handler that is not a middleware), before it runs.
        const route = matchedRoutes(c).findLast((r) => r.method !== 'ALL')?.path ?? '';
        edge.begin(req, res, route, (ctx) => {
          started = ctx;
          // At the deadline the edge has sent the 504: the chain's late result is not waited for.
          const stop = ctx.watchAbort(() => resolve(alreadySent()));
          runWithContext(ctx, () => next()).then(
            () => {
              stop();
              resolve(answered(c) ? alreadySent() : undefined);
            },
            (err: unknown) => {
              stop();
              reject(err);
            },
          );
        });
        // Refused or a probe (readiness answers asynchronously): the edge answers on the node
        // response. 'close' comes after the answer is written and also when the client leaves
        // first, when 'finish' never would.
        if (started === undefined && res.writableEnded) resolve(alreadySent());
        else if (started === undefined) res.once('close', () => resolve(alreadySent()));
      });
    },
    notFound: (c) => {
      const res = nodeOf(c).outgoing;
      if (res !== undefined) edge.fail(res, NOT_FOUND);
      return alreadySent();
    },
    onError: (handler) => (err, c) => {
      if (answered(c)) return alreadySent();
      const res = nodeOf(c).outgoing;
      const ownAnswer = res !== undefined && edge.contextOf(res)?.aborted === true;
      if (handler !== undefined && !ownAnswer) return handler(err, c);
      if (res !== undefined) edge.fail(res, err);
      return alreadySent();
    },
  };
}
