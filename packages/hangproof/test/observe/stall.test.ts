import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { sleep, step } from 'hangproof';
import { stallWatchdogReady } from '../../src/observe/stall-watchdog.js';
import { latch, waitUntil } from '../support/latch.js';
import { admin, busyLoop, memoryLogger, startService } from './helpers.js';

/** Formats a deep object over and over for `ms`: a loop blocked inside Node's own JavaScript. */
function inspectRepeatedly(ms: number): number {
  const deep = { level: { of: { nesting: Array.from({ length: 50 }, (_, i) => ({ i, tags: ['a', 'b'] })) } } };
  const until = performance.now() + ms;
  let chars = 0;
  while (performance.now() < until) chars += inspect(deep, { depth: 6 }).length;
  return chars;
}

/** A named function, so the captured stack can be checked for it. */
function crunchPricesSynchronously(ms: number): number {
  return busyLoop(ms);
}

interface StallJson {
  durationMs: number;
  stack?: { functionName: string; url: string; line: number }[];
  inFlight: { name: string; requestId: string; stepInFlight?: string }[];
  inFlightDuringStall: boolean;
}

test('a request that blocks the loop for ~500 ms is reported with its stack, its step and the other requests in flight', async (t) => {
  const { logger, lines } = memoryLogger();
  let enteredWaiting = (): void => {};
  const waitingEntered = new Promise<void>((resolve) => {
    enteredWaiting = resolve;
  });
  // /waiting stays in flight until the test has what it needs, however slow the crunch is to run.
  const upstreamAnswered = latch();
  // A low threshold leaves the watchdog most of the 500 ms to pause the thread, even on a busy CPU.
  const { app, url } = await startService({ logger, stallThresholdMs: 100 }, (app) => {
    app.get('/crunch', async () => {
      await step('price-grid', async () => crunchPricesSynchronously(500));
      return 'done';
    });
    app.get('/waiting', async () => {
      enteredWaiting();
      await step('wait-upstream', () => upstreamAnswered.opened);
      return 'done';
    });
  });
  t.after(() => app.close());
  t.after(upstreamAnswered.open);
  // The watchdog thread polls before the loop is blocked.
  await stallWatchdogReady();

  const waiting = fetch(`${url}/waiting`, { headers: { 'x-request-id': 'waiting-1' } });
  await waitingEntered;
  const res = await fetch(`${url}/crunch`, { headers: { 'x-request-id': 'crunch-1' } });
  assert.equal(res.status, 200);

  // The report arrives from the watchdog thread just after the loop resumes. On a starved CPU other,
  // shorter stalls may be reported too: take the one the busy request caused.
  const crunchStall = (): Record<string, unknown> | undefined =>
    lines.find(
      (l) =>
        l.event === 'event_loop_stall' &&
        (l.in_flight as { requestId: string }[]).some((r) => r.requestId === 'crunch-1') &&
        (l.stall_ms as number) >= 400,
    );
  let line = crunchStall();
  for (let i = 0; i < 40 && line === undefined; i++) {
    await sleep(50);
    line = crunchStall();
  }
  assert.ok(line, 'a stall was logged');
  assert.ok((line.stall_ms as number) >= 400, `stall of ${line.stall_ms} ms`);
  assert.ok((line.stack_after_ms as number) < (line.stall_ms as number));
  const stack = line.stack as string[];
  assert.ok(Array.isArray(stack), `a stack was captured (${String(line.stack_note)})`);
  // The innermost frames are the loop itself (or a Node internal it calls, such as performance.now).
  assert.ok(
    stack.slice(0, 5).some((f) => /busyLoop|crunchPricesSynchronously/.test(f)),
    `innermost frames: ${stack.slice(0, 5).join(' < ')}`,
  );
  assert.ok(stack.some((f) => f.includes('crunchPricesSynchronously') && f.includes('stall.test.ts')));
  const inFlight = line.in_flight as { requestId: string; name: string; stepInFlight: string | null }[];
  // The step in flight can only come from the paused thread; the fallback list is taken afterwards.
  assert.equal(line.in_flight_during_stall, true, 'the requests in flight were read from the paused thread');
  const crunch = inFlight.find((r) => r.requestId === 'crunch-1');
  assert.equal(crunch?.name, '/crunch');
  assert.equal(crunch?.stepInFlight, 'price-grid');
  assert.equal(inFlight.find((r) => r.requestId === 'waiting-1')?.stepInFlight, 'wait-upstream');

  const status = (await (await fetch(`${url}/status.json`, { headers: admin })).json()) as {
    eventLoop: { stallsTotal: number; recentStalls: StallJson[] };
  };
  assert.ok(status.eventLoop.stallsTotal >= 1);
  const stall = status.eventLoop.recentStalls.find((r) => r.inFlight.some((f) => f.requestId === 'crunch-1'));
  assert.equal(stall?.inFlightDuringStall, true);
  assert.ok(stall?.stack?.some((f) => f.functionName === 'crunchPricesSynchronously'));
  upstreamAnswered.open();
  assert.equal((await waiting).status, 200);
});

