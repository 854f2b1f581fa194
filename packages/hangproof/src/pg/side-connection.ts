import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';

/** The server a pool talks to, and the application_name prefix its connections carry. */
export interface SideConnectionTarget {
  readonly connectionString: string;
  readonly ssl: boolean | ConnectionOptions | undefined;
  /** The pool's application_name prefix; a side connection is named `<prefix> <purpose>`. */
  readonly applicationName: string;
}

/** What one side connection is for, and its bounds. */
export interface SideConnectionLimits {
  /** Appended to its application_name (`lock-evidence`), and named when it runs out of time. */
  readonly purpose: string;
  /** Bound of connect + work, in ms; also its `statement_timeout`. */
  readonly timeoutMs: number;
  /** Its `lock_timeout`, in ms. */
  readonly lockTimeoutMs: number;
}

/**
 * Runs `work` on a short-lived connection of its own, never one of the pool's: the pool may be
 * exhausted by the very slowness being looked at. Bounded on the server (statement_timeout,
 * lock_timeout) and here: rejects when connecting and `work` take longer than `timeoutMs`.
 */
export async function withSideConnection<T>(
  target: SideConnectionTarget,
  limits: SideConnectionLimits,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const { purpose, timeoutMs } = limits;
  const client = new pg.Client({
    connectionString: target.connectionString,
    ...(target.ssl === undefined ? {} : { ssl: target.ssl }),
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs,
    lock_timeout: limits.lockTimeoutMs,
    application_name: `${target.applicationName} ${purpose}`.slice(0, 63),
  });
  client.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${purpose} not captured within ${timeoutMs} ms`)), timeoutMs);
  });
  let ok = false;
  try {
    const result = await Promise.race([
      (async () => {
        await client.connect();
        return work(client);
      })(),
      bound,
    ]);
    ok = true;
    return result;
  } finally {
    clearTimeout(timer);
    closeClient(client, ok, timeoutMs);
  }
}

/**
 * Ends the connection: politely after success, at once after a failure (a hung server never
 * answers Terminate). Destroying the socket also ends the session on the server.
 */
function closeClient(client: pg.Client, graceful: boolean, timeoutMs: number): void {
  const destroy = (): void => {
    client.connection?.stream?.destroy();
  };
  if (!graceful) {
    destroy();
    return;
  }
  const timer = setTimeout(destroy, timeoutMs);
  timer.unref();
  client
    .end()
    .catch(() => {})
    .finally(() => clearTimeout(timer));
}
