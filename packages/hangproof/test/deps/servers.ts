/**
 * Real misbehaving servers on 127.0.0.1 for the dependency tests: they hang, answer late, reset
 * connections, answer 503, or flap between healthy and failing. Every server records the requests
 * it saw so tests can count attempts and read the headers that arrived.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { after, before } from 'node:test';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly at: number;
}

export interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  /** Requests seen on `path` (query string ignored). */
  count(path: string): number;
  /** Flapping routes (/flap, /health) answer 200 when true, 503 when false. */
  healthy: boolean;
  close(): Promise<void>;
}

/**
 * Routes:
 *   /ok               200 {"ok":true}
 *   /hang             accepts, reads the request, never answers
 *   /slow?ms=N        answers 200 after N ms
 *   /reset            resets the TCP connection (RST)
 *   /destroy          closes the socket without an answer
 *   /status/N         answers status N
 *   /flap, /health    200 while `healthy`, else 503
 *   /health-hang      never answers
 *   /big?bytes=N      200 with an N-byte body
 */
export async function startTestServer(): Promise<TestServer> {
  const seen: SeenRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const state = { healthy: true };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push({ method: req.method ?? 'GET', path: url.pathname, headers: req.headers, at: performance.now() });
    req.resume();
    req.on('end', () => {
      const json = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      switch (url.pathname) {
        case '/ok':
          return json(200, { ok: true });
        case '/hang':
        case '/health-hang':
          return;
        case '/slow': {
          const t = setTimeout(
            () => {
              timers.delete(t);
              json(200, { ok: true, slow: true });
            },
            Number(url.searchParams.get('ms') ?? '1000'),
          );
          timers.add(t);
          return;
        }
        case '/reset':
          req.socket.resetAndDestroy();
          return;
        case '/destroy':
          req.socket.destroy();
          return;
        case '/flap':
        case '/health':
          return state.healthy ? json(200, { ok: true }) : json(503, { ok: false });
        case '/big':
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          return res.end(Buffer.alloc(Number(url.searchParams.get('bytes') ?? '0')));
        default: {
          const m = /^\/status\/(\d{3})$/.exec(url.pathname);
          if (m !== null) return json(Number(m[1]), { status: Number(m[1]) });
          return json(404, { error: 'no such route' });
        }
      }
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    seen,
    count: (path) => seen.filter((s) => s.path === path).length,
    get healthy() {
      return state.healthy;
    },
    set healthy(v: boolean) {
      state.healthy = v;
    },
    close: async () => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP server that accepts connections and never reads or writes a byte. */
export async function startSilentTcpServer(): Promise<{ url: string; accepted: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createNetServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    accepted: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 nothing listens on: connections are refused. */
export async function refusedUrl(): Promise<string> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${address.port}`;
}

/**
 * Starts the test server before the file's tests and closes `deps` and the server after them.
 * Read the server from the returned holder inside tests (it exists once `before` ran).
 */
export function useTestServer(deps: { close(): Promise<void> }): { readonly server: TestServer } {
  const holder = {} as { server: TestServer };
  before(async () => {
    holder.server = await startTestServer();
  });
  after(async () => {
    await deps.close();
    await holder.server.close();
  });
  return holder;
}