test("a stall inside Node's own code (util.inspect) still lists the requests in flight from the paused thread", async (t) => {
  const { logger, lines } = memoryLogger();
  const { app, url } = await startService({ logger, stallThresholdMs: 100 }, (app) => {
    app.get('/inspect', async () => {
      // Nearly all of this time is spent in node:internal/util/inspect, so the pause lands there.
      await step('render-debug-dump', async () => inspectRepeatedly(500));
      return 'done';
    });
  });
  t.after(() => app.close());
  await stallWatchdogReady();
  // The pause lands in Node's code nearly always; when it lands in the loop's own line instead,
  // the case is not exercised, so the request is repeated (at most 3 times).
  let line: Record<string, unknown> | undefined;
  let requestId = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    requestId = `inspect-${attempt}`;
    assert.equal((await fetch(`${url}/inspect`, { headers: { 'x-request-id': requestId } })).status, 200);
    line = undefined;
    for (let i = 0; i < 40 && line === undefined; i++) {
      line = lines.find(
        (l) =>
          l.event === 'event_loop_stall' &&
          (l.stall_ms as number) >= 400 &&
          (l.in_flight as { requestId: string }[]).some((r) => r.requestId === requestId),
      );
      if (line === undefined) await sleep(50);
    }
    assert.ok(line, 'a stall was logged');
    if (/node:/.test((line.stack as string[] | undefined)?.[0] ?? '')) break;
  }
  assert.ok(line, 'a stall was logged');
  const stack = line.stack as string[];
  assert.ok(Array.isArray(stack), `a stack was captured (${String(line.stack_note)})`);
  assert.match(stack[0] ?? '', /node:/, `the loop was paused in Node's code: ${stack.slice(0, 3).join(' < ')}`);
  assert.equal(line.in_flight_during_stall, true, 'the requests in flight were read from the paused thread');
  const inFlight = line.in_flight as { requestId: string; stepInFlight: string | null }[];
  assert.equal(inFlight.find((r) => r.requestId === requestId)?.stepInFlight, 'render-debug-dump');
});

test('with stack capture off, a stall is still reported with the requests in flight', async (t) => {
  const { logger, lines } = memoryLogger();
  const { app, url } = await startService({ logger, stallThresholdMs: 200, captureStallStacks: false }, (app) => {
    app.get('/crunch', async () => {
      await step('price-grid', async () => crunchPricesSynchronously(400));
      return 'done';
    });
  });
  t.after(() => app.close());
  await stallWatchdogReady();
  assert.equal((await fetch(`${url}/crunch`, { headers: { 'x-request-id': 'crunch-2' } })).status, 200);
  // The report comes from the watchdog thread just after the loop resumes: wait for it.
  await waitUntil('the stall to be logged', () => lines.some((l) => l.event === 'event_loop_stall'));
  const line = lines.find((l) => l.event === 'event_loop_stall');
  assert.ok(line, 'a stall was logged');
  assert.equal(line.stack, undefined);
  assert.equal(line.stack_note, 'stack capture disabled');
  assert.ok((line.in_flight as { requestId: string }[]).some((r) => r.requestId === 'crunch-2'));
});

test('requests that keep ending count as beats: a stall right after a steady run of them is reported at its own length', async (t) => {
  const { logger, lines } = memoryLogger();
  const { app, url } = await startService({ logger, stallThresholdMs: 300, captureStallStacks: false }, (app) => {
    app.get('/quick', async () => 'ok');
    app.get('/crunch', async () => {
      await step('price-grid', async () => crunchPricesSynchronously(700));
      return 'done';
    });
  });
  t.after(() => app.close());
  await stallWatchdogReady();
  // 1.5 s of requests one after another. Each end is a beat and pushes the beat timer back, so
  // the timer never fires: the thread sees only the requests' beats. Were those lost, it would
  // take the whole run for one stall, reported with the first beat after it: as one stall of
  // more than 2 s, instead of the 0.7 s the crunch blocks for.
  const until = performance.now() + 1500;
  let served = 0;
  while (performance.now() < until) {
    assert.equal((await fetch(`${url}/quick`)).status, 200);
    served++;
  }
  assert.ok(served >= 20, `${served} requests served`);
  assert.deepEqual(
    lines.filter((l) => l.event === 'event_loop_stall'),
    [],
    'no stall while requests kept ending',
  );
  assert.equal((await fetch(`${url}/crunch`, { headers: { 'x-request-id': 'crunch-3' } })).status, 200);
  await waitUntil('the stall to be logged', () => lines.some((l) => l.event === 'event_loop_stall'));
  const line = lines.find((l) => l.event === 'event_loop_stall');
  assert.ok(line, 'a stall was logged');
  const stallMs = line.stall_ms as number;
  assert.ok(stallMs >= 600 && stallMs < 1500, `one stall of about 700 ms, not ${stallMs} ms`);
  assert.ok((line.in_flight as { requestId: string }[]).some((r) => r.requestId === 'crunch-3'));
});

test('a process that exits with the watchdog running exits cleanly, without "Waiting for the debugger to disconnect"', async () => {
  const script = `
    import Fastify from 'fastify';
    import { hangproof } from 'hangproof/fastify';
    import { observe } from 'hangproof/observe';
    import { pino } from 'pino';
    import { stallWatchdogReady } from '../../src/observe/stall-watchdog.js';
    const app = Fastify();
    await app.register(hangproof, { logger: pino({ level: 'silent' }) });
    await app.register(observe, { logger: pino({ level: 'silent' }), defaultMetrics: false });
    await app.ready();
    await stallWatchdogReady();
    process.exit(0);
  `;
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script],
    {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  const exited = await Promise.race([once(child, 'exit'), sleep(15_000).then(() => 'timeout')]);
  if (exited === 'timeout') child.kill('SIGKILL');
  assert.notEqual(exited, 'timeout', 'the process exited');
  assert.doesNotMatch(stderr, /Waiting for the debugger/);
  assert.deepEqual(exited, [0, null]);
});
