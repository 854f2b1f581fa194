import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { step } from 'hangproof';
import { createDependencies } from 'hangproof/deps';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { observe } from 'hangproof/observe';
import { createDatabase, type Database, type DatabaseOptions } from 'hangproof/pg';
import { startFreezableProxy } from 'hangproof/testing';
import pg from 'pg';
import { pino } from 'pino';
import { lockFault } from '../src/chaos/lock-fault.js';
import { within } from '../src/output/within.js';
import { itemsFixture, runCli, runSql, startSilentServer } from './run-cli.js';

const ADMIN_TOKEN = 'report-admin-token-0123456789';
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fx = itemsFixture('hangproof-report-');

interface LoggedService {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly db: Database;
  /** The service's log lines so far, one JSON object per line, as a file would hold them. */
  logText(): string;
  close(): Promise<void>;
}

/**
 * Fastify + hangproof + observe + hangproof/pg, every component logging to one pino logger at
 * info, the way a service writes its log file.
 */
async function startLoggedService(
  routes: (app: FastifyInstance, db: Database, logger: pino.Logger) => void,
  pgOptions: Partial<Omit<DatabaseOptions, 'logger'>> = {},
): Promise<LoggedService> {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const app = Fastify(serverOptions({ maxDeadlineMs: 1000 }));
  await app.register(hangproof, { deadlineMs: 1000, logger, adminToken: ADMIN_TOKEN });
  const db = createDatabase({
    connectionString: fx.database.url,
    max: 5,
    acquireTimeoutMs: 300,
    statementTimeoutMs: 800,
    slowQueryMs: 200,
    ...pgOptions,
    logger,
  });
  await app.register(observe, {
    logger,
    defaultMetrics: false,
    stallThresholdMs: 100,
    pools: { main: { stats: () => ({ ...db.stats() }) } },
  });
  app.get('/fast', async () => ({ ok: true }));
  routes(app, db, logger);
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    app,
    db,
    logText: () => lines.join(''),
    async close() {
      await within(app.close(), 3000);
      await within(db.close(), 6000);
    },
  };
}

/** `n` GETs, `concurrency` at a time with `gapMs` between batches, each bounded; returns the statuses. */
async function hit(url: string, n: number, concurrency = 5, gapMs = 0): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, n - i) }, () =>
      fetch(url, { signal: AbortSignal.timeout(5000) })
        .then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        })
        .catch(() => 0),
    );
    statuses.push(...(await Promise.all(batch)));
    if (gapMs > 0) await pause(gapMs);
  }
  return statuses;
}

/** Waits (bounded, polling the log) until a line satisfies `match`; true when one did. */
async function logged(service: LoggedService, match: (line: any) => boolean, withinMs = 5_000): Promise<boolean> {
  const seen = (): boolean =>
    service
      .logText()
      .split('\n')
      .some((l) => l !== '' && match(JSON.parse(l)));
  for (const until = performance.now() + withinMs; performance.now() < until; ) {
    if (seen()) return true;
    await pause(20);
  }
  return seen();
}

/** Writes the service's log to a file and runs `hangproof report` on it with --json and --out-dir. */
async function reportOn(name: string, service: LoggedService, extra: string[] = []): Promise<any> {
  const file = join(fx.dir, `${name}.log`);
  await writeFile(file, service.logText());
  const outDir = join(fx.dir, name);
  const run = await runCli(['report', file, '--out-dir', outDir, '--json', ...extra]);
  assert.equal(run.code, 0, run.stderr);
  const r = run.json();
  const md = await readFile(join(outDir, 'incident-report.md'), 'utf8');
  const html = await readFile(join(outDir, 'incident-report.html'), 'utf8');
  assert.match(md, /^# Incident report/);
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /<script|<link|src=/, 'the page is self-contained');
  return r;
}

