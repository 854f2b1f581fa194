/**
 * Proof by injection: real incidents made on a running desk from outside, the way they happen in
 * production (a migration's lock, a dropped index, a network path that drops packets, a Postgres
 * restart, a provider that hangs, a user's request that blocks the loop, ...), each under a steady
 * load of the pages a trader opens. The desk's log of each incident goes through
 * `hangproof report --baseline` and the top-ranked cause must name the incident: kind and subject.
 *
 * One desk serves every incident, in order; each incident is removed and the desk is back to
 * answering its pages before the next one starts. Postgres and the market-data provider are
 * reached through TCP proxies, so a test can cut or blackhole the path the desk uses. The leak
 * comes last but one (its connections stay out of the pool); the connection storm, last, meets a
 * second instance started into it, since a warm pool rides out a storm without new connections.
 *
 * A "connection storm" here is other clients taking every connection slot Postgres has for the
 * desk's role, so that the desk's new connections are refused (53300): the incident the toolkit
 * can see from the desk's side. A storm of HTTP clients on the desk itself is overload, which
 * the overload guard sheds (playbook 6) and `hangproof load` measures.
 * KEEP_INCIDENT_LOGS=1 keeps each incident's log (and the log of a wait that found no evidence).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';
import { buildDesk, type Desk } from '../src/build-desk.js';
import { migrate } from '../src/db/migrate.js';
import { seedDatabase } from '../src/db/seed.js';
import type { SimulatedProvider } from '../src/providers/simulated-provider.js';
import { startBroker, startMarketData } from '../src/providers/simulated-providers.js';
import { LogCapture, runHangproof } from './hangproof-cli.js';
import { PageLoad } from './page-load.js';
import { TcpProxy } from './tcp-proxy.js';
import { ADMIN_TOKEN, DEMO_TOKEN, eventually } from './test-desk.js';

/** The parts of `hangproof report --json` these tests read. */
interface Cause {
  readonly kind: string;
  readonly subject: string;
  readonly title: string;
  readonly detail: string;
  readonly score: number;
}

/** Bound of one wait for an incident's evidence in the log. */
const EVIDENCE_MS = 20_000;
/** Bound of the wait for the desk to answer its pages again after an incident. */
const RECOVERY_MS = 20_000;
/** Rows added to execution_audits so that a scan without its index is measurably slow. */
const EXTRA_AUDITS = 1_000_000;

let database: TestDatabase;
let marketData: SimulatedProvider;
let broker: SimulatedProvider;
let pgProxy: TcpProxy;
let marketDataProxy: TcpProxy;
let desk: Desk;
let url: string;
let load: PageLoad;
let dir: string;
let baseline: string;
let botId: string;
const log = new LogCapture();

