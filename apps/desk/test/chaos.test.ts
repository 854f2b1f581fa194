/**
 * `hangproof chaos` and `hangproof report` against the desk: the incident scenarios of
 * examples/chaos/ run as a user runs them (the CLI as a child process, the desk's own fault
 * switchboard), with shortened phases, and the desk's log of each run goes through the report.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CliRun, LogCapture, runHangproof } from './hangproof-cli.js';
import { ADMIN_TOKEN, DEMO_TOKEN, startTestDesk, type TestDesk } from './test-desk.js';

/** The parts of `hangproof chaos --out` and `hangproof report --json` these tests read. */
interface ChaosResult {
  readonly ok: boolean;
  readonly timeline: { readonly injectedAtMs: number; readonly removedAtMs: number };
  readonly load: {
    readonly sent: number;
    readonly statuses: Record<string, number>;
    readonly errorCodes: Record<string, number>;
    readonly latencyMs: { readonly p99: number; readonly max: number };
  };
  readonly promises: readonly {
    readonly id: string;
    readonly verdict: 'pass' | 'fail' | 'skip';
    readonly observed: string;
  }[];
}
interface Report {
  readonly causes: readonly { readonly kind: string; readonly subject: string; readonly score: number }[];
}

/**
 * Every promise `hangproof chaos` checks; with --admin-token and --database-url none is skipped.
 * Seed 003 breaks the `healthz` one by design.
 */
const PROMISE_IDS = ['healthy-before', 'deadline', 'healthz', 'pool', 'idle-in-transaction', 'recovery'];

/** Bound of one CLI run: its phases plus start-up of node + tsx on a busy 2-core machine. */
const CLI_TIMEOUT_MS = 30_000;

let t: TestDesk;
let dir: string;
const log = new LogCapture();
/** The desk's log lines of each scenario's run, by scenario file. */
const runLogs = new Map<string, string>();

