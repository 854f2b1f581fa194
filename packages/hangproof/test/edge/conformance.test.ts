/**
 * One contract, every framework: the same routes served through each adapter (Fastify, Express 5,
 * Express 4, Hono on @hono/node-server, plain node:http), each on a real server on 127.0.0.1 and
 * a real Postgres, with hangproof/observe, and the same behaviour asserted of all of them, down to
 * the status page in a real Chromium.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { serve } from '@hono/node-server';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { HangproofError } from 'hangproof';
import { hangproofExpress } from 'hangproof/express';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { hangproofHono } from 'hangproof/hono';
import { installShutdown, type NodeEdge, type ShutdownTarget, withHangproof } from 'hangproof/http';
import { createObservatory, observe } from 'hangproof/observe';
import { createDatabase, type Database } from 'hangproof/pg';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import { Hono } from 'hono';
import pg from 'pg';
import { type Browser, chromium } from 'playwright-core';
import { CHROMIUM, skipWithoutChromium } from '../support/browser-profile.ts';
import { type Latch, latch, waitUntil } from '../support/latch.ts';
import { assertTookLessThan, measuringLoopStall } from '../support/loop-stall.ts';
import { captureLogs, type LogCapture } from '../support/start-app.ts';

const DEADLINE_MS = 1_000;
const ADMIN = 'conformance-admin-token-0123';
/**
 * observe's overload options, the same for every adapter: one request at a time, no queue. The
 * suite asserts the concurrency limit; shedding on event-loop delay has its own tests
 * (observe/overload.test.ts) and is off here, so a loaded CI machine's late timers cannot turn
 * the next test's answer into a 503.
 */
const OVERLOAD = { maxInFlight: 1, maxQueued: 0, maxEventLoopDelayMs: 0 } as const;

/** What the routes share: the database, and the latches of the request a test is holding. */
interface Shared {
  db: Database;
  entered: Latch;
  release: Latch;
}

/** The routes every adapter serves, written once. `respond` is the framework's way to answer. */
const routes = {
  ok: async () => ({ ok: true }),
  hang: () => new Promise<never>(() => {}),
  boom: async (): Promise<never> => {
    throw new Error('SELECT password FROM users WHERE id = 42');
  },
  sleep: async (s: Shared) => {
    await s.db.query('SELECT pg_sleep(10)');
    return { slept: true };
  },
  hold: async (s: Shared) => {
    s.entered.open();
    await s.release.opened;
    return { held: true };
  },
} as const;
type RouteName = keyof typeof routes;
const ROUTE_NAMES = Object.keys(routes) as RouteName[];

