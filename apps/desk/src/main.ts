/**
 * `npm start`: one command for the whole desk. Starts (or reuses) an embedded Postgres in `.data/`,
 * migrates, seeds on first start, starts the two simulated providers, the background jobs and the
 * API, then prints the URLs and tokens. Ctrl-C stops everything in order; a second Ctrl-C exits
 * at once. See apps/desk/README.md for the environment variables.
 */
import { installShutdown } from 'hangproof/fastify';
import { startEmbeddedPostgres } from 'hangproof/testing';
import { pino } from 'pino';
import { buildDesk, type Desk } from './build-desk.js';
import { ConfigError, type DeskEnvConfig, parseConfig } from './config.js';
import { ensureDatabase } from './db/ensure-database.js';
import { migrate } from './db/migrate.js';
import { seedDatabase } from './db/seed.js';
import type { SimulatedProvider } from './providers/simulated-provider.js';
import { startBroker, startMarketData } from './providers/simulated-providers.js';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

let config: DeskEnvConfig;
try {
  config = parseConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`desk: invalid configuration: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

/** Things started so far, stopped in reverse order if startup fails or is interrupted. */
const started: { name: string; stop: () => Promise<unknown> }[] = [];
let interrupted = false;
const onEarlySignal = (): void => {
  if (interrupted) process.exit(130);
  interrupted = true;
  say('desk: interrupted during startup, stopping what was started (Ctrl-C again to exit now)');
  void stopStarted().then(() => process.exit(130));
};
process.on('SIGINT', onEarlySignal);
process.on('SIGTERM', onEarlySignal);

async function stopStarted(): Promise<void> {
  for (const s of started.reverse()) {
    await Promise.race([s.stop().catch(() => {}), new Promise((r) => setTimeout(r, 10_000).unref())]);
  }
  started.length = 0;
}

function checkInterrupted(): void {
  if (interrupted) throw new Error('interrupted');
}

try {
  const t0 = performance.now();
  let databaseUrl = config.databaseUrl;
  let postgresNote = 'DATABASE_URL';
  // What `hangproof pg` and psql need. The embedded cluster's URL is shown whole (a local cluster
  // with the default password); a URL the user gave keeps its password out of the terminal.
  let databaseUrlShown = config.databaseUrl === undefined ? '' : withoutPassword(config.databaseUrl);
  if (databaseUrl === undefined) {
    say(`desk: starting embedded PostgreSQL (data in ${config.dataDir})`);
    const server = await startEmbeddedPostgres({ dataDir: config.dataDir });
    started.push({ name: 'postgres', stop: () => server.stop() });
    databaseUrl = await ensureDatabase(server.url, 'desk');
    databaseUrlShown = databaseUrl;
    postgresNote = `embedded, 127.0.0.1:${server.port}, ${server.initialised ? 'new cluster' : 'warm start'}`;
  }
  checkInterrupted();
  const ran = await migrate(databaseUrl, (line) => say(`desk: migrate: ${line}`));
  say(`desk: migrations ${ran.length === 0 ? 'up to date' : `applied: ${ran.join(', ')}`}`);
  checkInterrupted();
  const seed = await seedDatabase(databaseUrl, {
    size: config.seed,
    demoUserToken: config.demoUserToken,
    progress: (line) => say(`desk: ${line}`),
  });
  say(
    seed.seeded
      ? `desk: seeded '${config.seed}' volume (${seed.volume.users} users, ${seed.volume.bots} bots, ${seed.volume.audits} audits) in ${(seed.durationMs / 1000).toFixed(1)} s`
      : 'desk: database already seeded (warm start)',
  );
  checkInterrupted();

  const providers: SimulatedProvider[] = [];
  let marketDataUrl = config.marketDataUrl;
  if (marketDataUrl === undefined) {
    const p = await startMarketData();
    providers.push(p);
    started.push({ name: 'market-data', stop: () => p.close() });
    marketDataUrl = p.url;
  }
  let brokerUrl = config.brokerUrl;
  if (brokerUrl === undefined) {
    const p = await startBroker();
    providers.push(p);
    started.push({ name: 'broker', stop: () => p.close() });
    brokerUrl = p.url;
  }
  checkInterrupted();

  const logger = pino({ name: 'desk', level: process.env.LOG_LEVEL ?? 'info' });
  const desk: Desk = await buildDesk({
    databaseUrl,
    marketDataUrl,
    brokerUrl,
    adminToken: config.adminToken,
    logger,
    probePort: config.probePort,
  });
  started.push({ name: 'desk', stop: () => desk.close() });
  checkInterrupted();
  await desk.app.listen({ port: config.port, host: config.host });
  const address = desk.app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  // From here on the edge's shutdown owns the order: stop accepting and drain, then these hooks.
  process.removeListener('SIGINT', onEarlySignal);
  process.removeListener('SIGTERM', onEarlySignal);
  const shutdown = installShutdown(desk.app, { logger });
  const step = (name: string, fn: () => Promise<unknown>) => async () => {
    say(`desk: stopping ${name}`);
    await fn();
  };
  shutdown.onShutdown(
    'desk',
    step('jobs, held locks, provider clients and the pool', () => desk.release()),
  );
  for (const p of providers)
    shutdown.onShutdown(
      `provider ${p.name}`,
      step(`simulated ${p.name}`, () => p.close()),
    );
  const pgStop = started.find((s) => s.name === 'postgres');
  if (pgStop !== undefined) shutdown.onShutdown('postgres', step('PostgreSQL', pgStop.stop));

  say('');
  say(`desk: ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  say(`  Dashboard         ${base}/#token=${config.demoUserToken}`);
  say(`  System status     ${base}/status   (admin token)`);
  say(`  API               ${base}/api/bots   (Authorization: Bearer <demo user token>)`);
  say(`  Fault switchboard ${base}/admin/faults   (X-Admin-Token)`);
  say(`  Health            ${base}/healthz   ${base}/readyz`);
  say(`  Market data       ${marketDataUrl}${config.marketDataUrl === undefined ? '   (simulated)' : ''}`);
  say(`  Broker            ${brokerUrl}${config.brokerUrl === undefined ? '   (simulated)' : ''}`);
  say(`  Postgres          ${postgresNote}`);
  say(`  Database URL      ${databaseUrlShown}   (DATABASE_URL=... npx hangproof pg top)`);
  say(
    `  Admin token       ${config.adminToken}${config.adminTokenGenerated ? '   (random; set ADMIN_TOKEN to keep one)' : ''}`,
  );
  say(
    `  Demo user token   ${config.demoUserToken}${config.demoUserTokenGenerated ? '   (random; set DEMO_USER_TOKEN to keep one)' : ''}`,
  );
  say('  Ctrl-C stops everything; a second Ctrl-C exits at once.');
  say('');
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  if (!interrupted) process.stderr.write(`desk: could not start: ${oneLine(message)}\n`);
  await stopStarted();
  process.exit(1);
}

/** `url` with its password replaced by `***`, for printing. */
function withoutPassword(url: string): string {
  const u = new URL(url);
  if (u.password !== '') u.password = '***';
  return u.toString();
}

function oneLine(s: string): string {
  return s.split('\n')[0]?.slice(0, 300) ?? '';
}
