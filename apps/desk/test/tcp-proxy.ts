/**
 * A TCP proxy on 127.0.0.1 in front of a real server (Postgres, a provider), the way a network
 * path sits between a service and what it calls. The tests switch what the path does:
 * - `pass`: bytes flow both ways;
 * - `blackhole`: new connections are accepted and never answered, bytes on open ones are
 *   swallowed both ways (a firewall dropping packets, a frozen host);
 * - `refuse`: nothing listens on the port (ECONNREFUSED) and open connections are cut (a restart).
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export type ProxyMode = 'pass' | 'blackhole' | 'refuse';

export class TcpProxy {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #mode: ProxyMode = 'pass';
  #port = 0;

  private constructor(target: { host: string; port: number }) {
    this.#target = target;
  }

  /** A proxy listening on a free port of 127.0.0.1, forwarding to `host:port`. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await proxy.#listen(0);
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.#port);
    return u.toString();
  }

  /** Switches what the path does; a switch back to `pass` listens again on the same port. */
  async set(mode: ProxyMode): Promise<void> {
    if (mode === this.#mode) return;
    const was = this.#mode;
    this.#mode = mode;
    if (mode === 'refuse') {
      this.#cutAll();
      await this.#unlisten();
    } else if (was === 'refuse') {
      await this.#listen(this.#port);
    }
    // Leaving the blackhole, the swallowed connections stay useless: the client must find out
    // by itself (its own timeouts), as it does when a real network path heals.
  }

  async close(): Promise<void> {
    this.#cutAll();
    await this.#unlisten();
  }

  #cutAll(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  #track(s: Socket): void {
    this.#sockets.add(s);
    s.on('close', () => this.#sockets.delete(s));
    s.on('error', () => {});
  }

  #accept(client: Socket): void {
    this.#track(client);
    if (this.#mode === 'blackhole') {
      client.on('data', () => {});
      return;
    }
    const upstream = tcpConnect(this.#target.port, this.#target.host);
    this.#track(upstream);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.on('data', (b) => {
      if (this.#mode === 'pass') upstream.write(b);
    });
    upstream.on('data', (b) => {
      if (this.#mode === 'pass') client.write(b);
    });
  }

  #listen(port: number): Promise<void> {
    const server = createServer((s) => this.#accept(s));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.#port = (server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  #unlisten(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    return server === undefined ? Promise.resolve() : new Promise((r) => server.close(() => r()));
  }
}
