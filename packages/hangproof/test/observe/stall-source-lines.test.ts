import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { StatusDocument } from 'hangproof/observe';
import { pino } from 'pino';
import ts from 'typescript';
import { stallWatchdogReady } from '../../src/observe/stall-watchdog.js';
import { latch } from '../support/latch.js';
import { blockingRoute } from './fixtures/blocking-handler.js';
import { admin, startService } from './helpers.js';

const FIXTURE = new URL('./fixtures/blocking-handler.ts', import.meta.url);

/** The 1-based line of the fixture marked as the one that blocks. */
async function blockingLine(): Promise<number> {
  const lines = (await readFile(FIXTURE, 'utf8')).split('\n');
  return lines.findIndex((l) => l.includes('// the blocking line')) + 1;
}

/** The first frame outside Node's own modules, as the stall line writes it. */
const applicationFrame = (stack: readonly string[]): string | undefined => stack.find((f) => !f.includes('(node:'));

/** Asserts that the top application frame of `stack` is the fixture's blocking line, in its .ts source. */
async function assertBlamesBlockingLine(stack: readonly string[]): Promise<void> {
  assert.match(
    applicationFrame(stack) ?? '',
    new RegExp(
      `^crunchGridSynchronously \\(.*test/observe/fixtures/blocking-handler\\.ts:${await blockingLine()}:\\d+\\)$`,
    ),
    `top application frame of ${JSON.stringify(stack)}`,
  );
}

/**
 * How long the fixture blocks. The watchdog's thread takes the stack by pausing the loop from
 * outside; on a starved CPU it can get there hundreds of ms after the threshold, and a stack taken
 * after the block ended shows other code. 1.5 s leaves that margin (it once missed 500 ms, in CI
 * with the CPU shared by another benchmark).
 */
const BLOCK_MS = 1500;

/**
 * Starts a service with `route`, calls GET /crunch-grid, and returns the stack its stall line
 * logged and the service's URL.
 */
async function stallStack(
  t: { after: (fn: () => unknown) => void },
  route: (app: FastifyInstance) => void,
): Promise<{ stack: string[]; url: string }> {
  const stalled = latch();
  let stack: string[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(chunk: string) {
        const line = JSON.parse(chunk) as { event?: string; stack?: string[] };
        if (line.event !== 'event_loop_stall' || !line.stack?.some((f) => f.includes('crunchGridSynchronously')))
          return;
        stack = line.stack;
        stalled.open();
      },
    },
  );
  const { app, url } = await startService({ logger, stallThresholdMs: 100 }, route);
  t.after(() => app.close());
  await stallWatchdogReady();
  assert.equal((await fetch(`${url}/crunch-grid`)).status, 200);
  await stalled.opened;
  return { stack, url };
}

test('a stall in a TypeScript handler run through tsx names the .ts file and the line that blocked', {
  timeout: 30_000,
}, async (t) => {
  const { stack, url } = await stallStack(t, (app) => blockingRoute(app, BLOCK_MS));

  await assertBlamesBlockingLine(stack);

  // The likely causes on /status name the same line.
  const status = (await (await fetch(`${url}/status.json`, { headers: admin })).json()) as StatusDocument;
  const stall = status.likelyCauses.find((c) => c.kind === 'event_loop.blocked');
  assert.equal(stall?.subject, `crunchGridSynchronously (blocking-handler.ts:${await blockingLine()})`);
});

test('a stall in code compiled to .js with a source map beside it names the .ts line, with no flag', {
  timeout: 30_000,
}, async (t) => {
  // As tsc builds it: a .js whose last line points at a .js.map that lists the .ts source.
  const dir = await mkdtemp(join(tmpdir(), 'hangproof-built-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const out = ts.transpileModule(await readFile(FIXTURE, 'utf8'), {
    fileName: fileURLToPath(FIXTURE),
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: true },
  });
  const built = join(dir, 'blocking-handler.mjs');
  const map = JSON.parse(out.sourceMapText ?? '{}') as { sources: string[] };
  // tsc writes sources relative to the map.
  map.sources = [relative(dir, fileURLToPath(FIXTURE))];
  await writeFile(built, out.outputText.replace(/sourceMappingURL=\S+/, 'sourceMappingURL=blocking-handler.mjs.map'));
  await writeFile(`${built}.map`, JSON.stringify(map));
  // Loaded as a built service loads it, without source maps enabled (tsx enables them for this
  // process), so Node keeps no map of it and only the file's own comment leads to one.
  process.setSourceMapsEnabled(false);
  const compiled = (await import(pathToFileURL(built).href).finally(() => process.setSourceMapsEnabled(true))) as {
    blockingRoute: typeof blockingRoute;
  };

  const { stack } = await stallStack(t, (app) => compiled.blockingRoute(app, BLOCK_MS));

  await assertBlamesBlockingLine(stack);
});
