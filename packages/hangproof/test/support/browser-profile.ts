import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type BrowserContext, chromium } from 'playwright-core';

/** Debian's Chromium, or the one CHROMIUM_PATH names. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A test's `skip` option: false when Chromium is there, else why the test cannot run. */
export const skipWithoutChromium: false | string = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;

type LaunchOptions = NonNullable<Parameters<typeof chromium.launchPersistentContext>[1]>;

/**
 * Chromium with a profile of its own in a temporary folder, closed and then removed when `t` ends.
 * One after-hook, browser first: node:test runs after-hooks in the order they were added and stops
 * at the first that throws. A profile removed while Chromium still writes to it fails, and the
 * Chromium left running would keep the test process from ever exiting.
 */
export async function launchWithProfile(t: TestContext, options: LaunchOptions): Promise<BrowserContext> {
  const userDataDir = await mkdtemp(join(tmpdir(), 'hangproof-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, options);
  t.after(async () => {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  });
  return context;
}
