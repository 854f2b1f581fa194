/**
 * The probe thread: a small HTTP server on its own port that answers `/healthz` and `/readyz` from
 * the shared memory the main thread writes (ProbeMemory), so a probe never waits in the main
 * thread's queue of connections, parses and callbacks. Started by ProbeListener with
 * `new Worker(<this module>)`; it has no exports.
 *
 * Every bound is tight: the probe server accepts few connections, each must send its headers
 * within a second, and an idle keep-alive connection is closed after a second.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { ProbeMemory } from './probe-memory.js';

/** What ProbeListener passes as `workerData`. */
export interface ProbeThreadData {
  readonly buffer: SharedArrayBuffer;
  readonly host: string;
  readonly port: number;
  readonly stalledAfterMs: number;
  /** Period of the main thread's heartbeat, in ms. */
  readonly beatMs: number;
  readonly healthPath: string;
  readonly readyPath: string;
}

/** Messages the thread posts to the main thread. */
export type ProbeThreadMessage =
  | { readonly kind: 'listening'; readonly port: number }
  | { readonly kind: 'listen-error'; readonly code: string; readonly message: string }
  | { readonly kind: 'refresh-readiness' };

/** Probe connections open at once; kubelets and load balancers need a handful. */
const MAX_CONNECTIONS = 64;
/** Headers, whole request and idle keep-alive, each bounded to this, in ms. */
const SOCKET_BOUND_MS = 1000;
/** A /readyz asks the main thread to re-evaluate readiness at most this often, in ms. */
const REFRESH_EVERY_MS = 200;
/** Longest wait of a /readyz for the evaluation it asked for, in ms. */
const READY_WAIT_MS = 100;

const data = workerData as ProbeThreadData;
const port = parentPort;
if (port === null) throw new Error('probe-thread must run in a worker thread');
const memory = new ProbeMemory(data.buffer);
let refreshAskedAt = Number.NEGATIVE_INFINITY;

const server = createServer(
  {
    headersTimeout: SOCKET_BOUND_MS,
    requestTimeout: SOCKET_BOUND_MS,
    keepAliveTimeout: SOCKET_BOUND_MS,
    connectionsCheckingInterval: 250,
    maxHeaderSize: 8192,
  },
  answer,
);
server.maxConnections = MAX_CONNECTIONS;
server.maxRequestsPerSocket = 100;

function answer(req: IncomingMessage, res: ServerResponse): void {
  const q = req.url?.indexOf('?') ?? -1;
  const path = q < 0 ? req.url : req.url?.slice(0, q);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, { status: 'method_not_allowed' });
    return;
  }
  if (path === data.healthPath) health(res);
  else if (path === data.readyPath) ready(res);
  else send(res, 404, { status: 'not_found' });
}

/**
 * Liveness: the main loop beat recently. Its lag is the last beat's, or the time since the last
 * beat beyond its period when that is more (a beat that is late now).
 */
function health(res: ServerResponse): void {
  const age = memory.heartbeatAgeMs();
  if (age > data.stalledAfterMs) {
    send(res, 503, { status: 'stalled', stalledForMs: finite(age) });
    return;
  }
  send(res, 200, { status: 'ok', lagMs: Math.max(memory.lagMs, Math.round(age - data.beatMs)) });
}

/**
 * Readiness: the main loop is alive, not draining, and its last readiness evaluation passed. When
 * that evaluation is older than REFRESH_EVERY_MS, the main thread is asked for a new one and the
 * answer waits for it at most READY_WAIT_MS: a flooded main thread gets the last evaluation, never
 * a wait.
 */
function ready(res: ServerResponse): void {
  const now = performance.now();
  if (
    !memory.draining &&
    memory.readinessAgeMs() >= REFRESH_EVERY_MS &&
    now - refreshAskedAt >= REFRESH_EVERY_MS &&
    memory.heartbeatAgeMs() <= data.stalledAfterMs
  ) {
    refreshAskedAt = now;
    const seq = memory.readinessSeq;
    port?.postMessage({ kind: 'refresh-readiness' } satisfies ProbeThreadMessage);
    void memory.waitForReadiness(seq, READY_WAIT_MS).then(() => answerReady(res));
    return;
  }
  answerReady(res);
}

function answerReady(res: ServerResponse): void {
  const age = memory.heartbeatAgeMs();
  if (memory.draining) {
    send(res, 503, { status: 'not_ready', reason: 'draining', shuttingDown: true });
    return;
  }
  if (age > data.stalledAfterMs) {
    send(res, 503, { status: 'not_ready', reason: 'stalled', stalledForMs: finite(age) });
    return;
  }
  const checkedAgoMs = finite(memory.readinessAgeMs());
  const isReady = memory.ready;
  if (isReady === undefined) {
    send(res, 503, { status: 'not_ready', reason: 'not_checked_yet' });
    return;
  }
  if (!isReady) {
    send(res, 503, { status: 'not_ready', reason: 'checks_failed', checkedAgoMs });
    return;
  }
  send(res, 200, { status: 'ready', checkedAgoMs });
}

function send(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
  });
  res.end(json);
}

const finite = (ms: number): number => (Number.isFinite(ms) ? Math.round(ms) : -1);

server.on('error', (err: NodeJS.ErrnoException) => {
  port.postMessage({
    kind: 'listen-error',
    code: err.code ?? 'ERROR',
    message: err.message,
  } satisfies ProbeThreadMessage);
  port.close();
});
server.listen({ host: data.host, port: data.port }, () => {
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : data.port;
  port.postMessage({ kind: 'listening', port: bound } satisfies ProbeThreadMessage);
});
port.on('message', (message: unknown) => {
  if (message !== 'close') return;
  server.close(() => port.close());
  server.closeAllConnections();
});
