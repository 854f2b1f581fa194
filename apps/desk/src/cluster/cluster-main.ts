/**
 * `npm run start:cluster`: Postgres (embedded unless DATABASE_URL), PgBouncer in transaction mode,
 * DESK_INSTANCES desk instances (default 3) and nginx in front of them on PORT (default 3000).
 * Ctrl-C stops it in order: instances drain, then nginx, PgBouncer, the providers, Postgres last;
 * a second Ctrl-C kills what is left at once. See docs/guides/scale-out.md.
 */
import { ConfigError, parseConfig } from '../config.js';
import { type Cluster, startCluster } from './start-cluster.js';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

let cluster: Cluster | undefined;
let stopping = false;
const onSignal = (): void => {
  if (stopping) {
    say('cluster: second signal, killing what is left');
    for (const i of cluster?.instances ?? []) void i.process.kill();
    process.exit(130);
  }
  stopping = true;
  say('cluster: stopping (Ctrl-C again to kill at once)');
  void (cluster?.stop() ?? Promise.resolve()).then(() => process.exit(0));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

try {
  const config = parseConfig(process.env);
  const raw = process.env.DESK_INSTANCES?.trim() || '3';
  const instances = Number(raw);
  if (!/^\d+$/.test(raw) || instances < 1 || instances > 16) {
    throw new ConfigError('DESK_INSTANCES', `must be an integer from 1 to 16, received '${raw}'`);
  }
  const verbose = process.env.CLUSTER_VERBOSE === '1';
  const t0 = performance.now();
  cluster = await startCluster({
    instances,
    port: config.port,
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    seed: config.seed,
    adminToken: config.adminToken,
    demoUserToken: config.demoUserToken,
    log: (line) => {
      // Child output is shown only when asked for; the launcher's own progress always.
      if (verbose || line.startsWith('cluster:') || /"level":(5|6)0/.test(line)) say(line);
    },
  });
  if (stopping) await new Promise(() => {});
  const base = cluster.url;
  say('');
  say(`cluster: ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  say(`  Dashboard         ${base}/#token=${config.demoUserToken}`);
  say(`  System status     ${base}/status   (admin token; the "cluster" field of /status.json merges all instances)`);
  for (const i of cluster.instances) say(`  Instance ${i.id.padEnd(8)} ${i.url}   (pid ${i.process.pid})`);
  say(`  PgBouncer         ${new URL(cluster.pooledUrl).host}   config ${cluster.pgbouncerIniPath ?? '-'}`);
  say(`  nginx config      ${cluster.nginxConfPath}`);
  say(
    `  Check the ladder  npx hangproof doctor --nginx ${cluster.nginxConfPath} --pgbouncer ${cluster.pgbouncerIniPath ?? ''} --service ${base} --admin-token <token>`,
  );
  say(
    `  Admin token       ${config.adminToken}${config.adminTokenGenerated ? '   (random; set ADMIN_TOKEN to keep one)' : ''}`,
  );
  say(
    `  Demo user token   ${config.demoUserToken}${config.demoUserTokenGenerated ? '   (random; set DEMO_USER_TOKEN to keep one)' : ''}`,
  );
  say('  Ctrl-C stops everything; a second Ctrl-C kills at once.');
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`cluster: invalid configuration: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(
    `cluster: could not start: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}\n`,
  );
  process.exit(1);
}
