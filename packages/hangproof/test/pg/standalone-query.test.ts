import assert from 'node:assert/strict';
import { createServer, type Server, Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { HangproofError } from 'hangproof';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import type pg from 'pg';
import { assertTookLessThan } from '../support/loop-stall.ts';
import {
  adminClient,
  captureLogger,
  inRequest,
  queryAbandonedWhenRunning,
  sessionsRunning,
  timed,
  waitFor,
} from './helpers.js';

// A standalone query() sends its limits (set_config(..., true)) and the statement in one
// extended-protocol batch closed by one Sync: one implicit transaction, one round trip. These
// tests prove that it is one round trip, and that the guarantees of a transaction hold: errors
// roll back, aborts cancel, timeouts end the transaction, limits do not outlive the statement, and
// no session is left idle in a transaction. A string of several statements (which cannot be
// Parsed as one) takes BEGIN, the statements, COMMIT instead, with the same guarantees.

let testDb: TestDatabase;
let admin: pg.Client;
let db: Database;
const log = captureLogger();

before(async () => {
  testDb = await createTestDatabase();
  admin = await adminClient(testDb.url);
  await admin.query('CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance integer NOT NULL)');
  db = createDatabase({ connectionString: testDb.url, max: 3, statementTimeoutMs: 60_000, logger: log.logger });
});

after(async () => {
  await db.close();
  await admin.end();
  await testDb.drop();
});

/** Sessions of this test database left inside a transaction (idle, failed or running). */
async function sessionsInTransaction(): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = $1 AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`,
    [testDb.name],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Asserts that no session stays inside a transaction after a statement failed. pg answers the
 * caller on the server's ErrorResponse, and the server ends the statement's implicit transaction
 * at the Sync right behind it: a check made at once can still see the session in it for a moment,
 * so it is given up to 1 s.
 */
async function assertNoSessionStaysInTransaction(message: string): Promise<void> {
  assert.ok((await waitFor(async () => (await sessionsInTransaction()) === 0, 1000)) >= 0, message);
}

async function sleepingBackends(): Promise<number> {
  return (await sessionsRunning(admin, testDb.name, 'SELECT pg_sleep(30)')).length;
}

interface Proxy {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * A real TCP proxy in front of Postgres; `relay` decides, chunk by chunk and per direction, when
 * (or whether) `send` passes it on. No Nagle delay on either side, like Postgres and pg themselves.
 */
async function proxyTo(
  target: URL,
  relay: (direction: 'to-server' | 'to-client', send: () => void) => void,
): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    upstream.connect(Number(target.port), target.hostname);
    client.on('data', (chunk) => relay('to-server', () => upstream.write(chunk)));
    upstream.on('data', (chunk) => relay('to-client', () => client.write(chunk)));
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', closeBoth).on('error', closeBoth);
    upstream.on('close', closeBoth).on('error', closeBoth);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target.href);
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.href,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A link with `delayMs` of one-way latency: counting round trips becomes measuring time. */
const slowLinkProxy = (target: URL, delayMs: number): Promise<Proxy> =>
  proxyTo(target, (direction, send) => {
    if (direction === 'to-server') setTimeout(send, delayMs);
    else send();
  });

/** One-way latency of the slow link: one round trip apart is 250 ms of slack on a loaded machine. */
const LINK_MS = 250;

test('over a link with 250 ms of latency, a standalone query costs one round trip and a multi-statement string three', async (t) => {
  const proxy = await slowLinkProxy(new URL(testDb.url), LINK_MS);
  let single = 0;
  let multi = 0;
  const slow = createDatabase({ connectionString: proxy.url, max: 1, logger: log.logger });
  try {
    await slow.query('SELECT 1'); // opens the connection (its handshake takes round trips of its own)
    const one = await timed(() =>
      inRequest(5000, 'GET /one', () => slow.query<{ n: number }>('SELECT $1::int AS n', [7])),
    );
    assert.equal(one.error, undefined);
    assert.equal(one.value?.rows[0]?.n, 7);
    single = one.ms;
    const three = await timed(() => inRequest(5000, 'GET /three', () => slow.query('SELECT 1; SELECT 8 AS n')));
    assert.equal(three.error, undefined);
    multi = three.ms;
  } finally {
    await slow.close();
    await proxy.close();
  }
  t.diagnostic(`one statement ${Math.round(single)} ms, several ${Math.round(multi)} ms`);
  assert.ok(single < 2 * LINK_MS, `a standalone query took ${Math.round(single)} ms: more than one round trip`);
  // A timer may fire a millisecond early: a little below three delays, far above two.
  assert.ok(
    multi >= 3 * LINK_MS - 10,
    `a multi-statement string took ${Math.round(multi)} ms: fewer than three round trips`,
  );
});

test('the limits end with the statement: the next statement on the connection runs with the session defaults', async () => {
  const one = createDatabase({ connectionString: testDb.url, max: 1, statementTimeoutMs: 4_000, logger: log.logger });
  try {
    const inside = await inRequest(2000, 'GET /limits', () =>
      one.query<{ st: string; app: string }>(
        "SELECT current_setting('statement_timeout') AS st, current_setting('application_name') AS app",
      ),
    );
    assert.match(inside.rows[0]?.app ?? '', /^hangproof GET \/limits /, 'the request names the session meanwhile');
    assert.match(
      inside.rows[0]?.st ?? '',
      /^1\d{3}ms$/,
      'the limit is what is left of the 2 s budget, not the 4 s default',
    );
    const after = await one.query<{ st: string; app: string }>(
      "SELECT current_setting('statement_timeout') AS st, current_setting('application_name') AS app",
      [],
      { outsideTransaction: true },
    );
    assert.equal(after.rows[0]?.st, '4s', 'the session default is back');
    assert.equal(after.rows[0]?.app, 'hangproof');
    assert.equal(await sessionsInTransaction(), 0);
  } finally {
    await one.close();
  }
});

test("the server enforces the request's remaining budget, not only the session default", async () => {
  // Session default 60 s; a 600 ms request with 300 ms kept in reserve gives the statement 300 ms.
  // The server's own timeout (DEPENDENCY_TIMEOUT) must fire well before the deadline would.
  const reserved = createDatabase({
    connectionString: testDb.url,
    max: 1,
    statementTimeoutMs: 60_000,
    reserveMs: 300,
    logger: log.logger,
  });
  try {
    const outcome = await timed(() =>
      inRequest(600, 'GET /budget', () => reserved.query('SELECT pg_sleep(5), $1::int', [1])),
    );
    const err = outcome.error as HangproofError;
    assert.equal(err.code, 'DEPENDENCY_TIMEOUT', `got ${err.code}: the server did not apply the budget-derived limit`);
    assert.equal(err.details.phase, 'query');
    assertTookLessThan(outcome, 550, 'answered in time');
    assert.equal(reserved.stats().discarded, 0, 'a server-side timeout leaves the connection usable');
  } finally {
    await reserved.close();
  }
});

test('a statement with a trailing semicolon and a string of several statements both work', async () => {
  const { rows } = await db.query<{ n: number }>('SELECT $1::int AS n;', [5]);
  assert.equal(rows[0]?.n, 5);
  const several = (await db.query("SELECT 1 AS a; SELECT 'x;y' AS b")) as unknown as { rows: unknown[] }[];
  assert.deepEqual(
    several.map((r) => r.rows),
    [[{ a: 1 }], [{ b: 'x;y' }]],
  );
  assert.equal(await sessionsInTransaction(), 0);
});

test('a string of several statements is bounded too: the server times it out and no transaction stays open', async () => {
  const short = createDatabase({ connectionString: testDb.url, max: 1, statementTimeoutMs: 200, logger: log.logger });
  try {
    const outcome = await timed(() => inRequest(5000, 'GET /slow', () => short.query('SELECT 1; SELECT pg_sleep(5)')));
    assert.equal((outcome.error as HangproofError).code, 'DEPENDENCY_TIMEOUT');
    assertTookLessThan(outcome, 200 + 250 + 250, 'answered in time');
    await assertNoSessionStaysInTransaction('a transaction stayed open');
  } finally {
    await short.close();
  }
});

test(`a write is committed before the caller is answered`, async () => {
  const id = 1;
  await inRequest(5000, 'POST /accounts', () =>
    db.query('INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)', [id, 'ada', 100]),
  );
  const { rows } = await admin.query('SELECT owner FROM accounts WHERE id = $1', [id]);
  assert.equal(rows[0]?.owner, 'ada', 'another session sees the row as soon as query() resolved');
  assert.equal(await sessionsInTransaction(), 0);
});

test(`a statement that fails part-way writes nothing, and its connection is reused idle`, async () => {
  const id = 10;
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
  await assertNoSessionStaysInTransaction('no session is left in a transaction');
  await waitFor(async () => db.stats().inUse === 0, 2000);
  assert.equal(db.stats().discarded, before.discarded, 'the connection went back to the pool, not destroyed');
  const again = await inRequest(5000, 'GET /n', () => db.query<{ n: number }>('SELECT 2 AS n'));
  assert.equal(again.rows[0]?.n, 2, 'the next query on the pool works');
});

test(`a statement the server times out answers DEPENDENCY_TIMEOUT and leaves no transaction open`, async () => {
  const short = createDatabase({
    connectionString: testDb.url,
    max: 1,
    statementTimeoutMs: 200,
    logger: log.logger,
  });
  try {
    const outcome = await timed(() => inRequest(5000, 'GET /slow', () => short.query('SELECT pg_sleep(5)')));
    const err = outcome.error as HangproofError;
    assert.equal(err.code, 'DEPENDENCY_TIMEOUT');
    assert.equal(err.details.phase, 'query');
    assertTookLessThan(outcome, 200 + 250 + 250, 'answered in time');
    await assertNoSessionStaysInTransaction('a transaction stayed open');
    const { rows } = await short.query<{ n: number }>('SELECT 3 AS n');
    assert.equal(rows[0]?.n, 3, 'the same connection serves the next query');
    assert.equal(short.stats().discarded, 0, 'a server-side timeout ends the transaction cleanly');
  } finally {
    await short.close();
  }
});

test(`an aborted request cancels its statement on the server at once and leaves no transaction open`, async (t) => {
  const before = db.stats();
  const { outcome, abortedAt } = await queryAbandonedWhenRunning(
    async () => (await sleepingBackends()) > 0,
    () => db.query('SELECT pg_sleep(30), $1::int', [1]),
  );
  assert.equal((outcome.error as { code?: string }).code, 'CLIENT_CLOSED_REQUEST');
  const answeredMs = performance.now() - abortedAt;
  assert.ok(answeredMs < 250, `the caller was answered ${Math.round(answeredMs)} ms after the abort`);
  const goneMs = await waitFor(async () => (await sleepingBackends()) === 0, 1000);
  assert.ok(goneMs >= 0, 'the backend still runs the query 1 s after the abort');
  const sinceAbort = performance.now() - abortedAt;
  t.diagnostic(`abort -> statement gone from the server in ${Math.round(sinceAbort)} ms`);
  // Cancelled, not left to the 60 s session statement timeout; slack for polling on a loaded machine.
  assert.ok(sinceAbort < 100 + 250, `statement stopped ${Math.round(sinceAbort)} ms after the abort (polling 10 ms)`);
  await assertNoSessionStaysInTransaction('a transaction stayed open');
  await waitFor(async () => db.stats().inUse === 0, 2000);
  const now = db.stats();
  assert.equal(now.cancelsSent, before.cancelsSent + 1);
  assert.equal(now.discarded, before.discarded + 1, 'the cancelled connection is destroyed, never reused');
});

test('when the server stops answering, the client-side bound destroys the connection and the pool recovers', async () => {
  // The proxy forwards nothing once frozen: the server neither answers nor sees the cancel's
  // effect on this socket. Only the client-side bound can end the query.
  let frozen = false;
  const proxy = await proxyTo(new URL(testDb.url), (_direction, send) => {
    if (!frozen) send();
  });
  const db = createDatabase({
    connectionString: proxy.url,
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
    assertTookLessThan(outcome, 300 + 100 + 250, 'answered in time');
    assert.ok((await waitFor(async () => db.stats().total === 0, 2000)) >= 0, 'the frozen connection was closed');
    frozen = false;
    const { rows } = await inRequest(5000, 'GET /again', () => db.query<{ n: number }>('SELECT 4 AS n'));
    assert.equal(rows[0]?.n, 4, 'a new connection serves the next query');
  } finally {
    await db.close();
    await proxy.close();
  }
});

test('the route and request id are in application_name while the statement runs', async () => {
  let requestId = '';
  const running = inRequest(5000, 'GET /named', (ctx) => {
    requestId = ctx.requestId;
    return db.query('SELECT pg_sleep(0.4), $1::int', [1]);
  });
  let seen: string | undefined;
  await waitFor(async () => {
    seen = (await sessionsRunning(admin, testDb.name, 'SELECT pg_sleep(0.4)'))[0]?.applicationName;
    return seen !== undefined;
  }, 1000);
  await running;
  assert.equal(seen, `hangproof GET /named ${requestId}`.slice(0, 63));
});
