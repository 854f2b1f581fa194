import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import { refusalBody } from '../core/index.js';
import type { HangproofError } from '../errors.js';

/**
 * The node:http server's own request listener, in front of the framework's: while the service
 * refuses work (overloaded, draining) a request is answered here, before the framework builds its
 * request and reply, routes, or runs a hook. A refusal then costs about what node:http itself
 * costs, so refusing stays far cheaper than serving. The plugin installs `refuse` when it starts.
 */
export interface FrontDoor {
  /** Answers `req` when it is to be refused, and says so; undefined until the plugin is registered. */
  refuse: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
}

const kFrontDoor = Symbol.for('hangproof.front-door');

/** The front door of a server built by `frontDoorServerFactory`, if it has one. */
export function frontDoorOf(server: unknown): FrontDoor | undefined {
  return (server as { [kFrontDoor]?: FrontDoor } | null)?.[kFrontDoor];
}

/** What Fastify passes to a serverFactory (the fields it would use to build its own server). */
interface FactoryOptions {
  readonly http?: object | null;
  readonly https?: HttpsOptions | true | null;
  readonly http2?: boolean;
  readonly keepAliveTimeout?: number;
  readonly requestTimeout?: number;
  readonly connectionTimeout?: number;
  readonly maxRequestsPerSocket?: number;
}

/**
 * A Fastify `serverFactory` that builds the HTTP/1 server Fastify would build (same options and
 * timeouts), with a front door before Fastify's handler.
 */
export function frontDoorServerFactory(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: FactoryOptions,
): Server {
  if (options.http2 === true) {
    throw new TypeError('serverOptions() builds an HTTP/1 server; for http2 pass { frontDoor: false }');
  }
  const door: FrontDoor = { refuse: undefined };
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    if (door.refuse?.(req, res) === true) return;
    handler(req, res);
  };
  const server: Server =
    options.https === undefined || options.https === null
      ? createHttpServer(options.http ?? {}, listener)
      : createHttpsServer(options.https === true ? {} : options.https, listener);
  if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout;
  if (options.requestTimeout !== undefined) server.requestTimeout = options.requestTimeout;
  server.setTimeout(options.connectionTimeout ?? 0);
  if (options.maxRequestsPerSocket !== undefined && options.maxRequestsPerSocket > 0)
    server.maxRequestsPerSocket = options.maxRequestsPerSocket;
  (server as Server & { [kFrontDoor]?: FrontDoor })[kFrontDoor] = door;
  return server;
}

/** Answers a refusal on a raw response: status, request id, Retry-After, a prebuilt body. */
export function writeRefusal(res: ServerResponse, error: HangproofError, requestId: string, closing: boolean): void {
  const body = refusalBody(error, requestId);
  // One writeHead with a flat header list: no header map is built for a refusal.
  const headers = [
    'x-request-id',
    requestId,
    'content-type',
    'application/json; charset=utf-8',
    'content-length',
    String(Buffer.byteLength(body)),
  ];
  if (error.retryAfterSec !== undefined) headers.push('retry-after', String(Math.ceil(error.retryAfterSec)));
  if (closing) headers.push('connection', 'close');
  res.writeHead(error.statusCode, headers);
  res.end(body);
}
