import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { ADMIN_TOKEN, DEMO_TOKEN, startTestDesk, type TestDesk } from './test-desk.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let t: TestDesk;
before(async () => {
  t = await startTestDesk();
});
after(async () => {
  await t?.close();
});

const setFault = (body: unknown): Promise<Response> =>
  fetch(`${t.url}/admin/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'x-admin-token': ADMIN_TOKEN },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });

test('the dashboard shows the last data at once, and keeps it under a warning when a refresh fails', {
  skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`,
  timeout: 60_000,
}, async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.goto(`${t.url}/#token=${DEMO_TOKEN}`);
    // Signed in from the link; the token leaves the address bar.
    await page.locator('#counts div').first().waitFor({ timeout: 10_000 });
    assert.ok(!page.url().includes(DEMO_TOKEN));
    // The list is its own request: it may render just after the overview.
    await page.locator('#bots tr').first().waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#status-link').getAttribute('href'), '/status');
    const counts = await page.locator('#counts').textContent();

    // The overview now fails at the statement timeout: a reload shows the saved overview at
    // once, then a warning, and never blanks it.
    assert.equal(
      (await setFault({ kind: 'slowQuery', route: 'overview', sleepMs: 20_000, durationSec: 60 })).status,
      200,
    );
    try {
      await page.reload();
      await page.locator('#counts div').first().waitFor({ timeout: 1_000 });
      assert.equal(
        await page.locator('#counts').textContent(),
        counts,
        'cached overview rendered before the refresh answered',
      );
      await page.locator('#banner').waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(
        (await page.locator('#banner').textContent()) ?? '',
        /overview: refresh failed \((DEPENDENCY_TIMEOUT|REQUEST_TIMEOUT)\)/,
      );
      assert.equal(await page.locator('#counts').textContent(), counts, 'data kept after the failure');
    } finally {
      await setFault({ kind: 'clear' });
    }
  } finally {
    await browser.close();
  }
});