describe('hangproof report names the injected cause first', () => {
  test('a slow query: the top cause is pg.slow_query on its fingerprint, and the endpoint moved', async (t) => {
    let sleepMs = 0;
    const service = await startLoggedService((app, db) => {
      app.get('/orders', async () => {
        const { rows } = await db.query('SELECT pg_sleep($1::float8 / 1000) AS slept, count(*) AS n FROM items', [
          sleepMs,
        ]);
        return rows;
      });
    });
    t.after(() => service.close());
    // A normal period as long as the slow one, so each half of the window holds one of them.
    await hit(`${service.url}/orders`, 20, 5, 300);
    sleepMs = 400;
    const statuses = await hit(`${service.url}/orders`, 15);
    assert.ok(
      statuses.every((s) => s === 200),
      `statuses ${statuses}`,
    );

    const r = await reportOn('slow-query', service);
    assert.equal(r.causes[0].kind, 'pg.slow_query', JSON.stringify(r.causes.slice(0, 3)));
    assert.match(r.causes[0].subject, /pg_sleep/);
    assert.ok(r.causes[0].requestIds.length > 0, 'request ids support it');
    const orders = r.endpoints.find((e: { route: string }) => e.route === '/orders');
    assert.equal(orders.moved, true);
    assert.match(orders.dominantStep.label, /^query .*pg_sleep/);
    assert.ok(r.queries[0].fingerprint.includes('pg_sleep'));
  });

  test('a held table lock: the top cause is pg.lock_wait on that table', async (t) => {
    const service = await startLoggedService(
      (app, db) => {
        app.get('/items', async () => (await db.query('SELECT count(*) AS n FROM items')).rows);
      },
      { lockTimeoutMs: 300 },
    );
    t.after(() => service.close());
    await hit(`${service.url}/items`, 20);
    const fault = lockFault(
      { kind: 'lock', table: 'items' },
      {
        baseUrl: service.url,
        adminToken: undefined,
        databaseUrl: fx.database.url,
        pid: undefined,
        allowRemote: false,
        holdMs: 5000,
      },
    );
    await fault.prepare();
    await fault.inject();
    try {
      const statuses = await hit(`${service.url}/items`, 15);
      assert.ok(
        statuses.every((s) => s >= 500),
        `statuses ${statuses}`,
      );
    } finally {
      await fault.remove();
      await fault.dispose();
    }

    const r = await reportOn('held-lock', service);
    assert.equal(r.causes[0].kind, 'pg.lock_wait', JSON.stringify(r.causes.slice(0, 3)));
    assert.equal(r.causes[0].subject, 'items');
    assert.ok(r.causes[0].requests >= 10);
    assert.ok(r.timeouts.length > 0, 'the lock timeouts are grouped');
  });

  test('a session idle in transaction holding a table lock under a join: the cause names that table and the session', async (t) => {
    await runSql(
      fx.database.url,
      `CREATE TABLE owners (id int PRIMARY KEY, name text NOT NULL);
       CREATE TABLE bots (id int PRIMARY KEY, owner_id int NOT NULL REFERENCES owners (id));
       INSERT INTO owners SELECT g, 'owner ' || g FROM generate_series(1, 10) g;
       INSERT INTO bots SELECT g, 1 + g % 10 FROM generate_series(1, 100) g;`,
    );
    const service = await startLoggedService(
      (app, db) => {
        // `owners` is the statement's first table; `bots` is the one locked.
        app.get('/overview', async () => {
          const { rows } = await db.query(
            'SELECT o.name, count(b.id) AS bots FROM owners o JOIN bots b ON b.owner_id = o.id GROUP BY o.name',
          );
          return rows;
        });
      },
      // A capture opens its own connection, which a busy machine can take 200 ms to start: an
      // early sweep and one capture per batch of requests leave every batch time to be seen.
      { lockTimeoutMs: 400, lockEvidence: { waitThresholdMs: 100, minIntervalMs: 200 } },
    );
    t.after(() => service.close());
    await hit(`${service.url}/overview`, 20);

    // Someone in psql opened a transaction, locked the table and went quiet.
    const psql = new pg.Client({ connectionString: fx.database.url, application_name: 'psql' });
    await psql.connect();
    t.after(() => psql.end());
    await psql.query('BEGIN');
    await psql.query('LOCK TABLE bots IN ACCESS EXCLUSIVE MODE');
    try {
      const statuses = await hit(`${service.url}/overview`, 15);
      assert.ok(
        statuses.every((s) => s >= 500),
        `statuses ${statuses}`,
      );
      assert.ok(
        await logged(service, (l) => l.event === 'pg.lock_wait' && l.relation === 'bots'),
        'the library logged what Postgres says the requests waited for',
      );
    } finally {
      await psql.query('ROLLBACK');
    }

    const r = await reportOn('join-lock', service);
    assert.equal(r.causes[0].kind, 'pg.lock_wait', JSON.stringify(r.causes.slice(0, 3)));
    assert.equal(r.causes[0].subject, 'bots', JSON.stringify(r.causes.slice(0, 3)));
    assert.match(r.causes[0].title, /^lock wait on bots, held by pid \d+ \(psql, idle in transaction/);
    assert.match(r.causes[0].detail, /idle in transaction.*LOCK TABLE bots/);
    assert.ok(r.causes[0].requests >= 10, `${r.causes[0].requests} requests`);
    assert.ok(
      !r.causes.some((c: { subject: string }) => c.subject === 'owners'),
      'the join’s first table is not blamed',
    );
  });

  test('Postgres frozen behind its address: the top cause is pg.unavailable on the host:port the service uses', async (t) => {
    const proxy = await startFreezableProxy(new URL(fx.database.url));
    const service = await startLoggedService(
      (app, db) => {
        app.get('/items', async () => (await db.query('SELECT count(*) AS n FROM items')).rows);
      },
      // The server's own statement_timeout cannot fire on a frozen server: the client gives up
      // at statementTimeoutMs plus its grace, inside the request's 1 s deadline.
      { connectionString: proxy.url, statementTimeoutMs: 300, connectTimeoutMs: 300 },
    );
    t.after(() => service.close());
    t.after(() => proxy.close());
    // Normal traffic first: the pool holds open connections when the server freezes.
    await hit(`${service.url}/items`, 20, 5, 50);
    assert.ok(service.db.stats().total >= 1, `${service.db.stats().total} connections open`);
    proxy.hang();
    const statuses = await hit(`${service.url}/items`, 15);
    assert.ok(
      statuses.every((s) => s >= 500),
      `statuses ${statuses}`,
    );
    assert.ok(
      await logged(service, (l) => l.event === 'pg.unavailable' && l.port === proxy.port),
      'the library logged the server as unreachable',
    );

    const r = await reportOn('frozen-postgres', service);
    assert.equal(r.causes[0].kind, 'pg.unavailable', JSON.stringify(r.causes.slice(0, 4)));
    assert.equal(r.causes[0].subject, `127.0.0.1:${proxy.port}`);
    for (const symptom of ['pg.slow_query', 'pg.pool_exhausted']) {
      const c = r.causes.find((x: { kind: string }) => x.kind === symptom);
      assert.ok(c === undefined || c.score < r.causes[0].score, `${symptom} ranks below: ${JSON.stringify(c)}`);
    }
  });

  test('an index dropped under load: the top cause names the Seq Scan and its table from the captured plan', async (t) => {
    await runSql(
      fx.database.url,
      `CREATE TABLE accounts (id int PRIMARY KEY, owner_id int NOT NULL, note text NOT NULL);
       INSERT INTO accounts SELECT g, g, md5(g::text) FROM generate_series(1, 300000) g;
       CREATE INDEX accounts_owner_id ON accounts (owner_id);
       ANALYZE accounts;`,
    );
    let owner = 0;
    const service = await startLoggedService(
      (app, db) => {
        app.get('/accounts', async () => {
          owner = (owner % 300_000) + 1;
          return (await db.query('SELECT id, note FROM accounts WHERE owner_id = $1', [owner])).rows;
        });
      },
      // A seq scan of 300k rows takes tens of ms, an index lookup well under one.
      { slowQueryMs: 8, planEvidence: { perFingerprintMs: 0, minIntervalMs: 0, timeoutMs: 2_000 } },
    );
    t.after(() => service.close());
    await hit(`${service.url}/accounts`, 20, 5, 100);
    await runSql(fx.database.url, 'DROP INDEX accounts_owner_id');
    const statuses = await hit(`${service.url}/accounts`, 20);
    assert.ok(
      statuses.every((s) => s === 200),
      `statuses ${statuses}`,
    );
    assert.ok(
      await logged(service, (l) => l.event === 'pg.slow_plan' && String(l.fingerprint).includes('accounts')),
      'the library captured the slow statement’s plan',
    );

    const r = await reportOn('dropped-index', service);
    assert.equal(r.causes[0].kind, 'pg.slow_query', JSON.stringify(r.causes.slice(0, 3)));
    assert.match(r.causes[0].subject, /^Seq Scan on (public\.)?accounts$/);
    assert.match(r.causes[0].detail, /FROM accounts WHERE owner_id=\?/, 'the fingerprint stays in the detail');
    assert.match(r.causes[0].detail, /consider CREATE INDEX .*accounts \(owner_id\)/);
  });

  test('a hung provider: the top cause is the dependency, down once its breaker opened', async (t) => {
    const silent = await startSilentServer();
    t.after(() => silent.close());
    let deps: ReturnType<typeof createDependencies> | undefined;
    const service = await startLoggedService((app, _db, logger) => {
      deps = createDependencies({ logger });
      const quotes = deps.http('quotes', {
        baseUrl: silent.url,
        timeoutMs: 300,
        attemptTimeoutMs: 200,
        connectTimeoutMs: 200,
        retry: { maxAttempts: 1 },
        breaker: { failureRatio: 0.5, minimumCalls: 5, windowMs: 10_000, halfOpenAfterMs: 5_000 },
      });
      app.get('/quote', async () => {
        const res = await quotes.get('/price');
        return { status: res.status };
      });
    });
    t.after(async () => {
      await service.close();
      await deps?.close();
    });
    await hit(`${service.url}/fast`, 10);
    const statuses = await hit(`${service.url}/quote`, 15);
    assert.ok(
      statuses.every((s) => s === 503),
      `statuses ${statuses}`,
    );

    const r = await reportOn('hung-provider', service);
    assert.equal(r.causes[0].kind, 'dependency.down', JSON.stringify(r.causes.slice(0, 3)));
    assert.equal(r.causes[0].subject, 'quotes');
    assert.ok(
      r.transitions.some((x: { dependency: string; to: string }) => x.dependency === 'quotes' && x.to === 'open'),
      'the breaker opening is listed',
    );
  });

  test('a CPU-blocking handler: the top cause is event_loop.blocked, with the blocking stack', async (t) => {
    function crunchPricesSynchronously(ms: number): number {
      const until = performance.now() + ms;
      let x = 0;
      while (performance.now() < until) x += Math.sqrt(x + 1);
      return x;
    }
    const service = await startLoggedService((app) => {
      app.get('/crunch', async () => {
        await step('price-grid', async () => crunchPricesSynchronously(400));
        return { ok: true };
      });
    });
    t.after(() => service.close());
    await hit(`${service.url}/fast`, 10);
    // The watchdog thread starts alongside the service, and a block before it polls goes unseen;
    // on a busy machine a capture may also land after the loop resumed (no stack). So block until
    // a stall naming the blocking function is logged (at most 5 times), each wait bounded.
    const stallLogged = (): boolean =>
      service
        .logText()
        .split('\n')
        .some((l) => l.includes('"event":"event_loop_stall"') && l.includes('crunchPricesSynchronously'));
    for (let i = 0; i < 5 && !stallLogged(); i++) {
      await hit(`${service.url}/crunch`, 1);
      for (const until = performance.now() + 2_000; !stallLogged() && performance.now() < until; ) await pause(20);
    }

    const r = await reportOn('cpu-block', service);
    assert.equal(r.causes[0].kind, 'event_loop.blocked', JSON.stringify(r.causes.slice(0, 3)));
    assert.ok(r.stalls.length >= 1);
    assert.ok(
      r.stalls.some((s: { stack: string[] }) => s.stack.some((f) => f.includes('crunchPricesSynchronously'))),
      'the stack names the blocking function',
    );
  });
});

describe('hangproof report input', () => {
  test('reads stdin, ignores lines that are not JSON, and prints a causes table', async () => {
    const line = (o: Record<string, unknown>): string => `${JSON.stringify({ level: 40, time: Date.now(), ...o })}\n`;
    const input =
      'not json\n' +
      line({ msg: 'slow postgres query', sql: 'SELECT * FROM big', durationMs: 900, requestId: 'r1', route: '/big' }) +
      line({
        request_id: 'r1',
        method: 'GET',
        route: '/big',
        path: '/big',
        status: 200,
        duration_ms: 950,
        deadline_ms: 3000,
        spans: [{ name: 'q1', start_ms: 10, dur_ms: 900, kind: 'db', fingerprint: 'SELECT * FROM big' }],
      });
    const run = await runCli(['report'], { input });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /likely cause/);
    assert.match(run.stdout, /pg\.slow_query/);
  });

  test('a missing log file is exit 2 BAD_CONFIG', async () => {
    const run = await runCli(['report', join(fx.dir, 'nope.log'), '--json']);
    assert.equal(run.code, 2);
    assert.equal(run.json().error.code, 'BAD_CONFIG');
  });

  test('--status adds the pool and stall figures of a live /status.json', async (t) => {
    const service = await startLoggedService(() => {});
    t.after(() => service.close());
    await hit(`${service.url}/fast`, 5);
    const file = join(fx.dir, 'status.log');
    await writeFile(file, service.logText());
    const run = await runCli([
      'report',
      file,
      '--status',
      `${service.url}/status.json`,
      '--admin-token',
      ADMIN_TOKEN,
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json().status.pools[0].name, 'main');
  });
});
