import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ExportedWindows,
  mergeEncoded,
  WINDOW_NAMES,
  WindowedHistogram,
  type WindowName,
  type WindowSummary,
} from 'hangproof/observe';
import { CHROMIUM, launchWithProfile, skipWithoutChromium } from '../support/browser-profile.js';
import { screenshotPath } from '../support/screenshots.js';
import { useTestDatabase } from '../support/test-database.js';
import { ADMIN_TOKEN, admin, botRoutes, botsDatabase, startService } from './helpers.js';

const testDb = useTestDatabase();

type Windows = Record<WindowName, WindowSummary>;

interface Member {
  id: string;
  url: string | null;
  self: boolean;
  up: boolean;
  pid: number | null;
  startedAt: string | null;
  error: string | null;
}

/** One instance's windows, as `app.observe.exportWindows` gives them (the parts a cluster view merges). */
type InstanceWindows = (w: WindowName) => Pick<ExportedWindows, 'routes' | 'postgres'>;

/** A peer's windows: its routes' latencies and its query times, recorded a second ago (1 in 97 of /api/bots/:id a NOT_FOUND). */
function peerWindows(routes: Record<string, readonly number[]>, pgMs: readonly number[]): InstanceWindows {
  const startMs = Date.now() - 30_000;
  const series = Object.entries(routes).map(([key, valuesMs]) => {
    const h = new WindowedHistogram(startMs);
    for (const [i, ms] of valuesMs.entries()) {
      h.record(ms * 1000, Date.now() - 1_000, key.includes(':id') && i % 97 === 0 ? 'NOT_FOUND' : undefined);
    }
    const [method, route] = key.split(' ') as [string, string];
    return { method, route, h };
  });
  const pg = new WindowedHistogram(startMs);
  for (const ms of pgMs) pg.record(ms * 1000, Date.now() - 1_000);
  return (w) => ({
    routes: series.map((s) => ({ method: s.method, route: s.route, latency: s.h.exportWindow(w) })),
    postgres: pg.exportWindow(w),
  });
}

/** What a cluster view publishes: per route and for Postgres, every window merged over the instances. */
function mergeInstances(exports: readonly InstanceWindows[]) {
  const byWindow = new Map(WINDOW_NAMES.map((w) => [w, exports.map((e) => e(w))]));
  const keys = new Set<string>();
  for (const list of byWindow.values())
    for (const e of list) for (const r of e.routes) keys.add(`${r.method} ${r.route}`);
  const endpoints = [...keys]
    .filter((k) => !k.includes('/status'))
    .map((key) => {
      const [method, route] = key.split(' ') as [string, string];
      const windows = Object.fromEntries(
        WINDOW_NAMES.map((w) => [
          w,
          mergeEncoded(
            (byWindow.get(w) ?? []).flatMap((e) =>
              e.routes.filter((r) => r.method === method && r.route === route).map((r) => r.latency),
            ),
          ),
        ]),
      ) as Windows;
      return { method, route, windows };
    })
    .sort((a, b) => b.windows['1m'].count - a.windows['1m'].count);
  const postgres = Object.fromEntries(
    WINDOW_NAMES.map((w) => [w, mergeEncoded((byWindow.get(w) ?? []).map((e) => e.postgres))]),
  ) as Windows;
  return { endpoints, postgres };
}

