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
 * How long a side connection stays open after its last run, in ms: through a whole incident (a
 * capture per second or so), and gone a few seconds after it.
 */
export const SIDE_IDLE_MS = 5_000;

/** A connection being opened or open, with the promise of its connect. */
interface OpenClient {
  readonly client: pg.Client;
  readonly connected: Promise<unknown>;
}

/**
 * A connection of its own for evidence queries, never one of the pool's: the pool may be
 * exhausted by the very slowness being looked at. Bounded on the server (statement_timeout,
 * lock_timeout) and here: a run rejects when connecting and its work take longer than
 * `timeoutMs`.
 *
 * Kept open while it keeps being used, closed SIDE_IDLE_MS after its last run. During
 * an incident a capture runs every second or so; opening a connection each time costs a connect
 * and authentication, which on the loaded server being looked at can take longer than the wait it
 * should see, and takes a slot of max_connections that may be the last one free. A failed or
 * timed-out run closes the connection at once; the next run opens another.
 */
export class SideConnection {
  readonly #target: SideConnectionTarget;
  readonly #limits: SideConnectionLimits;
  #open: OpenClient | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Connections opened so far. */
  opened = 0;

  constructor(target: SideConnectionTarget, limits: SideConnectionLimits) {
    this.#target = target;
    this.#limits = limits;
  }

  /** Runs `work` on the connection (opened first when none is open), within `timeoutMs`. */
  async run<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
    const { purpose, timeoutMs } = this.#limits;
    if (this.#closed) throw new Error(`${purpose}: the side connection is closed`);
    clearTimeout(this.#idleTimer);
    const open = this.#open ?? this.#connect();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${purpose} not captured within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const result = await Promise.race([open.connected.then(() => work(open.client)), bound]);
      this.#keepOrEnd(open);
      return result;
    } catch (err) {
      this.#drop(open, false);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the connection, if one is open; later runs reject. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    if (this.#open !== undefined) this.#drop(this.#open, true);
  }

  #connect(): OpenClient {
    const { purpose, timeoutMs, lockTimeoutMs } = this.#limits;
    const client = new pg.Client({
      connectionString: this.#target.connectionString,
      ...(this.#target.ssl === undefined ? {} : { ssl: this.#target.ssl }),
      connectionTimeoutMillis: timeoutMs,
      statement_timeout: timeoutMs,
      lock_timeout: lockTimeoutMs,
      application_name: `${this.#target.applicationName} ${purpose}`.slice(0, 63),
    });
    const open: OpenClient = { client, connected: client.connect() };
    // A connection the server ends while it waits for work is forgotten; the next run opens another.
    const forget = (): void => {
      if (this.#open === open) this.#open = undefined;
    };
    client.on('error', forget);
    client.on('end', forget);
    open.connected.catch(() => {});
    this.#open = open;
    this.opened++;
    return open;
  }

  #keepOrEnd(open: OpenClient): void {
    if (this.#closed || this.#open !== open) {
      this.#drop(open, true);
      return;
    }
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.#drop(open, true), SIDE_IDLE_MS);
    this.#idleTimer.unref();
  }

  #drop(open: OpenClient, graceful: boolean): void {
    if (this.#open === open) this.#open = undefined;
    closeClient(open.client, graceful, this.#limits.timeoutMs);
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
