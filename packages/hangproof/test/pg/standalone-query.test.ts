import assert from 'node:assert/strict';
import { createServer, type Server, Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { HangproofError } from 'hangproof';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import type pg from 'pg';
import { adminClient, captureLogger, inRequest, queryAbandonedAfter, timed, waitFor } from './helpers.js';

// A standalone query() sends BEGIN with its limits, the statement and COMMIT in one round trip
// (`pipeline: true`, the default). These tests prove that it does, and that the guarantees of the
// three-round-trip form hold: errors roll back, aborts cancel, timeouts end the transaction, and
// no session is left idle in a transaction. Each behaviour is checked in both modes.

let testDb: TestDatabase;
let admin: pg.Client;
const log = captureLogger();
const MODES = [true, false] as const;
const dbs = new Map<boolean, Database>();

before(async () => {
  testDb = await createTestDatabase();
  admin = await adminClient(testDb.url);
  await admin.query('CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance integer NOT NULL)');
  for (const pipeline of MODES) {
    dbs.set(
      pipeline,
      createDatabase({
        connectionString: testDb.url,
        max: 3,
        pipeline,
        statementTimeoutMs: 60_000,
        logger: log.logger,
      }),
    );
  }
});

after(async () => {
  for (const db of dbs.values()) await db.close();
  await admin.end();
  await testDb.drop();
});

const dbOf = (pipeline: boolean): Database => dbs.get(pipeline) as Database;
const mode = (pipeline: boolean): string => (pipeline ? 'pipelined' : 'unpipelined');

/** Sessions of this test database left inside a transaction (idle, failed or running). */
async function sessionsInTransaction(): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = $1 AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`,
    [testDb.name],
  );
  return rows[0]?.n ?? 0;
}

async function sleepingBackends(): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = $1 AND state = 'active' AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()`,
    [testDb.name],
  );
  return rows[0]?.n ?? 0;
}

/**
 * A real TCP proxy in front of Postgres that holds every chunk the client sends for `delayMs`
 * before passing it on: a link with that much one-way latency. Counting round trips becomes
 * measuring time.
 */
