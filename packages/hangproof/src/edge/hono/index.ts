/** hangproof/hono: the request edge for Hono on @hono/node-server. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type RequestContext, runWithContext } from '../../core/index.js';
import { NodeEdge, type NodeEdgeOptions } from '../node-edge.js';

export { NodeEdge, type NodeEdgeOptions } from '../node-edge.js';
export { installShutdown, type ShutdownHandle, type ShutdownOptions, type ShutdownTarget } from '../shutdown.js';

/** The parts of Hono's context this adapter uses (typed here so Hono stays an optional peer). */
interface HonoContext {
  readonly env: { readonly incoming?: IncomingMessage; readonly outgoing?: ServerResponse } | undefined;
  readonly req: { readonly routePath?: string };
  res: Response;
}
type HonoNext = () => Promise<void>;

/** What `hangproofHono` gives: the middleware for `app.use('*', ...)` and the edge. */
export interface HangproofHono {
  readonly middleware: (c: HonoContext, next: HonoNext) => Promise<Response | undefined>;
  /**
   * For `app.onError(hp.onError(yourHandler))`: a request hangproof already answered (deadline,
   * overload, draining) keeps its answer; every other error goes to your handler, or gets the
   * error shape without one.
   */
  onError(
    handler?: (err: Error, c: HonoContext) => Response | Promise<Response>,
  ): (err: Error, c: HonoContext) => Response | Promise<Response>;
  readonly edge: NodeEdge;
}

/**
 * What the middleware returns for a request the edge has answered on the node response itself
 * (refused, a probe, the deadline's 504): @hono/node-server skips writing a response that carries
 * this header (its RESPONSE_ALREADY_SENT).
 */
const alreadySent = (): Response => new Response(null, { headers: { 'x-hono-already-sent': 'true' } });

/**
 * The hangproof edge for Hono on @hono/node-server: the request is handled by the same edge as a
 * plain node:http listener (it owns the node response: ids, deadline, refusals, probes, the log
 * line), and the middleware runs the rest of the chain inside the request's context. At the
 * deadline the edge answers 504 on the node response itself; the late result of the handler is
 * dropped by @hono/node-server, which finds the response already ended.
 */
export function hangproofHono(options: NodeEdgeOptions = {}): HangproofHono {
  const edge = new NodeEdge(options);
  const answered = (c: HonoContext): boolean => c.env?.outgoing?.writableEnded === true;
  return {
    edge,
    middleware: (c, next) => {
      const req = c.env?.incoming;
      const res = c.env?.outgoing;
      if (req === undefined || res === undefined) {
        throw new TypeError('hangproof/hono needs @hono/node-server (c.env.incoming and c.env.outgoing)');
      }
      return new Promise<Response | undefined>((resolve, reject) => {
        let started: RequestContext | undefined;
        edge.begin(req, res, c.req.routePath ?? '', (ctx) => {
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
        // Refused or a probe (readiness answers asynchronously): the edge answers on the node response.
        if (started === undefined && res.writableEnded) resolve(alreadySent());
        else if (started === undefined) res.once('finish', () => resolve(alreadySent()));
      });
    },
    onError: (handler) => (err, c) => {
      if (answered(c)) return alreadySent();
      const res = c.env?.outgoing;
      if (handler !== undefined && !(res !== undefined && edge.contextOf(res)?.aborted === true))
        return handler(err, c);
      if (res !== undefined) edge.fail(res, err);
      return alreadySent();
    },
  };
}
