import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** How a simulated provider misbehaves right now. */
export type ProviderMode = 'ok' | 'hang' | 'error' | 'reset';
export const PROVIDER_MODES: readonly ProviderMode[] = ['ok', 'hang', 'error', 'reset'];

/** The fault state a provider accepts on `PUT /__control`. */
export interface ProviderControl {
  /** `hang` never answers, `error` answers 503, `reset` drops the connection. @default 'ok' */
  readonly mode: ProviderMode;
  /** Added before every answer, in ms (0..60 000). @default 0 */
  readonly latencyMs: number;
  /** The fault ends by itself after this long, in ms (1 000..3 600 000). @default 60 000 */
  readonly durationMs: number;
}

/** A route of a simulated provider: returns the JSON body, or undefined for 404. */
export type ProviderRoute = (url: URL, body: unknown) => unknown;

export interface SimulatedProviderOptions {
  /** Name shown in answers and logs, e.g. `market-data`. */
  readonly name: string;
  /** `METHOD /path` to handler; the path is matched exactly, query strings go to the handler. */
  readonly routes: Readonly<Record<string, ProviderRoute>>;
  /** @default 0 (a free port) */
  readonly port?: number;
}

export interface SimulatedProvider {
  readonly name: string;
  readonly url: string;
  /** Sets a fault directly (tests); the HTTP control endpoint does the same. */
  control(input: Partial<ProviderControl>): ProviderControl & { expiresAt: string | null };
  state(): ProviderControl & { expiresAt: string | null };
  /** Stops listening and destroys every socket, hung ones included. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;
const MAX_LATENCY_MS = 60_000;
const MAX_FAULT_MS = 3_600_000;
const DEFAULT_FAULT_MS = 60_000;

/**
 * A fake upstream (market data, broker) on 127.0.0.1 whose behaviour can be switched at run time
 * through `PUT /__control` (`{"mode":"hang","durationMs":30000}`): the desk's fault switchboard
 * uses that to show what a hanging or failing provider does (and does not do) to the pages.
 * Every fault expires by itself.
 */
export async function startSimulatedProvider(options: SimulatedProviderOptions): Promise<SimulatedProvider> {
  let mode: ProviderMode = 'ok';
  let latencyMs = 0;
  let durationMs = DEFAULT_FAULT_MS;
  let expiresAt = 0;
  const sockets = new Set<Socket>();
  const hung = new Set<ServerResponse>();

  const current = (): ProviderControl & { expiresAt: string | null } => {
    if (expiresAt !== 0 && Date.now() >= expiresAt) {
      mode = 'ok';
      latencyMs = 0;
      expiresAt = 0;
    }
    return { mode, latencyMs, durationMs, expiresAt: expiresAt === 0 ? null : new Date(expiresAt).toISOString() };
  };

  const control = (input: Partial<ProviderControl>): ProviderControl & { expiresAt: string | null } => {
    const m = input.mode ?? 'ok';
    const l = input.latencyMs ?? 0;
    const d = input.durationMs ?? DEFAULT_FAULT_MS;
    if (!PROVIDER_MODES.includes(m))
      throw new RangeError(`mode must be one of ${PROVIDER_MODES.join(', ')}, received ${String(m)}`);
    if (!(Number.isInteger(l) && l >= 0 && l <= MAX_LATENCY_MS))
      throw new RangeError(`latencyMs must be 0..${MAX_LATENCY_MS}, received ${l}`);
    if (!(Number.isInteger(d) && d >= 1_000 && d <= MAX_FAULT_MS))
      throw new RangeError(`durationMs must be 1000..${MAX_FAULT_MS}, received ${d}`);
    mode = m;
    latencyMs = l;
    durationMs = d;
    expiresAt = m === 'ok' && l === 0 ? 0 : Date.now() + d;
    if (m !== 'hang') {
      // Requests hanging from a previous fault are answered (with an error) once the fault changes.
      for (const res of hung) send(res, 503, { error: 'fault cleared' });
      hung.clear();
    }
    return current();
  };

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(() => send(res, 500, { error: 'internal' }));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://provider.local');
    const body = await readBody(req);
    if (url.pathname === '/__control') {
      if (req.method === 'GET') return send(res, 200, current());
      if (req.method === 'PUT' || req.method === 'POST') {
        try {
          return send(res, 200, control((body ?? {}) as Partial<ProviderControl>));
        } catch (err) {
          return send(res, 400, { error: (err as Error).message });
        }
      }
      return send(res, 405, { error: 'method not allowed' });
    }
    const state = current();
    if (state.latencyMs > 0) await delay(state.latencyMs);
    const now = current();
    if (now.mode === 'hang') {
      hung.add(res);
      res.once('close', () => hung.delete(res));
      return;
    }
    if (now.mode === 'reset') {
      req.socket.destroy();
      return;
    }
    if (now.mode === 'error') return send(res, 503, { error: `${options.name} unavailable` });
    const route = options.routes[`${req.method} ${url.pathname}`];
    const result = route === undefined ? undefined : route(url, body);
    if (result === undefined) return send(res, 404, { error: 'not found' });
    send(res, 200, result);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;

  return {
    name: options.name,
    url: `http://127.0.0.1:${port}`,
    control,
    state: current,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  if (req.method === 'GET' || req.method === 'HEAD') {
    req.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