/** A running service of one adapter. */
interface Service {
  readonly url: string;
  readonly logs: LogCapture;
  /** Starts the graceful shutdown; resolves with the exit code it would use. */
  shutdown(): Promise<number>;
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

interface Adapter {
  readonly name: string;
  /** True when the adapter lets the application's own error handler run (and must not lose to it). */
  readonly ownErrorHandler: boolean;
  start(shared: Shared): Promise<Service>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A service on a node:http server with its edge (Express, plain listener), listening here. */
async function nodeService(server: Server, edge: NodeEdge, logs: LogCapture): Promise<Service> {
  return nodeServiceAt(server, edge, logs, await listen(server));
}

/** The node adapters' options: the edge's, and an observatory (the Fastify plugin's counterpart). */
const edgeOptions = async (logs: { logger: import('pino').Logger }) => ({
  deadlineMs: DEADLINE_MS,
  adminToken: ADMIN,
  logger: logs.logger,
  observe: await createObservatory({ ...OVERLOAD, logger: logs.logger }),
});

const adapters: Adapter[] = [
  {
    name: 'fastify',
    ownErrorHandler: true,
    async start(s) {
      const { logger, logs } = captureLogs();
      const app = Fastify(serverOptions({ maxDeadlineMs: DEADLINE_MS }));
      await app.register(hangproof, { deadlineMs: DEADLINE_MS, adminToken: ADMIN, logger });
      await app.register(observe, { ...OVERLOAD, logger });
      // The application's own error handler, registered after hangproof, as services do.
      app.setErrorHandler((_err, _req, reply) => reply.code(500).send({ mine: true }));
      for (const name of ROUTE_NAMES) app.get(`/${name}`, () => routes[name](s));
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      return serviceOf(
        app,
        url,
        logs,
        async () => (await app.hangproof.readiness()).ready,
        () => app.close(),
      );
    },
  },
  ...(
    [
      ['express 5', express],
      ['express 4', express4],
    ] as const
  ).map(
    ([name, factory]): Adapter => ({
      name,
      ownErrorHandler: true,
      async start(s) {
        const { logger, logs } = captureLogs();
        const hp = hangproofExpress(await edgeOptions({ logger }));
        const app = factory();
        app.use(hp.middleware);
        for (const route of ROUTE_NAMES) {
          app.get(`/${route}`, (_req: unknown, res: { json(v: unknown): void }, next: (e: unknown) => void) => {
            Promise.resolve(routes[route](s)).then((v) => res.json(v), next);
          });
        }
        app.use(hp.notFound);
        // The application's own error middleware, before hangproof's, as services write it.
        app.use(
          (err: unknown, _req: unknown, res: ServerResponse & { headersSent: boolean }, next: (e: unknown) => void) => {
            if (res.headersSent) return next(err);
            res.statusCode = 500;
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ mine: true }));
          },
        );
        app.use(hp.errorHandler);
        return nodeService(createServer(app), hp.edge, logs);
      },
    }),
  ),
  {
    name: 'hono',
    ownErrorHandler: true,
    async start(s) {
      const { logger, logs } = captureLogs();
      const hp = hangproofHono(await edgeOptions({ logger }));
      const app = new Hono();
      app.use('*', hp.middleware);
      for (const name of ROUTE_NAMES) app.get(`/${name}`, async (c) => c.json(await routes[name](s)));
      app.notFound(hp.notFound);
      app.onError(hp.onError((_err, c) => c.json({ mine: true }, 500)));
      const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
      await new Promise<void>((resolve) => (server.listening ? resolve() : server.once('listening', resolve)));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const service = await nodeServiceAt(server, hp.edge, logs, url);
      return service;
    },
  },
  {
    name: 'node:http',
    ownErrorHandler: false,
    async start(s) {
      const { logger, logs } = captureLogs();
      const known = new Set<string>(ROUTE_NAMES.map((n) => `/${n}`));
      const listener = withHangproof(
        async (req: IncomingMessage, res: ServerResponse) => {
          const path = (req.url ?? '/').split('?')[0] as string;
          if (!known.has(path)) {
            listener.edge.fail(res, new HangproofError('NOT_FOUND'));
            return;
          }
          const value = await routes[path.slice(1) as RouteName](s);
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(value));
        },
        { ...(await edgeOptions({ logger })), route: (req) => (req.url ?? '/').split('?')[0] as string },
      );
      return nodeService(createServer(listener), listener.edge, logs);
    },
  },
];

/** nodeService for a server that is already listening (Hono's `serve`). */
function nodeServiceAt(server: Server, edge: NodeEdge, logs: LogCapture, url: string): Service {
  return serviceOf(
    { server, edge },
    url,
    logs,
    async () => (await edge.evaluateReadiness()).ready,
    async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await edge.close();
    },
  );
}

/** A service with hangproof's shutdown installed, exiting into a variable instead of the process. */
function serviceOf(
  target: ShutdownTarget,
  url: string,
  logs: LogCapture,
  ready: () => Promise<boolean>,
  close: () => Promise<unknown>,
): Service {
  let code: number | undefined;
  const exit = (c: number): void => {
    code = c;
  };
  const handle = installShutdown(target, { signals: [], drainMs: 3_000, exit });
  return {
    url,
    logs,
    shutdown: async () => {
      await handle.shutdown('test');
      return code ?? -1;
    },
    ready,
    close: async () => {
      handle.uninstall();
      await close();
    },
  };
}

