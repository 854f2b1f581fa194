import pg from 'pg';
import { CliError, describeNetworkError } from '../output/cli-error.js';
import { within } from '../output/within.js';

/** Bounds of every CLI session with Postgres. */
export interface PgSessionOptions {
  /** Longest time to connect (TCP, TLS, auth), in ms. @default 3_000 */
  readonly connectTimeoutMs?: number;
  /** Server-side limit of each statement (`statement_timeout`), in ms. @default 5_000 */
  readonly statementTimeoutMs?: number;
  /**
   * Send `statement_timeout`/`lock_timeout` as startup options. `false` leaves the session's
   * defaults as the server would give them (doctor reads them) and relies on SET LOCAL instead.
   * @default true
   */
  readonly startupLimits?: boolean;
}

export const PG_SESSION_DEFAULTS = Object.freeze({
  connectTimeoutMs: 3_000,
  statementTimeoutMs: 5_000,
  startupLimits: true,
});

/** `application_name` of the CLI's own sessions: `pg active` and `pg cancel` skip them. */
export const CLI_APPLICATION_NAME = 'hangproof-cli';

/** Resolves the database URL from `--database-url`, else `DATABASE_URL`; exit 2 when neither. */
export function databaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const url = flag ?? env.DATABASE_URL;
  if (url === undefined || url === '') {
    throw new CliError('NO_DATABASE_URL', 'no database: pass --database-url or set DATABASE_URL');
  }
  return url;
}

/**
 * Opens one bounded session: connect within `connectTimeoutMs`, every statement limited on the
 * server (`statement_timeout`, `lock_timeout` as startup options) and on the client (`query_timeout`
 * a little later, for a server or network that stops answering altogether).
 */
export async function openSession(url: string, options: PgSessionOptions = {}): Promise<pg.Client> {
  const o = { ...PG_SESSION_DEFAULTS, ...options };
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: o.connectTimeoutMs,
    ...(o.startupLimits
      ? { statement_timeout: o.statementTimeoutMs, lock_timeout: Math.min(1000, o.statementTimeoutMs) }
      : {}),
    query_timeout: o.statementTimeoutMs + 1000,
    application_name: CLI_APPLICATION_NAME,
  });
  // A broken connection after connect would otherwise be an unhandled 'error' event.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw new CliError('CONNECT_FAILED', `cannot connect to ${redactUrl(url)}: ${pgReason(err)}`);
  }
  return client;
}

/** Runs `fn` with a session and always closes it (bounded: end() of a dead socket is not awaited forever). */
export async function withSession<T>(
  url: string,
  fn: (c: pg.Client) => Promise<T>,
  options?: PgSessionOptions,
): Promise<T> {
  const client = await openSession(url, options);
  try {
    return await fn(client);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('QUERY_FAILED', `query failed: ${pgReason(err)}`);
  } finally {
    await within(
      client.end().catch(() => {}),
      1000,
    );
  }
}

/** A URL with its password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<database url>';
  }
}

/** One-line reason: SQLSTATE and message for server errors, the network code otherwise. */
export function pgReason(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return `${e.code} ${String(e.message)}`;
  const msg = err instanceof Error ? err.message : String(err);
  if (/timeout/i.test(msg)) return `timed out (${msg.split('\n')[0]})`;
  return describeNetworkError(err);
}