/** Runs `sql` on a session of its own, as an operator in psql would. */
async function operatorSql(sql: string, applicationName = 'psql'): Promise<void> {
  const c = new pg.Client({
    connectionString: database.url,
    application_name: applicationName,
    connectionTimeoutMillis: 5_000,
    statement_timeout: 60_000,
  });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const api = (path: string): Promise<Response> =>
  fetch(`${url}${path}`, { headers: { authorization: `Bearer ${DEMO_TOKEN}` }, signal: AbortSignal.timeout(5_000) });

/** Parsed log lines written since `mark`. */
/**
 * Counts the log lines since `mark` that satisfy `match`, reading each line once: the test runs
 * in the desk's own process, and re-parsing the whole window at every poll would itself block
 * the loop the incidents are judged by.
 */
function lineCounter(mark: number, match: (l: Record<string, unknown>) => boolean): () => number {
  let next = mark;
  let found = 0;
  return () => {
    const end = log.mark;
    for (const line of log.since(next).split('\n'))
      if (line !== '' && match(JSON.parse(line) as Record<string, unknown>)) found++;
    next = end;
    return found;
  };
}

/** Waits (bounded, polling the log) until `count` lines since `mark` satisfy `match`. */
async function evidence(mark: number, match: (l: Record<string, unknown>) => boolean, count = 1): Promise<void> {
  const matched = lineCounter(mark, match);
  const seen = await eventually(async () => matched() >= count, EVIDENCE_MS, 50);
  if (!seen) await writeFile(join(dir, `evidence-${mark}.log`), log.since(mark));
  assert.ok(seen, `the desk logged ${count} line(s) of the incident's evidence within ${EVIDENCE_MS} ms`);
}

/** Every provider healthy with its breaker closed, as /api/providers/health reports them. */
async function providersHealthy(): Promise<boolean> {
  const res = await api('/api/providers/health').catch(() => undefined);
  if (res?.status !== 200) return false;
  const { providers } = (await res.json()) as { providers: { status: string; breaker: string }[] };
  return providers.every((p) => p.status === 'up' && p.breaker === 'closed');
}

/** The status of one page, 0 when it got no answer. */
const statusOf = (path: string): Promise<number> =>
  api(path).then(
    (r) => r.status,
    () => 0,
  );

/**
 * Waits until every page answers 200 again and the providers are healthy: pages answer from
 * snapshots while a provider is down, so their status alone does not say the last incident is
 * over, and its failing refreshes would be logged into the next one's window.
 */
async function recovered(): Promise<void> {
  const pages = ['/api/bots/overview', `/api/bots/${botId}`, '/api/bots?limit=20'];
  const ok = await eventually(
    async () => (await Promise.all(pages.map(statusOf))).every((s) => s === 200) && (await providersHealthy()),
    RECOVERY_MS,
    100,
  );
  assert.ok(ok, `the desk answered its pages again, with healthy providers, within ${RECOVERY_MS} ms`);
}

/** `hangproof report <incident log> --baseline <quiet log> --json`: its causes, best first. */
async function report(name: string, mark: number): Promise<Cause[]> {
  const file = join(dir, `${name}.log`);
  const base = join(dir, 'baseline.log');
  await writeFile(file, log.since(mark));
  await writeFile(base, baseline);
  const run = await runHangproof(['report', file, '--baseline', base, '--json'], { timeoutMs: 30_000 });
  assert.equal(run.code, 0, run.stderr);
  return (run.json() as { causes: Cause[] }).causes;
}

const top3 = (causes: readonly Cause[]): string =>
  JSON.stringify(causes.slice(0, 3).map((c) => [c.kind, c.subject, c.score, c.title]));

before(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  await seedDatabase(database.url, { size: 'small', demoUserToken: DEMO_TOKEN });
  // A table of realistic size on a page's path: the bot detail reads a bot's latest audits.
  await operatorSql(
    `INSERT INTO execution_audits (bot_id, checked_at, kind, ok, latency_ms)
     SELECT 1 + g % 200, now() - g * interval '1 second', 'fill', true, g % 90
     FROM generate_series(1, ${EXTRA_AUDITS}) g;
     ANALYZE execution_audits;`,
  );
  marketData = await startMarketData();
  broker = await startBroker();
  const pgUrl = new URL(database.url);
  pgProxy = await TcpProxy.start({ host: pgUrl.hostname, port: Number(pgUrl.port || '5432') });
  const mdUrl = new URL(marketData.url);
  marketDataProxy = await TcpProxy.start({ host: mdUrl.hostname, port: Number(mdUrl.port) });
  desk = await buildDesk({
    databaseUrl: pgProxy.urlFor(database.url),
    marketDataUrl: marketDataProxy.urlFor(marketData.url).replace(/\/$/, ''),
    brokerUrl: broker.url,
    adminToken: ADMIN_TOKEN,
    logger: log.logger,
    providerProbeMs: 300,
    // The detail page takes a few ms with its index, a scan of its audits a hundred or more: a
    // lost index is logged, with its plan, and a busy machine's jitter is not.
    slowQueryMs: 60,
    // Every slow run may have its plan taken (at most one a second): the desk's first requests,
    // on cold caches, are slow too, and must not use up the one capture per fingerprint.
    planEvidence: { perFingerprintMs: 0 },
    // Past the 3 s deadline no request holds a connection: whatever does is leaked.
    leakDetectionMs: 3_500,
    jobs: false,
  });
  url = await desk.app.listen({ port: 0, host: '127.0.0.1' });
  dir = await mkdtemp(join(tmpdir(), 'desk-incidents-'));

  const bots = (await (await api('/api/bots?limit=5')).json()) as { items: { id: string }[] };
  botId = bots.items[0]?.id ?? '';
  assert.notEqual(botId, '', 'the demo user has bots');
  load = new PageLoad({
    url,
    token: DEMO_TOKEN,
    pages: [
      '/api/bots/overview',
      `/api/bots/${botId}`,
      '/api/bots?limit=20',
      '/api/metrics/summary',
      `/api/bots/${bots.items[1]?.id ?? botId}`,
      '/api/providers/health',
    ],
  });
  load.start();
  // The baseline: a quiet period of the same load.
  const mark = log.mark;
  const ok = await eventually(async () => load.count(200) >= 60, 15_000, 50);
  assert.ok(ok, 'the load got 60 answers in the quiet period');
  baseline = log.since(mark);
});

