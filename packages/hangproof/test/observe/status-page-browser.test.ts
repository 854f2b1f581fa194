import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sleep, step } from 'hangproof';
import { createDependencies } from 'hangproof/deps';
import { heartbeats } from 'hangproof/observe';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import { chromium } from 'playwright-core';
import { screenshotPath } from '../support/screenshots.js';
import { ADMIN_TOKEN, botRoutes, botsDatabase, startService } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let testDb: TestDatabase;
before(async () => {
  testDb = await createTestDatabase();
});
after(async () => {
  await testDb.drop();
});

test('the status page shows live numbers after login, and keeps the last data under a warning once the service stops', {
  skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`,
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
  t.after(() => deps.close());

  heartbeats.clear();
  heartbeats.report('sync-prices', { ok: true, durationMs: 182, detail: '64 symbols', expectedEveryMs: 60_000 });
  heartbeats.report('expire-sessions', { ok: false, durationMs: 2004, detail: 'REQUEST_TIMEOUT' });

  const { app, url } = await startService(
    {
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
  await Promise.all(traffic.map((p) => p.then((r) => r.arrayBuffer())));

  const userDataDir = await mkdtemp(join(tmpdir(), 'hangproof-chromium-'));
  t.after(() => rm(userDataDir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(userDataDir, {
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
    viewport: { width: 1440, height: 1000 },
  });
  t.after(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  const text = async (selector: string): Promise<string> => (await page.textContent(selector)) ?? '';
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // Not signed in: the login form, and a wrong token is refused.
  const first = await page.goto(`${url}/status`);
  assert.equal(first?.status(), 401);
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