async function slowLinkProxy(target: URL, delayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client);
    sockets.add(upstream);
    // Like Postgres and pg themselves, no Nagle delay: only the injected latency counts.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    upstream.connect(Number(target.port), target.hostname);
    client.on('data', (chunk) => {
      setTimeout(() => upstream.write(chunk), delayMs);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', closeBoth).on('error', closeBoth);
    upstream.on('close', closeBoth).on('error', closeBoth);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  const url = new URL(target.href);
  url.port = String(address.port);
  return {
    url: url.href,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('over a link with 100 ms of latency, a pipelined standalone query costs one round trip and the unpipelined one three', async (t) => {
  const proxy = await slowLinkProxy(new URL(testDb.url), 100);
  const measured: Record<string, number> = {};
  try {
    for (const pipeline of MODES) {
      const db = createDatabase({ connectionString: proxy.url, max: 1, pipeline, logger: log.logger });
      try {
        await db.query('SELECT 1'); // opens the connection (its handshake takes round trips of its own)
        const outcome = await timed(() =>
          inRequest(5000, 'GET /one', () => db.query<{ n: number }>('SELECT $1::int AS n', [7])),
        );
        assert.equal(outcome.error, undefined);
        assert.equal(outcome.value?.rows[0]?.n, 7);
        measured[mode(pipeline)] = outcome.ms;
      } finally {
        await db.close();
      }
    }
  } finally {
    await proxy.close();
  }
  t.diagnostic(
    `pipelined ${Math.round(measured.pipelined ?? 0)} ms, unpipelined ${Math.round(measured.unpipelined ?? 0)} ms`,
  );
  assert.ok((measured.pipelined ?? 0) < 200, `pipelined took ${measured.pipelined} ms: more than one round trip`);
  assert.ok((measured.unpipelined ?? 0) >= 300, `unpipelined took ${measured.unpipelined} ms: fewer than three`);
});

for (const pipeline of MODES) {
  test(`${mode(pipeline)}: a write is committed before the caller is answered`, async () => {
    const db = dbOf(pipeline);
    const id = pipeline ? 1 : 2;
    await inRequest(5000, 'POST /accounts', () =>
      db.query('INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)', [id, 'ada', 100]),
    );
    const { rows } = await admin.query('SELECT owner FROM accounts WHERE id = $1', [id]);
    assert.equal(rows[0]?.owner, 'ada', 'another session sees the row as soon as query() resolved');
    assert.equal(await sessionsInTransaction(), 0);
  });

  test(`${mode(pipeline)}: a statement that fails part-way writes nothing, and its connection is reused idle`, async () => {
    const db = dbOf(pipeline);
    const id = pipeline ? 10 : 20;
    const before = db.stats();
    // The first row is inserted, then the duplicate key fails the statement: the transaction must
    // roll the first row back.
    const outcome = await timed(() =>
      inRequest(5000, 'POST /accounts', () =>
        db.query('INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, 1), ($1, $2, 2)', [id, 'bob']),
      ),
    );
    assert.equal((outcome.error as { code?: string }).code, '23505', 'the unique violation reaches the caller');
    const { rows } = await admin.query('SELECT count(*)::int AS n FROM accounts WHERE id = $1', [id]);
    assert.equal(rows[0]?.n, 0, 'nothing of the failed statement was committed');
    assert.equal(await sessionsInTransaction(), 0, 'no session is left in a transaction');
    await waitFor(async () => db.stats().inUse === 0, 2000);
    assert.equal(db.stats().discarded, before.discarded, 'the connection went back to the pool, not destroyed');
    const again = await inRequest(5000, 'GET /n', () => db.query<{ n: number }>('SELECT 2 AS n'));
    assert.equal(again.rows[0]?.n, 2, 'the next query on the pool works');
  });

  test(`${mode(pipeline)}: a statement the server times out answers DEPENDENCY_TIMEOUT and leaves no transaction open`, async () => {
    const short = createDatabase({
      connectionString: testDb.url,
      max: 1,
      pipeline,
      statementTimeoutMs: 200,
      logger: log.logger,
    });
    try {
      const outcome = await timed(() => inRequest(5000, 'GET /slow', () => short.query('SELECT pg_sleep(5)')));
      const err = outcome.error as HangproofError;
      assert.equal(err.code, 'DEPENDENCY_TIMEOUT');
      assert.equal(err.details.phase, 'query');
      assert.ok(outcome.ms < 200 + 250 + 250, `answered after ${Math.round(outcome.ms)} ms`);
      assert.equal(await sessionsInTransaction(), 0);
      const { rows } = await short.query<{ n: number }>('SELECT 3 AS n');
      assert.equal(rows[0]?.n, 3, 'the same connection serves the next query');
      assert.equal(short.stats().discarded, 0, 'a server-side timeout ends the transaction cleanly');
    } finally {
      await short.close();
    }
  });

  test(`${mode(pipeline)}: an aborted request cancels its statement on the server within 100 ms and leaves no transaction open`, async (t) => {
    const db = dbOf(pipeline);
    const before = db.stats();
    const { outcome, abortedAt } = await queryAbandonedAfter(300, () => db.query('SELECT pg_sleep(30), $1::int', [1]));
    assert.equal((outcome.error as { code?: string }).code, 'CLIENT_CLOSED_REQUEST');
    const answeredMs = performance.now() - abortedAt;
    assert.ok(answeredMs < 50, `the caller was answered ${Math.round(answeredMs)} ms after the abort`);
    const goneMs = await waitFor(async () => (await sleepingBackends()) === 0, 1000);
    assert.ok(goneMs >= 0, 'the backend still runs the query 1 s after the abort');
    const sinceAbort = performance.now() - abortedAt;
    t.diagnostic(`abort -> statement gone from the server in ${Math.round(sinceAbort)} ms`);
    assert.ok(sinceAbort < 100 + 50, `statement stopped ${Math.round(sinceAbort)} ms after the abort (polling 10 ms)`);
    assert.ok(
      (await waitFor(async () => (await sessionsInTransaction()) === 0, 1000)) >= 0,
      'a transaction stayed open',
    );
    await waitFor(async () => db.stats().inUse === 0, 2000);
    const now = db.stats();
    assert.equal(now.cancelsSent, before.cancelsSent + 1);
    assert.equal(now.discarded, before.discarded + 1, 'the cancelled connection is destroyed, never reused');
  });
}

test('pipelined: when the server stops answering, the client-side bound destroys the connection and the pool recovers', async () => {
  // The proxy forwards nothing once frozen: the server neither answers nor sees the cancel's
  // effect on this socket. Only the client-side bound can end the query.
  let frozen = false;
  const target = new URL(testDb.url);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    upstream.connect(Number(target.port), target.hostname);
    client.on('data', (chunk) => {
      if (!frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!frozen) client.write(chunk);
    });
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', closeBoth).on('error', closeBoth);
    upstream.on('close', closeBoth).on('error', closeBoth);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(testDb.url);
  url.port = String((server.address() as { port: number }).port);
  const db = createDatabase({
    connectionString: url.href,
    max: 1,
    statementTimeoutMs: 300,
    unresponsiveGraceMs: 100,
    cancelTimeoutMs: 200,
    logger: log.logger,
  });
  try {
    await db.query('SELECT 1');
    frozen = true;
    const outcome = await timed(() => inRequest(5000, 'GET /frozen', () => db.query('SELECT $1::int AS n', [1])));
    const err = outcome.error as HangproofError;
    assert.equal(err.code, 'DEPENDENCY_TIMEOUT');
    assert.ok(outcome.ms < 300 + 100 + 250, `answered after ${Math.round(outcome.ms)} ms`);
    assert.ok((await waitFor(async () => db.stats().total === 0, 2000)) >= 0, 'the frozen connection was closed');
    frozen = false;
    const { rows } = await inRequest(5000, 'GET /again', () => db.query<{ n: number }>('SELECT 4 AS n'));
    assert.equal(rows[0]?.n, 4, 'a new connection serves the next query');
  } finally {
    await db.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('pipelined: the route and request id are in application_name while the statement runs', async () => {
  const db = dbOf(true);
  let requestId = '';
  const running = inRequest(5000, 'GET /named', (ctx) => {
    requestId = ctx.requestId;
    return db.query('SELECT pg_sleep(0.4), $1::int', [1]);
  });
  let seen: string | undefined;
  await waitFor(async () => {
    const { rows } = await admin.query<{ application_name: string }>(
      `SELECT application_name FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep(0.4)%' AND pid <> pg_backend_pid()`,
      [testDb.name],
    );
    seen = rows[0]?.application_name;
    return seen !== undefined;
  }, 1000);
  await running;
  assert.equal(seen, `hangproof GET /named ${requestId}`.slice(0, 63));
});

test('the pipeline option is validated when the database is created', () => {
  assert.throws(
    () => createDatabase({ connectionString: testDb.url, pipeline: 'yes' as unknown as boolean }),
    (e: unknown) => e instanceof TypeError && /pipeline/.test(e.message),
  );
});
