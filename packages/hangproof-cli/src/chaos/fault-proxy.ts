/**
 * A TCP proxy that misbehaves on command, placed between a service and Postgres or a provider.
 *
 * Hand-written on node:net because nothing on npm fits: the HTTP proxies (http-proxy, undici's
 * ProxyAgent) work on requests, but Postgres speaks its own protocol over TCP; toxiproxy does
 * exactly this but is a Go server driven over its own HTTP API (another binary to install and to
 * keep bounded); the plain TCP forwarders on npm only forward. What is needed is ~150 lines:
 * forward bytes, delay them in order, drop them, or reset the sockets, with bounded buffers.
 */
import { createServer, type Server, Socket } from 'node:net';

/** `pass` forwards; the other modes are the faults (see ProxyFaultSpec). */
export type ProxyMode = 'pass' | 'latency' | 'blackhole' | 'reset';

export interface FaultProxyOptions {
  /** Port to listen on, on 127.0.0.1; 0 picks a free one. */
  readonly listenPort: number;
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  /** Longest wait for the upstream TCP connect, in ms. @default 3_000 */
  readonly connectTimeoutMs?: number;
  /**
   * Bytes a connection may have waiting in the latency queue (per direction); beyond it the
   * connection is destroyed rather than buffered without bound. @default 8 MiB
   */
  readonly maxQueuedBytes?: number;
}

export interface FaultProxyStats {
  readonly connections: number;
  readonly open: number;
  readonly droppedBytes: number;
  readonly resets: number;
}

interface Pair {
  readonly client: Socket;
  upstream: Socket | undefined;
  /** Set once the pair is wired: upstream bytes go through the same fault logic. */
  forwardToClient: ((chunk: Buffer) => void) | undefined;
  readonly timers: Set<NodeJS.Timeout>;
}

export class FaultProxy {
  readonly #o: Required<FaultProxyOptions>;
  readonly #pairs = new Set<Pair>();
  #server: Server | undefined;
  #mode: ProxyMode = 'pass';
  #latencyMs = 0;
  #connections = 0;
  #droppedBytes = 0;
  #resets = 0;

  constructor(options: FaultProxyOptions) {
    this.#o = { connectTimeoutMs: 3_000, maxQueuedBytes: 8 * 1024 * 1024, ...options };
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  get stats(): FaultProxyStats {
    return {
      connections: this.#connections,
      open: this.#pairs.size,
      droppedBytes: this.#droppedBytes,
      resets: this.#resets,
    };
  }

  /** Starts listening on 127.0.0.1; resolves the port. Rejects (EADDRINUSE...) without retrying. */
  async listen(): Promise<number> {
    const server = createServer((client) => this.#accept(client));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.listenPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as { port: number }).port;
  }

  /** Switches the behaviour for every open and future connection. */
  setMode(mode: ProxyMode, latencyMs = 0): void {
    this.#mode = mode;
    this.#latencyMs = latencyMs;
    if (mode === 'reset') for (const p of this.#pairs) this.#reset(p);
  }

  /** Stops listening and destroys every connection (bounded: no wait for peers). */
  async close(): Promise<void> {
    for (const p of this.#pairs) this.#destroy(p);
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }

  #accept(client: Socket): void {
    this.#connections++;
    const pair: Pair = { client, upstream: undefined, forwardToClient: undefined, timers: new Set() };
    this.#pairs.add(pair);
    client.on('error', () => {});
    client.on('close', () => this.#destroy(pair));
    if (this.#mode === 'reset') {
      this.#reset(pair);
      return;
    }
    const queued = { toUpstream: 0, toClient: 0 };
    const last = { toUpstream: 0, toClient: 0 };
    const forward = (dir: 'toUpstream' | 'toClient', chunk: Buffer): void => {
      if (this.#mode === 'blackhole') {
        this.#droppedBytes += chunk.length;
        return;
      }
      const target = dir === 'toUpstream' ? this.#upstream(pair) : pair.client;
      const delay = this.#mode === 'latency' ? this.#latencyMs : 0;
      // Chunks already waiting keep their order: a later chunk never overtakes an earlier one.
      const now = performance.now();
      const at = Math.max(now + delay, last[dir]);
      if (at <= now) {
        target.write(chunk);
        return;
      }
      last[dir] = at;
      queued[dir] += chunk.length;
      if (queued[dir] > this.#o.maxQueuedBytes) {
        this.#destroy(pair);
        return;
      }
      const timer = setTimeout(() => {
        pair.timers.delete(timer);
        queued[dir] -= chunk.length;
        if (!target.destroyed) target.write(chunk);
      }, at - now);
      pair.timers.add(timer);
    };
    client.on('data', (chunk: Buffer) => forward('toUpstream', chunk));
    pair.forwardToClient = (chunk: Buffer) => forward('toClient', chunk);
  }

  /** The upstream socket, connected on the first byte that is forwarded (a blackholed client never reaches it). */
  #upstream(pair: Pair): Socket {
    if (pair.upstream !== undefined) return pair.upstream;
    const upstream = new Socket();
    pair.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('close', () => this.#destroy(pair));
    upstream.on('data', (chunk: Buffer) => pair.forwardToClient?.(chunk));
    upstream.setTimeout(this.#o.connectTimeoutMs, () => {
      if (upstream.connecting) this.#destroy(pair);
    });
    upstream.connect(this.#o.upstreamPort, this.#o.upstreamHost, () => upstream.setTimeout(0));
    return upstream;
  }

  #reset(pair: Pair): void {
    this.#resets++;
    for (const s of [pair.client, pair.upstream]) if (s !== undefined && !s.destroyed) s.resetAndDestroy();
    this.#destroy(pair);
  }

  #destroy(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    for (const t of pair.timers) clearTimeout(t);
    pair.timers.clear();
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}

/** Splits `host:port` (also `[::1]:5432`); throws a RangeError naming the value. */
export function parseHostPort(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  if (m === null || host === undefined || !(port >= 1 && port <= 65_535))
    throw new RangeError(`expected host:port, received ${value}`);
  return { host, port };
}