after(async () => {
  await load?.stop();
  await desk?.close();
  await pgProxy?.close();
  await marketDataProxy?.close();
  await marketData?.close();
  await broker?.close();
  await database?.drop();
  if (dir === undefined) return;
  if (process.env.KEEP_INCIDENT_LOGS === '1') console.log(`incident logs kept in ${dir}`);
  else await rm(dir, { recursive: true, force: true });
});

describe('hangproof report names each incident injected into the desk under load', () => {
  test('an index the bot page needs dropped: pg.slow_query on the Seq Scan of execution_audits', async () => {
    await recovered();
    const mark = log.mark;
    await operatorSql('DROP INDEX execution_audits_bot_checked');
    try {
      // The plan of the bot page's own query: plans are captured one at a time, and another slow
      // query that reads execution_audits (the overview's) may have its plan captured first.
      await evidence(
        mark,
        (l) =>
          l.event === 'pg.slow_plan' &&
          String(l.fingerprint).includes('FROM bots b WHERE b.id=') &&
          String((l.dominant as { relation?: unknown } | undefined)?.relation).endsWith('execution_audits'),
      );
      // Some more of the slow pages, as the incident goes on until someone acts.
      await evidence(mark, (l) => l.msg === 'slow postgres query' && String(l.sql).includes('execution_audits'), 5);
    } finally {
      await operatorSql('CREATE INDEX execution_audits_bot_checked ON execution_audits (bot_id, checked_at DESC)');
    }
    const causes = await report('dropped-index', mark);
    const top = causes[0];
    assert.ok(top !== undefined, 'a cause stood out');
    assert.equal(top.kind, 'pg.slow_query', top3(causes));
    assert.match(top.subject, /^Seq Scan on (public\.)?execution_audits$/, top3(causes));
    assert.match(top.detail, /consider CREATE INDEX .*execution_audits \(bot_id/, top3(causes));
  });

  test('a migration holding ACCESS EXCLUSIVE on bots: pg.lock_wait on bots, held by the migration session', async () => {
    await recovered();
    const mark = log.mark;
    const migration = new pg.Client({ connectionString: database.url, application_name: 'migrate-add-bot-risk' });
    migration.on('error', () => {});
    await migration.connect();
    try {
      await migration.query('BEGIN');
      await migration.query('LOCK TABLE bots IN ACCESS EXCLUSIVE MODE');
      await evidence(mark, (l) => l.event === 'pg.lock_wait' && l.relation === 'bots', 5);
    } finally {
      await migration.query('ROLLBACK').catch(() => {});
      await migration.end();
    }
    const causes = await report('lock', mark);
    const top = causes[0];
    assert.ok(top !== undefined, 'a cause stood out');
    assert.equal(top.kind, 'pg.lock_wait', top3(causes));
    assert.equal(top.subject, 'bots', top3(causes));
    assert.match(top.title, /held by pid \d+ \(migrate-add-bot-risk, /, top3(causes));
    assert.match(top.detail, /LOCK TABLE bots IN ACCESS EXCLUSIVE MODE/, top3(causes));
  });

  test('the network path to Postgres blackholed: pg.unavailable on the host:port the desk connects to', async () => {
    await recovered();
    const mark = log.mark;
    await pgProxy.set('blackhole');
    try {
      await evidence(mark, (l) => l.event === 'pg.unavailable', 5);
    } finally {
      await pgProxy.set('pass');
    }
    const causes = await report('blackhole', mark);
    const top = causes[0];
    assert.ok(top !== undefined, 'a cause stood out');
    assert.equal(top.kind, 'pg.unavailable', top3(causes));
    assert.equal(top.subject, `127.0.0.1:${pgProxy.port}`, top3(causes));
  });

  test('Postgres restarted (sessions terminated, then refused): pg.unavailable on its host:port, not slow queries', async () => {
    await recovered();
    const mark = log.mark;
    // A restart: every session gets 57P01 admin_shutdown, then nothing listens for a while.
    await operatorSql(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'desk%'`,
    );
    await pgProxy.set('refuse');
    try {
      await evidence(mark, (l) => l.event === 'pg.unavailable' && l.reason === 'refused', 5);
    } finally {
      await pgProxy.set('pass');
    }
    const causes = await report('restart', mark);
    const top = causes[0];
    assert.ok(top !== undefined, 'a cause stood out');
    assert.equal(top.kind, 'pg.unavailable', top3(causes));
    assert.equal(top.subject, `127.0.0.1:${pgProxy.port}`, top3(causes));
    assert.match(top.title, /refused/, top3(causes));
  });

  test('the market-data provider accepts connections and never answers: dependency.down on market-data', async () => {
    await recovered();
    const mark = log.mark;
    await marketDataProxy.set('blackhole');
    try {
      await evidence(mark, (l) => l.msg === 'dependency health is down' && l.dependency === 'market-data');
      // The pages answer from the last known quotes: the outage shows in the refreshes that fail.
      await evidence(mark, (l) => l.msg === 'snapshot load failed' && l.dependency === 'market-data', 4);
    } finally {
      await marketDataProxy.set('pass');
    }
    const causes = await report('provider-hang', mark);
    const top = causes[0];
    assert.ok(top !== undefined, 'a cause stood out');
    assert.match(top.kind, /^dependency\.(down|slow)$/, top3(causes));
    assert.equal(top.subject, 'market-data', top3(causes));
  });

  test('a risk request with a huge number of paths blocks the loop: event_loop.blocked on simulateDrawdowns', async () => {
    await recovered();
    const mark = log.mark;
    // The watchdog may miss a block (capture landing after the loop resumed on a busy machine):
    // ask again until a stall naming the function is logged, at most 5 times.
    const stalls = lineCounter(
      mark,
      (l) => l.event === 'event_loop_stall' && JSON.stringify(l).includes('simulateDrawdowns'),
    );
    const named = (): boolean => stalls() > 0;
    for (let i = 0; i < 5 && !named(); i++) {
      const res = await api(`/api/bots/${botId}/risk?paths=1000000`);
      await res.arrayBuffer();
      await eventually(async () => named(), 2_000, 20);
    }
    if (!named()) await writeFile(join(dir, `evidence-${mark}.log`), log.since(mark));
    assert.ok(named(), 'a stall naming simulateDrawdowns was logged');
    const causes = await report('loop-block', mark);
    const top = causes[0];
    assert.ok(top !== undefined, 'a cause stood out');
    assert.equal(top.kind, 'event_loop.blocked', top3(causes));
    assert.match(top.subject, /^simulateDrawdowns \(drawdown-risk\.ts:\d+\)$/, top3(causes));
  });

  test("exports of a bot that is not the caller's leak their raw connection: pg.connection_leak on the export route", async () => {
    await recovered();
    const mark = log.mark;
    // The not-found branch of the export throws before its release (see export-routes.ts).
    for (let i = 0; i < 4; i++) {
      const res = await api('/api/bots/999999999/audits.csv');
      assert.equal(res.status, 404);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    }
    await evidence(mark, (l) => l.msg === 'postgres connection held longer than the leak detection threshold', 4);
    const causes = await report('leak', mark);
    const top = causes[0];
    assert.ok(top !== undefined, 'a cause stood out');
    assert.equal(top.kind, 'pg.connection_leak', top3(causes));
    assert.equal(top.subject, '/api/bots/:id/audits.csv', top3(causes));
  });

  test('a storm of clients takes every connection slot: a new desk instance gets pg.unavailable (too_many_connections)', async (t) => {
    await recovered();
    // The slots are a role's CONNECTION LIMIT, so that the shared test server's max_connections
    // (other test files use it) is left alone: Postgres refuses with the same 53300 either way.
    const role = `desk_storm_${randomBytes(4).toString('hex')}`;
    const slots = 6;
    await operatorSql(
      `CREATE ROLE ${role} LOGIN PASSWORD 'storm-password' CONNECTION LIMIT ${slots};
       GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role};
       GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role};`,
    );
    const roleUrl = new URL(database.url);
    roleUrl.username = role;
    roleUrl.password = 'storm-password';
    const storm: pg.Client[] = [];
    const endStorm = async (): Promise<void> => {
      await Promise.all(storm.splice(0).map((c) => c.end().catch(() => {})));
    };
    t.after(async () => {
      await endStorm();
      await operatorSql(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    });
    // The storm: a batch of workers with the app's credentials, each opening its own connection,
    // until the server refuses one (bounded: one more than the slots).
    for (let i = 0; i <= slots; i++) {
      const c = new pg.Client({ connectionString: roleUrl.toString(), connectionTimeoutMillis: 5_000 });
      c.on('error', () => {});
      const refused = await c.connect().then(
        () => undefined,
        (err: { code?: string }) => err.code,
      );
      if (refused !== undefined) {
        assert.equal(refused, '53300', 'the server refused for want of a slot');
        break;
      }
      storm.push(c);
    }
    assert.equal(storm.length, slots, 'the storm holds every slot');

    // A new instance of the desk (a rolling deploy's replica) starts into the storm, under load.
    const mark = log.mark;
    const replica = await buildDesk({
      databaseUrl: roleUrl.toString(),
      marketDataUrl: marketData.url,
      brokerUrl: broker.url,
      adminToken: ADMIN_TOKEN,
      logger: log.logger,
      providerProbeMs: 300,
      jobs: false,
      observe: false,
    });
    const replicaUrl = await replica.app.listen({ port: 0, host: '127.0.0.1' });
    const replicaLoad = new PageLoad({
      url: replicaUrl,
      token: DEMO_TOKEN,
      pages: ['/api/bots/overview', `/api/bots/${botId}`, '/api/bots?limit=20'],
      concurrency: 2,
    });
    try {
      replicaLoad.start();
      await evidence(mark, (l) => l.event === 'pg.unavailable' && l.reason === 'too_many_connections', 5);
      await endStorm();
      // Once the storm is over the replica connects and answers.
      const answered = await eventually(
        async () =>
          (
            await fetch(`${replicaUrl}/api/bots/overview`, {
              headers: { authorization: `Bearer ${DEMO_TOKEN}` },
              signal: AbortSignal.timeout(5_000),
            }).catch(() => undefined)
          )?.status === 200,
        RECOVERY_MS,
        100,
      );
      assert.ok(answered, 'the replica answered once the storm ended');
    } finally {
      await replicaLoad.stop();
      await replica.close();
    }
    const causes = await report('connection-storm', mark);
    const top = causes[0];
    assert.ok(top !== undefined, 'a cause stood out');
    assert.equal(top.kind, 'pg.unavailable', top3(causes));
    assert.equal(top.subject, `${roleUrl.hostname}:${roleUrl.port}`, top3(causes));
    assert.match(top.title, /too_many_connections/, top3(causes));
  });
});
