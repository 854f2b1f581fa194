import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { sleep, step } from 'hangproof';
import { createDependencies } from 'hangproof/deps';
import { heartbeats } from 'hangproof/observe';
import { createDatabase } from 'hangproof/pg';
import { freePort } from 'hangproof/testing';
import pg from 'pg';
import { pino } from 'pino';
import type { Page } from 'playwright-core';
import { CHROMIUM, launchWithProfile, skipWithoutChromium } from '../support/browser-profile.js';
import { screenshotPath } from '../support/screenshots.js';
import { useTestDatabase } from '../support/test-database.js';
import { ADMIN_TOKEN, botRoutes, botsDatabase, startService } from './helpers.js';

const testDb = useTestDatabase();

/** Opens an upgraded connection (status 101) to `url` and resolves once the server has closed it. */
function upgradedStream(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    req.on('upgrade', (_res, socket) => {
      socket.resume();
      socket.on('close', () => resolve());
    });
    req.on('response', (res) => reject(new Error(`expected 101, got ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

/** Every counter on the page against the lists and tables it summarises, for the chosen window. */
async function checkCountersAgree(
  page: Page,
): Promise<{ timeouts: number; serverErrors: number; clientErrors: number }> {
  const cards = await page.$$eval('[data-card]', (els) =>
    Object.fromEntries(els.map((e) => [e.getAttribute('data-card'), e.querySelector('.card-value')?.textContent])),
  );
  const table = await page.$$eval('#endpoints-table tbody tr:not(.empty)', (trs) =>
    trs.map((tr) => {
      const tds = [...tr.querySelectorAll('td')];
      const chips = [...(tds[8]?.querySelectorAll('.chip') ?? [])].map((c) => ({
        bad: c.classList.contains('bad'),
        n: Number((c.textContent ?? '').split(' ').at(-1)),
      }));
      return { requests: Number(tds[2]?.textContent), timeouts: Number(tds[7]?.textContent), chips };
    }),
  );
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const timeouts = Number(cards.timeouts);
  const serverErrors = Number(cards['server-errors']);
  const clientErrors = Number(cards['client-errors']);
  assert.equal(Number(cards.requests), sum(table.map((r) => r.requests)), 'requests card = endpoint rows');
  assert.equal(timeouts, sum(table.map((r) => r.timeouts)), 'timeouts card = Timeouts column');
  assert.equal(timeouts, (await page.$$('#timeouts details')).length, 'timeouts card = Recent timeouts list');
  assert.match((await page.textContent('#timeouts-title')) ?? '', new RegExp(`: ${timeouts}$`));
  const chips = table.flatMap((r) => r.chips);
  assert.equal(serverErrors, sum(chips.filter((c) => c.bad).map((c) => c.n)), 'server errors card = 5xx chips');
  assert.equal(clientErrors, sum(chips.filter((c) => !c.bad).map((c) => c.n)), 'client errors card = 4xx chips');
  return { timeouts, serverErrors, clientErrors };
}

test('the status page shows live numbers after login, and keeps the last data under a warning once the service stops', {
  skip: skipWithoutChromium,
  timeout: 120_000,
}, async (t) => {
  // A slow upstream the service depends on.
  const market = createServer((_req, res) => {
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"btc":64000}'), 15);
  });
  await new Promise<void>((resolve) => market.listen(0, '127.0.0.1', resolve));
  t.after(() => market.close());

  const db = await botsDatabase(testDb.url);
  t.after(() => db.close());
  const deps = createDependencies();
  const marketDep = deps.http('market', { baseUrl: `http://127.0.0.1:${(market.address() as AddressInfo).port}` });
  // A provider nobody listens for: its health probe fails, and no call has gone to it.
  deps.http('broker', {
    baseUrl: `http://127.0.0.1:${await freePort()}`,
    health: { path: '/health', intervalMs: 200, timeoutMs: 100 },
  });
  t.after(() => deps.close());

  heartbeats.clear();
  heartbeats.report('sync-prices', { ok: true, durationMs: 182, detail: '64 symbols', expectedEveryMs: 60_000 });
  heartbeats.report('expire-sessions', { ok: false, durationMs: 2004, detail: 'REQUEST_TIMEOUT' });

  const { app, url } = await startService(
    {
      serviceName: 'status-test',
      pools: { main: db },
      dependencies: deps,
      slowRequestMs: 300,
      settings: {
        deadlineMs: 2000,
        server: { requestTimeoutMs: 13_000, keepAliveTimeoutMs: 72_000 },
        pg: { statementTimeoutMs: 1500 },
      },
    },
    (app) => {
      botRoutes(app, db);
      app.get('/api/prices', async () => (await marketDep.get('/prices')).json());
      app.get('/api/report', async () => {
        await step('aggregate', () => db.query('SELECT pg_sleep(0.35)'));
        await step('render', () => sleep(40));
        return 'ok';
      });
      app.post('/api/bots/:id/pause', async (req) => {
        await db.query('UPDATE bots SET name = name WHERE id = $1', [Number((req.params as { id: string }).id)]);
        return 'paused';
      });
      // Takes the connection over as a WebSocket server would, and holds it open past slowRequestMs.
      app.get('/api/stream', (_req, reply) => {
        reply.hijack();
        const socket = reply.raw.socket;
        socket?.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
        setTimeout(() => socket?.end(), 400);
      });
      app.get('/api/export', { config: { hangproof: { deadlineMs: 250 } } }, async (req) => {
        await step('load', () => db.query('SELECT count(*) FROM bots'));
        await step('upload', () => sleep(5000, req.hangproof?.signal));
        return 'unreachable';
      });
    },
  );
  let serviceUp = true;
  t.after(async () => {
    if (serviceUp) await app.close();
  });

  // Some traffic: fast reads, a dependency, slow reports, a timeout and a few 404s.
  const traffic: Promise<Response>[] = [];
  for (let i = 0; i < 60; i++) {
    traffic.push(fetch(`${url}/api/bots/${(i % 210) + 1}`));
    if (i % 3 === 0) traffic.push(fetch(`${url}/api/bots`));
    if (i % 4 === 0) traffic.push(fetch(`${url}/api/prices`));
    if (i % 20 === 0) traffic.push(fetch(`${url}/api/report`));
    if (i % 10 === 0) await Promise.all(traffic.splice(0).map((p) => p.then((r) => r.arrayBuffer())));
  }
  await fetch(`${url}/api/bots/999`);
  await fetch(`${url}/api/export`);
  await upgradedStream(`${url}/api/stream`);
  // A session outside the service holds a row, as an operator's open psql transaction would.
  const operator = new pg.Client({ connectionString: testDb.url, application_name: 'psql' });
  operator.on('error', () => {});
  await operator.connect();
  t.after(() => operator.end());
  await operator.query('BEGIN');
  await operator.query('SELECT * FROM bots WHERE id = 5 FOR UPDATE');
  const paused = await fetch(`${url}/api/bots/5/pause`, { method: 'POST' });
  const pausedBody = (await paused.json()) as { error: { code: string; phase: string } };
  assert.equal(pausedBody.error.phase, 'lock');
  await operator.query('ROLLBACK');
  await Promise.all(traffic.map((p) => p.then((r) => r.arrayBuffer())));

  const context = await launchWithProfile(t, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 1000 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const text = async (selector: string): Promise<string> => (await page.textContent(selector)) ?? '';
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const requested: string[] = [];
  page.on('request', (r) => requested.push(new URL(r.url()).pathname));

  // Not signed in: the login form, and a wrong token is refused.
  const first = await page.goto(`${url}/status`);
  assert.equal(first?.status(), 401);
  assert.equal(await page.$eval('#token-hint', (e) => e.hasAttribute('hidden')), true, 'a token is configured');
  await page.fill('#token', 'not-the-token-at-all');
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#login-error:not([hidden])');

  await page.fill('#token', ADMIN_TOKEN);
  await Promise.all([page.waitForURL(`${url}/status`), page.click('#login-form button[type=submit]')]);
  const cookies = await context.cookies(url);
  const session = cookies.find((c) => c.name === 'hangproof_status');
  assert.ok(session, 'a session cookie was set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.ok(!session.value.includes(ADMIN_TOKEN), 'the cookie does not hold the token');

  // The tables fill with real numbers.
  await page.waitForFunction(
    "document.querySelectorAll('#endpoints-table tbody tr:not(.empty)').length >= 4",
    undefined,
    {
      timeout: 15_000,
    },
  );
  const rows = await page.$$eval('#endpoints-table tbody tr', (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')),
  );
  const byRoute = new Map(rows.map((r) => [(r[0] ?? '').replace(/\s+/g, ' ').trim(), r]));
  const one = byRoute.get('GET /api/bots/:id');
  assert.ok(one, `the /api/bots/:id row is shown (rows: ${[...byRoute.keys()].join(' | ')})`);
  assert.equal(one[2], '61', 'requests');
  assert.ok(Number(one[3]) > 0 && Number(one[4]) >= Number(one[3]), `p50 ${one[3]} and p95 ${one[4]} are real numbers`);
  assert.match(one[8] ?? '', /NOT_FOUND 1/);
  const exportRow = byRoute.get('GET /api/export');
  assert.equal(exportRow?.[7], '1', 'the timeout is counted');

  const pgRow = await page.$eval('#postgres-table tbody tr', (tr) =>
    [...tr.querySelectorAll('td')].map((td) => td.textContent),
  );
  assert.equal(pgRow[0], 'all queries');
  assert.ok(Number(pgRow[3]) > 0, `Postgres p95 ${pgRow[3]}`);
  assert.ok((await page.$$('#queries-table tbody tr:not(.empty)')).length >= 3, 'the slowest fingerprints are listed');
  assert.match(await text('#pools-table tbody'), /main/);
  assert.match(await text('#dependencies-table tbody'), /market/);
  assert.match(await text('#jobs-table tbody'), /sync-prices.*ok/s);
  assert.match(await text('#jobs-table tbody'), /expire-sessions.*failing/s);
  assert.match(await text('#timeouts'), /last completed step: load · in flight: upload/);
  assert.match(await text('#slow-requests'), /\/api\/report/);
  assert.match(await text('#settings'), /statementTimeoutMs/);

  // One story: the title names the service, every counter agrees with its lists, the lock
  // timeout shows its phase and what held the lock, the upgraded stream is not a slow request.
  assert.equal(await page.title(), 'status-test · System status');
  const counts = await checkCountersAgree(page);
  assert.equal(counts.timeouts, 2, 'the export deadline and the lock timeout');
  assert.equal(counts.clientErrors, 1, 'the 404 of /api/bots/999');
  assert.match(await text('#timeouts'), /UPDATE bots.*DEPENDENCY_TIMEOUT.*phase lock/s);
  assert.match(
    await text('#lock-waits'),
    /bots.*\/api\/bots\/:id\/pause.*blocked by pid \d+ \(psql\): idle in transaction/s,
  );
  assert.doesNotMatch(await text('#slow-requests'), /\/api\/stream/);
  assert.doesNotMatch(await text('#endpoints-table'), /unmatched/);
  assert.ok(!requested.includes('/favicon.ico'), `the page asked for: ${requested.join(' ')}`);
  await page.waitForSelector('#dependencies-table .note', { timeout: 10_000 });
  assert.match(await text('#dependencies-table'), /broker.*down.*closed.*breaker counts calls, not probes/s);
  // A string, as for waitForFunction: this package compiles without the DOM's types.
  const overflow = await page.evaluate(`({
    page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    tables: [...document.querySelectorAll('.two table')]
      .filter((t) => t.scrollWidth > t.parentElement.clientWidth)
      .map((t) => t.id),
  })`);
  assert.deepEqual(overflow, { page: 0, tables: [] }, 'nothing wider than 1280 px');
  await page.click('#window-picker button[data-window="5m"]');
  assert.equal((await checkCountersAgree(page)).timeouts, 2);
  await page.click('#window-picker button[data-window="1m"]');

  // Open the first slow request's waterfall for the picture.
  await page.click('#slow-requests details summary');
  await page.waitForSelector('#slow-requests details[open] .bar');
  await page.screenshot({ path: screenshotPath('status-page.png'), fullPage: true });

  // The service stops: the page warns and keeps the last data.
  await app.close();
  serviceUp = false;
  await page.waitForSelector('#stale-banner:not([hidden])', { timeout: 15_000 });
  assert.match(await text('#stale-banner'), /not answering/);
  assert.ok((await page.$$('#endpoints-table tbody tr:not(.empty)')).length >= 4, 'the last data is still shown');
  await page.screenshot({ path: screenshotPath('status-page-stale.png') });
  assert.deepEqual(pageErrors, []);
});

test('the likely-causes panel names a lock wait on the table another session holds', {
  skip: skipWithoutChromium,
  timeout: 60_000,
}, async (t) => {
  const db = createDatabase({
    connectionString: testDb.url,
    name: 'main',
    lockTimeoutMs: 600,
    logger: pino({ level: 'silent' }),
  });
  t.after(() => db.close());
  await db.query('CREATE TABLE locked_bots (id int PRIMARY KEY, name text NOT NULL)');
  // No stall watchdog: this process also drives the browser and, beside another test file, can
  // stall for real; that stall would be ranked among the causes too, and this test is about the lock.
  const { app, url } = await startService(
    { serviceName: 'locked-test', pools: { main: db }, stallThresholdMs: 0 },
    (app) =>
      app.get('/api/bots/:id', async (req) => {
        const id = Number((req.params as { id: string }).id);
        return (await db.query('SELECT id, name FROM locked_bots WHERE id = $1', [id])).rows[0];
      }),
  );
  t.after(() => app.close());

  // An operator's session takes the whole table and keeps its transaction open.
  const operator = new pg.Client({ connectionString: testDb.url, application_name: 'psql' });
  operator.on('error', () => {});
  await operator.connect();
  t.after(() => operator.end());
  await operator.query('BEGIN');
  await operator.query('LOCK TABLE locked_bots IN ACCESS EXCLUSIVE MODE');
  const answers = await Promise.all([1, 2, 3].map((id) => fetch(`${url}/api/bots/${id}`)));
  for (const res of answers) assert.equal(((await res.json()) as { error: { phase: string } }).error.phase, 'lock');

  const context = await launchWithProfile(t, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    viewport: { width: 1280, height: 1000 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${url}/status`);
  await page.fill('#token', ADMIN_TOKEN);
  await Promise.all([page.waitForURL(`${url}/status`), page.click('#login-form button[type=submit]')]);

  // The lock's evidence is captured off the request path; the page polls until it is ranked.
  await page.waitForSelector('#likely-causes .cause[data-kind="pg.lock_wait"]', { timeout: 15_000 });
  await operator.query('ROLLBACK');
  assert.equal(await page.textContent('#causes-title'), 'Likely causes now (last minute)');
  const first = await page.$eval('#likely-causes .cause', (e) => ({
    kind: e.getAttribute('data-kind'),
    subject: e.querySelector('.cause-subject')?.textContent,
    title: e.querySelector('strong')?.textContent ?? '',
  }));
  assert.equal(first.kind, 'pg.lock_wait');
  assert.equal(first.subject, 'locked_bots');
  assert.match(first.title, /^lock wait on locked_bots, held by pid \d+ \(psql, idle in transaction/);
  await page.screenshot({ path: screenshotPath('status-page-likely-causes.png') });
  assert.deepEqual(pageErrors, []);
});