let testDb: TestDatabase;
let admin: pg.Client;
before(async () => {
  testDb = await createTestDatabase();
  admin = new pg.Client({ connectionString: testDb.url, connectionTimeoutMillis: 5_000 });
  await admin.connect();
});
after(async () => {
  await admin.end();
  await testDb.drop();
  await browser?.close();
});

/** One Chromium for every adapter's status page, launched by the first that needs it. */
let browser: Browser | undefined;
async function launchedBrowser(): Promise<Browser> {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking'],
  });
  return browser;
}

async function errorOf(res: Response): Promise<{ code: string; message: string; requestId: string }> {
  const body = (await res.json()) as { error?: { code: string; message: string; requestId: string } };
  assert.ok(body.error, `the error shape, got ${JSON.stringify(body)}`);
  assert.equal(typeof body.error.message, 'string');
  assert.equal(body.error.requestId, res.headers.get('x-request-id'), 'the body names the request id of the header');
  return body.error;
}

for (const adapter of adapters) {
  describe(`${adapter.name} adapter`, () => {
    let service: Service;
    const shared = {} as Shared;
    before(async () => {
      shared.db = createDatabase({ connectionString: testDb.url, max: 4, statementTimeoutMs: 5_000 });
      shared.entered = latch();
      shared.release = latch();
      service = await adapter.start(shared);
    });
    after(async () => {
      shared.release.open();
      await service.close();
      await shared.db.close();
    });

    test('a request is answered with its id and logged once, named by its route', async () => {
      const res = await fetch(`${service.url}/ok`, {
        headers: { 'x-request-id': `ok-${adapter.name.replace(/\W/g, '')}` },
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { ok: true });
      const id = res.headers.get('x-request-id') as string;
      const line = await service.logs.waitFor((l) => l.request_id === id);
      assert.equal(line.status, 200);
      assert.equal(line.route, '/ok');
    });

    test('/metrics answers a scrape with the admin token as Bearer, with the requests of each route, and refuses one without', async () => {
      await fetch(`${service.url}/ok`).then((r) => r.arrayBuffer());
      const refused = await fetch(`${service.url}/metrics`);
      assert.equal(refused.status, 401);
      assert.equal((await errorOf(refused)).code, 'UNAUTHORIZED');
      const res = await fetch(`${service.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.match(text, /hangproof_http_request_duration_seconds_count\{method="GET",route="\/ok"\} [1-9]/);
      assert.match(text, /hangproof_event_loop/, 'the loop monitor runs');
    });

    test('/status answers the login page without a session, the page and /status.json to an admin', async () => {
      const login = await fetch(`${service.url}/status`);
      assert.equal(login.status, 401);
      assert.match(login.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(login.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.match(await login.text(), /id="login-form"/);
      const page = await fetch(`${service.url}/status`, { headers: { 'x-admin-token': ADMIN } });
      assert.equal(page.status, 200);
      assert.equal(page.headers.get('x-frame-options'), 'DENY');
      await page.arrayBuffer();
      assert.equal((await fetch(`${service.url}/status.json`)).status, 401);
      const json = await fetch(`${service.url}/status.json`, { headers: { 'x-admin-token': ADMIN } });
      assert.equal(json.status, 200);
      assert.equal(json.headers.get('cache-control'), 'no-store');
      const status = (await json.json()) as { endpoints: { route: string }[] };
      const routes = status.endpoints.map((e) => e.route);
      assert.ok(routes.includes('/ok'), `the service's own route is listed (got ${routes.join(', ')})`);
      assert.ok(!routes.some((r) => r.startsWith('/status')), 'the status endpoints are not');
    });

    test('the status page loads in Chromium, signs in with the admin token and shows the service’s requests', {
      skip: skipWithoutChromium,
      timeout: 60_000,
    }, async (t) => {
      const context = await (await launchedBrowser()).newContext();
      t.after(() => context.close());
      const page = await context.newPage();
      const first = await page.goto(`${service.url}/status`);
      assert.equal(first?.status(), 401);
      await page.fill('#token', ADMIN);
      await Promise.all([page.waitForURL(`${service.url}/status`), page.click('#login-form button[type=submit]')]);
      await page.waitForSelector('#endpoints-table tbody tr:not(.empty)', { timeout: 15_000 });
      const rows = await page.$$eval('#endpoints-table tbody tr', (trs) =>
        trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => (td.textContent ?? '').replace(/\s+/g, ' ').trim())),
      );
      const ok = rows.find((r) => r[0] === 'GET /ok');
      assert.ok(ok, `the /ok row is shown (rows: ${rows.map((r) => r[0]).join(' | ')})`);
      assert.ok(Number(ok[2]) >= 1, `requests of /ok: ${ok[2]}`);
    });

    test('a handler that never answers gets 504 REQUEST_TIMEOUT within its deadline, whatever error handler the app has', async () => {
      const took = await measuringLoopStall(() => fetch(`${service.url}/hang`));
      const res = took.value;
      assert.equal(res.status, 504, await res.clone().text());
      assert.equal((await errorOf(res)).code, 'REQUEST_TIMEOUT');
      // The service runs in this process: a stall of its loop (see measuringLoopStall) delays the deadline too.
      assertTookLessThan(took, DEADLINE_MS + 250, 'answered by the deadline');
    });

    test('a caller may ask for a shorter deadline; bad deadline and id headers are ignored, not fatal', async () => {
      const took = await measuringLoopStall(() =>
        fetch(`${service.url}/hang`, { headers: { 'x-request-timeout-ms': '200' } }),
      );
      assert.equal(took.value.status, 504, await took.value.text());
      assertTookLessThan(took, 200 + 250, 'the shorter deadline was kept');
      const bad = await fetch(`${service.url}/ok`, {
        headers: { 'x-request-timeout-ms': 'soon', 'x-request-id': 'has spaces; and more' },
      });
      assert.equal(bad.status, 200);
      assert.match(bad.headers.get('x-request-id') ?? '', /^[A-Za-z0-9._:-]{1,128}$/);
    });

    test('a failing handler and an unknown route get the error shape, with no SQL or stack', async () => {
      const boom = await fetch(`${service.url}/boom`);
      if (adapter.ownErrorHandler) {
        // The application's own handler decides what its own errors look like.
        assert.equal(boom.status, 500);
      } else {
        assert.equal(boom.status, 500);
        const text = await boom.text();
        assert.doesNotMatch(text, /SELECT|password|at /);
        assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'INTERNAL');
      }
      const missing = await fetch(`${service.url}/nope`);
      assert.equal(missing.status, 404);
      assert.equal((await errorOf(missing)).code, 'NOT_FOUND');
    });

    test('a client that leaves gets its query cancelled on the Postgres server', async () => {
      const client = new AbortController();
      const pending = fetch(`${service.url}/sleep`, { signal: client.signal }).catch(() => 'aborted');
      const running = async (): Promise<boolean> =>
        (
          await admin.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'",
          )
        ).rows[0].n > 0;
      await waitUntil('the query runs on the server', running, 5_000);
      client.abort();
      assert.equal(await pending, 'aborted');
      await waitUntil('the query is gone from the server', async () => !(await running()), 2_000);
    });

    test('over the limit a request is refused 503 OVERLOADED with Retry-After before any work', async () => {
      shared.entered = latch();
      shared.release = latch();
      const held = fetch(`${service.url}/hold`);
      await shared.entered.opened;
      const refused = await fetch(`${service.url}/ok`);
      assert.equal(refused.status, 503);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      const err = await errorOf(refused);
      assert.equal(err.code, 'OVERLOADED');
      // Probes answer even while the service refuses work.
      assert.equal((await fetch(`${service.url}/healthz`)).status, 200);
      shared.release.open();
      assert.equal((await held).status, 200);
    });

    test('shutdown fails readiness, lets the request in flight finish, and exits 0', async () => {
      shared.entered = latch();
      shared.release = latch();
      const held = fetch(`${service.url}/hold`);
      await shared.entered.opened;
      assert.equal(await service.ready(), true);
      const exit = service.shutdown();
      await waitUntil('readiness fails', async () => !(await service.ready()), 2_000);
      shared.release.open();
      const res = await held;
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { held: true });
      assert.equal(await exit, 0);
    });
  });
}
