/** hangproof/http: the request edge for a plain node:http request listener. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { runWithContext } from '../../core/index.js';
import { NodeEdge, type NodeEdgeOptions } from '../node-edge.js';

export { NodeEdge, type NodeEdgeOptions } from '../node-edge.js';
export { installShutdown, type ShutdownHandle, type ShutdownOptions, type ShutdownTarget } from '../shutdown.js';

/** Options of withHangproof: the edge's, plus how a request's route is named. */
export interface HttpHangproofOptions extends NodeEdgeOptions {
  /**
   * The route pattern of a request, for the log line, metrics and application_name, e.g. from
   * your own router. Keep it low-cardinality: never the raw path. @default () => ''
   */
  readonly route?: ((req: IncomingMessage) => string) | undefined;
}

/** A node:http request listener, sync or async. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

/** The wrapped listener, with its edge (readiness checks, shutdown, the lifecycle). */
export interface HangproofListener {
  (req: IncomingMessage, res: ServerResponse): void;
  readonly edge: NodeEdge;
}

/**
 * Wraps a plain node:http request listener: every request gets an id, a deadline carried in
 * AsyncLocalStorage into its queries and calls, a 504 REQUEST_TIMEOUT at the deadline even when
 * the listener never answers, the error shape for a listener that throws or rejects, one log line,
 * `/healthz` and `/readyz`, and refusals (overload, draining) before any work.
 *
 * ```ts
 * const listener = withHangproof(async (req, res) => { ... }, { deadlineMs: 2_000 });
 * const server = http.createServer(listener);
 * installShutdown({ server, edge: listener.edge });
 * ```
 */
export function withHangproof(listener: RequestListener, options: HttpHangproofOptions = {}): HangproofListener {
  const edge = new NodeEdge(options);
  const routeOf = options.route;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    edge.begin(req, res, routeOf === undefined ? '' : routeOf(req), (ctx) =>
      runWithContext(ctx, () => {
        let result: unknown;
        try {
          result = listener(req, res);
        } catch (err) {
          edge.fail(res, err);
          return;
        }
        if (isThenable(result)) result.then(undefined, (err: unknown) => edge.fail(res, err));
      }),
    );
  };
  return Object.assign(handle, { edge });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
