import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/** A TCP proxy in front of a real server, that can be made to freeze like a hung one. */
export interface FreezableProxy {
  /** `target` with its host and port replaced by the proxy's. */
  readonly url: string;
  readonly port: number;
  /**
   * Freezes it: new connections are accepted and never answered, and bytes on open ones are
   * swallowed both ways. Nothing is closed, so only the client's own timeouts can end a wait.
   */
  hang(): void;
  /**
   * Forwards again. Only new connections are whole: those accepted while frozen stay silent, and
   * the bytes older ones lost leave their protocol out of step.
   */
  heal(): void;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

/**
 * Starts a TCP proxy on 127.0.0.1 in front of `target` (a `postgres://` URL, say), to test what
 * a client does when its server freezes mid-conversation: a dropped connection would be noticed
 * at once, a silent one only by a timeout.
 */
export async function startFreezableProxy(target: URL): Promise<FreezableProxy> {
  let hung = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (hung) {
      client.on('data', () => {});
      return;
    }
    const upstream = tcpConnect(Number(target.port), target.hostname);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (b) => {
      if (!hung) upstream.write(b);
    });
    upstream.on('data', (b) => {
      if (!hung) client.write(b);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    port,
    hang: () => {
      hung = true;
    },
    heal: () => {
      hung = false;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