before(async () => {
  t = await startTestDesk({ logger: log.logger });
  dir = await mkdtemp(join(tmpdir(), 'desk-chaos-'));
});
after(async () => {
  await t?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/**
 * Runs one scenario against the desk with short phases and a 500 ms deadline margin (two shared
 * cores), returning the CLI run and its JSON result; the desk's log of the run is kept for the report.
 */
async function chaos(file: string, phases: readonly string[]): Promise<{ run: CliRun; result: ChaosResult }> {
  const out = join(dir, file.replace(/\.json$/, '.result.json'));
  const mark = log.mark;
  const run = await runHangproof(
    [
      'chaos',
      `examples/chaos/${file}`,
      '--target',
      t.url,
      '--admin-token',
      ADMIN_TOKEN,
      '--database-url',
      t.database.url,
      '--deadline-margin-ms',
      '500',
      ...phases,
      '--out',
      out,
    ],
    { env: { DEMO_USER_TOKEN: DEMO_TOKEN }, timeoutMs: CLI_TIMEOUT_MS },
  );
  runLogs.set(file, log.since(mark));
  assert.notEqual(run.code, null, `the chaos run ended within ${CLI_TIMEOUT_MS} ms\n${run.stdout}${run.stderr}`);
  assert.ok(run.code === 0 || run.code === 1, `exit 0 or 1 (a verdict), not a usage or fault error\n${run.stderr}`);
  const result = JSON.parse(await readFile(out, 'utf8')) as ChaosResult;
  return { run, result };
}

/** `hangproof report` on the desk's log of one scenario's run. */
async function reportOn(file: string): Promise<Report> {
  const lines = runLogs.get(file);
  assert.ok(lines !== undefined && lines !== '', `the ${file} run logged lines`);
  const logFile = join(dir, file.replace(/\.json$/, '.log'));
  await writeFile(logFile, lines);
  const run = await runHangproof(['report', logFile, '--json'], { timeoutMs: CLI_TIMEOUT_MS });
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as Report;
}

/** The desk's log lines of one scenario's run, parsed. */
const logLines = (file: string): Record<string, unknown>[] =>
  (runLogs.get(file) ?? '')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const verdicts = (r: ChaosResult): Record<string, string> =>
  Object.fromEntries(r.promises.map((p) => [p.id, p.verdict]));
const table = (r: ChaosResult): string => r.promises.map((p) => `${p.id}: ${p.verdict} (${p.observed})`).join('\n');

describe('seed 000: slow overview queries and a slow provider', () => {
  const file = 'seed-000-pool-exhaustion.json';

  test('the desk keeps every chaos promise while the overview exhausts its pool', async (tc) => {
    const { run, result } = await chaos(file, ['--warmup', '1s', '--hold', '2s', '--recovery', '3s']);
    tc.diagnostic(`${Math.round(run.durationMs)} ms; load ${JSON.stringify(result.load.statuses)}`);
    tc.diagnostic(table(result));
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    assert.equal(result.ok, true);
    assert.deepEqual(verdicts(result), Object.fromEntries(PROMISE_IDS.map((id) => [id, 'pass'])), table(result));
    // The fault bit: with every connection in pg_sleep, requests that got none within the 1 s
    // acquire bound answered 503 DEPENDENCY_TIMEOUT instead of queueing past their deadline.
    assert.ok((result.load.errorCodes.DEPENDENCY_TIMEOUT ?? 0) > 0, JSON.stringify(result.load.errorCodes));
  });

  test('the report on its log names the slow query as the likely cause', async (tc) => {
    const report = await reportOn(file);
    tc.diagnostic(JSON.stringify(report.causes.slice(0, 3).map((c) => [c.kind, c.subject, c.score])));
    const top = report.causes[0];
    assert.ok(top !== undefined, 'a likely cause stood out');
    assert.equal(top.kind, 'pg.slow_query', JSON.stringify(report.causes.slice(0, 3)));
    assert.match(top.subject, /pg_sleep/);
  });
});

describe('seed 004: the market-data provider stops answering', () => {
  const file = 'seed-004-provider-outage.json';

  test('the bot page keeps every chaos promise while the provider hangs', async (tc) => {
    // The page's quote is served fresh for 5 s (QUOTE_SNAPSHOT.freshMs) before the provider is
    // asked again: the hold must outlast that, or the outage never reaches the page.
    const { run, result } = await chaos(file, ['--warmup', '1s', '--hold', '5s', '--recovery', '2s']);
    tc.diagnostic(`${Math.round(run.durationMs)} ms; load ${JSON.stringify(result.load.statuses)}`);
    tc.diagnostic(table(result));
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    assert.equal(result.ok, true);
    assert.deepEqual(verdicts(result), Object.fromEntries(PROMISE_IDS.map((id) => [id, 'pass'])), table(result));
    // The outage reached the page: its quote went stale during the hold and the refreshes failed
    // (served behind the last known price, so the load itself saw only 200s).
    const failedLoads = logLines(file).filter(
      (l) => l.msg === 'snapshot load failed' && l.dependency === 'market-data',
    ).length;
    assert.ok(failedLoads > 0, 'the quote refresh met the hanging provider');
  });

  test('the report on its log names the market-data provider as down', async (tc) => {
    const report = await reportOn(file);
    tc.diagnostic(JSON.stringify(report.causes.slice(0, 3).map((c) => [c.kind, c.subject, c.score])));
    const top = report.causes[0];
    assert.ok(top !== undefined, 'a likely cause stood out');
    assert.equal(top.kind, 'dependency.down', JSON.stringify(report.causes.slice(0, 3)));
    assert.equal(top.subject, 'market-data');
  });
});

describe('seed 003: each overview request blocks the event loop', () => {
  const file = 'seed-003-event-loop-block.json';

  test('the chaos run reports the broken /healthz promise and only that one', async (tc) => {
    // Each block lasts 600 ms and probes go out every 100 ms, so several probes wait out most of
    // a block whatever their phase: the /healthz bound (250 ms) breaks, every time.
    const { run, result } = await chaos(file, ['--warmup', '1s', '--hold', '3s', '--recovery', '3s']);
    tc.diagnostic(`${Math.round(run.durationMs)} ms; load ${JSON.stringify(result.load.statuses)}`);
    tc.diagnostic(table(result));
    assert.equal(run.code, 1, `${run.stdout}${run.stderr}`);
    assert.equal(result.ok, false);
    assert.deepEqual(
      verdicts(result),
      Object.fromEntries(PROMISE_IDS.map((id) => [id, id === 'healthz' ? 'fail' : 'pass'])),
      table(result),
    );
  });

  test('the report on its log names the blocking function', async (tc) => {
    const report = await reportOn(file);
    tc.diagnostic(JSON.stringify(report.causes.slice(0, 3).map((c) => [c.kind, c.subject, c.score])));
    const top = report.causes[0];
    assert.ok(top !== undefined, 'a likely cause stood out');
    assert.equal(top.kind, 'event_loop.blocked', JSON.stringify(report.causes.slice(0, 3)));
    assert.match(top.subject, /blockEventLoop/);
  });
});
