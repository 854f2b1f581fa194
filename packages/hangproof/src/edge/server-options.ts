import type { Socket } from 'node:net';
import { type FastifyServerOptions, LogController } from 'fastify';
import type { Logger } from 'pino';
import { resolveRequestId } from '../core/index.js';
import { errorBody, type HangproofCode, HangproofError } from '../errors.js';
import { frontDoorServerFactory } from './front-door.js';

/** Options that shape the Node server under Fastify so its timeouts nest around the deadlines. */
export interface ServerTimeoutOptions {
  /** The longest deadline of any route, in ms. @default 10_000 */
  readonly maxDeadlineMs?: number;
  /**
   * Idle keep-alive time of server sockets, in ms. Must exceed the idle timeout of the proxy or load
   * balancer in front (nginx `keepalive_timeout` upstream, ALB 60 s), so the proxy, not the server,
   * closes idle sockets; otherwise the proxy may reuse a socket the server is closing and answer 502.
   * @default 72_000
   */
  readonly keepAliveTimeoutMs?: number;
  /** Time a client has to send all request headers, in ms. @default 10_000 */
  readonly headersTimeoutMs?: number;
  /** Largest accepted request body, in bytes. @default 1_048_576 */
  readonly bodyLimitBytes?: number;
  /** Logger Fastify uses for its own messages. @default none */
  readonly logger?: Logger;
  /**
   * Refuse requests (overloaded, draining) in the node:http server's own listener, before Fastify
   * routes them (see front-door.ts). `false` for a server Fastify builds itself (needed for
   * http2). @default true
   */
  readonly frontDoor?: boolean;
}

export const SERVER_DEFAULTS = Object.freeze({
  maxDeadlineMs: 10_000,
  keepAliveTimeoutMs: 72_000,
  headersTimeoutMs: 10_000,
  bodyLimitBytes: 1_048_576,
});

/** The Node/Fastify server timeouts hangproof derives; shown in docs and in /status.json settings. */
export interface DerivedServerTimeouts {
  readonly requestTimeout: number;
  readonly headersTimeout: number;
  readonly keepAliveTimeout: number;
}

export function deriveServerTimeouts(input: ServerTimeoutOptions = {}): DerivedServerTimeouts {
  const o = { ...SERVER_DEFAULTS, ...input };
  for (const key of ['maxDeadlineMs', 'keepAliveTimeoutMs', 'headersTimeoutMs'] as const) {
    if (!(o[key] > 0)) throw new RangeError(`${key} must be a positive number of ms, received ${o[key]}`);
  }
  // Receiving the request (headers and body) counts against the deadline, which starts when the
  // headers are in; the socket-level limit sits just outside it so the deadline's 504 comes first
  // and requestTimeout only catches clients that trickle a body forever.
  const requestTimeout = o.maxDeadlineMs + o.headersTimeoutMs + 1000;
  return {
    requestTimeout,
    headersTimeout: Math.min(o.headersTimeoutMs, requestTimeout),
    keepAliveTimeout: o.keepAliveTimeoutMs,
  };
}

/**
 * Fastify constructor options for a hangproof service: request IDs from a valid `X-Request-ID`
 * (else a UUID), Node server timeouts derived from the deadlines, the hangproof error shape even
 * for errors Node's HTTP parser raises before Fastify sees a request (over-long headers), and
 * Fastify's own request logging off (the plugin writes one line per request instead).
 *
 * @example const app = Fastify(serverOptions({ maxDeadlineMs: 10_000 }));
 */
export function serverOptions(input: ServerTimeoutOptions = {}): FastifyServerOptions {
  const t = deriveServerTimeouts(input);
  return {
    genReqId: (req) => resolveRequestId(req.headers['x-request-id']),
    logController: new LogController({ requestIdLogLabel: 'request_id', disableRequestLogging: true }),
    requestTimeout: t.requestTimeout,
    keepAliveTimeout: t.keepAliveTimeout,
    http: { headersTimeout: t.headersTimeout },
    bodyLimit: input.bodyLimitBytes ?? SERVER_DEFAULTS.bodyLimitBytes,
    // hangproof answers 503 SHUTTING_DOWN itself, in its own error shape.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    clientErrorHandler: answerClientError,
    ...(input.frontDoor === false ? {} : { serverFactory: frontDoorServerFactory }),
    ...(input.logger === undefined ? {} : { loggerInstance: input.logger }),
  } as FastifyServerOptions;
}

const CLIENT_ERRORS: Readonly<Record<string, HangproofCode>> = {
  HPE_HEADER_OVERFLOW: 'HEADERS_TOO_LARGE',
  ERR_HTTP_REQUEST_TIMEOUT: 'REQUEST_RECEIVE_TIMEOUT',
};

/** Errors from Node's HTTP parser (before any request exists) still get the hangproof shape. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const error = new HangproofError(CLIENT_ERRORS[err.code ?? ''] ?? 'BAD_REQUEST');
  const body = JSON.stringify(errorBody(error, resolveRequestId(undefined)));
  socket.end(
    `HTTP/1.1 ${error.statusCode} ${error.code}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