test('the status page shows a Cluster section with merged numbers when status.json has a cluster field', {
  skip: skipWithoutChromium,
  timeout: 120_000,
}, async (t) => {
  const db = await botsDatabase(testDb.url);
  t.after(() => db.close());

  // desk-2 is a slower neighbour (40-120 ms per request), desk-3 did not answer the last fan-out.
  const peer = peerWindows(
    {
      'GET /api/bots/:id': Array.from({ length: 240 }, (_, i) => 40 + (i % 80)),
      'GET /api/bots': Array.from({ length: 80 }, (_, i) => 25 + (i % 30)),
      'POST /api/orders': Array.from({ length: 30 }, (_, i) => 90 + i * 4),
    },
    Array.from({ length: 400 }, (_, i) => 2 + (i % 60) / 4),
  );
  const peerStarted = new Date(Date.now() - 3_600_000).toISOString();
  const selfStarted = new Date().toISOString();
  let hang = false;
  const appRef: { current?: { observe: { exportWindows(w: WindowName): ExportedWindows } } } = {};

  const { app, url } = await startService(
    {
      pools: { main: db },
      extraStatusTimeoutMs: 300,
      extraStatus: async (signal) => {
        if (hang) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        const self = appRef.current;
        if (self === undefined) return {};
        const instances: Member[] = [
          {
            id: 'desk-1',
            url: null,
            self: true,
            up: true,
            pid: process.pid,
            startedAt: selfStarted,
            error: null,
          },
          {
            id: 'desk-2',
            url: 'http://127.0.0.1:3102',
            self: false,
            up: true,
            pid: 41_872,
            startedAt: peerStarted,
            error: null,
          },
          {
            id: 'desk-3',
            url: 'http://127.0.0.1:3103',
            self: false,
            up: false,
            pid: null,
            startedAt: null,
            error: 'timeout',
          },
        ];
        return {
          cluster: {
            self: 'desk-1',
            fetchedAt: new Date().toISOString(),
            instances,
            instancesUp: 2,
            ...mergeInstances([(w) => self.observe.exportWindows(w), peer]),
          },
        };
      },
    },
    (app) => {
      botRoutes(app, db);
    },
  );
  appRef.current = app;
  t.after(() => app.close());

  for (let i = 0; i < 60; i++) {
    await Promise.all([
      fetch(`${url}/api/bots/${(i % 205) + 1}`).then((r) => r.arrayBuffer()),
      i % 3 === 0 ? fetch(`${url}/api/bots`).then((r) => r.arrayBuffer()) : undefined,
    ]);
  }
  await fetch(`${url}/api/bots/999`);

  // What the page is given, read the way a client reads it.
  const json = (await (await fetch(`${url}/status.json`, { headers: admin })).json()) as {
    cluster: ReturnType<typeof mergeInstances> & { instances: Member[] };
    endpoints: { route: string; windows: Windows }[];
  };
  const mergedOne = json.cluster.endpoints.find((e) => e.route === '/api/bots/:id');
  const ownOne = json.endpoints.find((e) => e.route === '/api/bots/:id');
  assert.ok(mergedOne && ownOne);
  assert.equal(ownOne.windows['1m'].count, 61);
  assert.equal(mergedOne.windows['1m'].count, 61 + 240, 'this instance’s requests plus the peer’s');

  const context = await launchWithProfile(t, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
    viewport: { width: 1440, height: 1050 },
    extraHTTPHeaders: { 'x-admin-token': ADMIN_TOKEN },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const text = async (selector: string): Promise<string> => (await page.textContent(selector)) ?? '';
  const cells = (selector: string) =>
    page.$$eval(selector, (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));

  assert.equal((await page.goto(`${url}/status`))?.status(), 200);
  await page.waitForSelector('#cluster:not([hidden]) #cluster-endpoints-table tbody tr:not(.empty)', {
    timeout: 15_000,
  });

  assert.equal(await text('#cluster-title'), 'Cluster (merged across 2 instances)');
  assert.match(await text('#cluster-meta'), /2 of 3 up/);
  const clusterFirst = await page.evaluate(
    "(document.getElementById('cluster').compareDocumentPosition(document.getElementById('endpoints-table')) & Node.DOCUMENT_POSITION_FOLLOWING) !== 0",
  );
  assert.ok(clusterFirst, 'the Cluster section comes before the per-instance tables');

  const instances = await cells('#cluster-instances-table tbody tr');
  assert.deepEqual(
    instances.map((r) => [r[0], r[1], r[2], r[4]]),
    [
      ['desk-1 this instance', 'up', String(process.pid), '–'],
      ['desk-2', 'up', '41872', '–'],
      ['desk-3', 'down', '–', 'timeout'],
    ],
  );
  assert.match(instances[1]?.[3] ?? '', /\(up 60 min\)/);

  const rows = await cells('#cluster-endpoints-table tbody tr');
  const byRoute = new Map(rows.map((r) => [(r[0] ?? '').replace(/\s+/g, ' ').trim(), r]));
  const one = byRoute.get('GET /api/bots/:id');
  assert.ok(one, `merged /api/bots/:id row (rows: ${[...byRoute.keys()].join(' | ')})`);
  const m = mergedOne.windows['1m'];
  assert.equal(one[2], '301', 'merged request count');
  assert.equal(one[3], m.p50Ms.toFixed(1), 'merged p50');
  assert.equal(one[4], m.p95Ms.toFixed(1), 'merged p95');
  assert.equal(one[5], m.p99Ms.toFixed(1), 'merged p99');
  assert.ok(Number(one[4]) > ownOne.windows['1m'].p95Ms, 'the slower peer raises the merged p95 above this instance’s');
  assert.ok(Number(one[1]) > 0, `rate ${one[1]}`);
  assert.match(one[8] ?? '', /NOT_FOUND \d+/);
  assert.ok(byRoute.has('POST /api/orders'), 'a route only the peer served is listed');

  const pgRow = (await cells('#cluster-postgres-table tbody tr'))[0] ?? [];
  const pg = json.cluster.postgres['1m'];
  assert.equal(pgRow[0], 'all queries');
  assert.ok(pg.count > 400 && Number(pgRow[2]) === pg.count, `merged query count ${pgRow[2]} of ${pg.count}`);
  assert.equal(pgRow[3], pg.p50Ms.toFixed(1));
  assert.equal(pgRow[4], pg.p95Ms.toFixed(1));

  // The per-instance table is still there, now labelled as such, with this instance's count only.
  assert.equal(await text('#endpoints-title'), 'Endpoints (this instance)');
  const own = (await cells('#endpoints-table tbody tr')).find((r) => (r[0] ?? '').includes('/api/bots/:id'));
  assert.equal(own?.[2], '61');

  await page.screenshot({ path: screenshotPath('status-page-cluster.png') });

  // The window picker applies to the merged table too.
  await page.click('#window-picker button[data-window="60m"]');
  const sixty = (await cells('#cluster-endpoints-table tbody tr')).find((r) => (r[0] ?? '').includes('/api/bots/:id'));
  assert.equal(sixty?.[2], '301');

  // When the cluster data stops coming (extraStatus cut at its timeout), the section goes and a warning says why.
  hang = true;
  await page.waitForSelector('#warnings:not([hidden])', { timeout: 15_000 });
  assert.equal(await page.isHidden('#cluster'), true);
  assert.match(await text('#warnings'), /extraStatus \(no answer within 300 ms\)/);
  assert.equal(await text('#endpoints-title'), 'Endpoints');
  assert.deepEqual(pageErrors, []);
});
