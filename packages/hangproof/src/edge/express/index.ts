/** hangproof/express: the request edge for Express 4 and 5 (and NestJS on Express). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { runWithContext } from '../../core/index.js';
import { HangproofError } from '../../errors.js';
import { NodeEdge, type NodeEdgeOptions } from '../node-edge.js';

export { NodeEdge, type NodeEdgeOptions } from '../node-edge.js';
export { installShutdown, type ShutdownHandle, type ShutdownOptions, type ShutdownTarget } from '../shutdown.js';

/** The parts of Express's request this adapter reads (typed here so Express stays an optional peer). */
interface ExpressRequest extends IncomingMessage {
  readonly baseUrl?: string;
  readonly route?: { readonly path?: unknown };
}
type Next = (err?: unknown) => void;

/** What `hangproofExpress` gives: the middleware first in the app, the error handler last. */
export interface HangproofExpress {
  /** Register first (`app.use(hp.middleware)`), before body parsers and routes. */
  readonly middleware: (req: IncomingMessage, res: ServerResponse, next: Next) => void;
  /**
   * Register after your routes and your own error middleware (`app.use(hp.errorHandler)`): it
   * answers every error in the error shape. Errors of a request hangproof already answered
   * (deadline, overload, draining) stop here, whatever handler came before.
   */
  readonly errorHandler: (err: unknown, req: IncomingMessage, res: ServerResponse, next: Next) => void;
  /** Register after your routes (`app.use(hp.notFound)`): 404 NOT_FOUND in the error shape. */
  readonly notFound: (req: IncomingMessage, res: ServerResponse) => void;
  readonly edge: NodeEdge;
}

const NOT_FOUND = new HangproofError('NOT_FOUND', { message: 'no route matches this method and path' });

/**
 * The hangproof edge for Express: request ids, the deadline in AsyncLocalStorage, a 504
 * REQUEST_TIMEOUT at the deadline even when a handler never answers, refusals before any work,
 * `/healthz` and `/readyz`, the error shape, one log line named by the matched route.
 */
export function hangproofExpress(options: NodeEdgeOptions = {}): HangproofExpress {
  // The route is known once Express has matched one: it names the request when it ends.
  const edge = new NodeEdge(options, (res) => {
    const req = (res as ServerResponse & { req?: ExpressRequest }).req;
    const path = req?.route?.path;
    return typeof path === 'string' ? `${req?.baseUrl ?? ''}${path}` : undefined;
  });
  return {
    edge,
    notFound: (_req, res) => edge.fail(res, NOT_FOUND),
    middleware: (req, res, next) => {
      edge.begin(req, res, '', (ctx) => runWithContext(ctx, next));
    },
    errorHandler: (err, _req, res, next) => {
      // Already answered by hangproof (the deadline's 504, draining): the handler's error came too
      // late. Passed on, Express' final handler would print it and destroy the keep-alive socket.
      if (edge.answeredAtAbort(res)) return;
      if (res.headersSent) {
        next(err);
        return;
      }
      edge.fail(res, err);
    },
  };
}
