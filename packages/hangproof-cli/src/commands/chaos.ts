/**
 * `hangproof chaos <scenario>`: offer load, inject a fault, hold it, remove it, and check that the
 * service kept its promises (deadline, fast liveness, no leak, recovery). Prints a verdict table,
 * writes a JSON result, exits 1 when a promise broke.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { createFault } from '../chaos/create-fault.js';
import { type ChaosResult, runChaos } from '../chaos/run-chaos.js';
import { type ChaosScenario, resolveScenario, type ScenarioOverrides } from '../chaos/scenario.js';
import { CliError, EXIT } from '../output/cli-error.js';
import { type CliIo, painter, printJson, println } from '../output/cli-io.js';
import { formatMs, parseDurationMs } from '../output/duration.js';
import { progressLine } from '../output/progress.js';
import { renderTable } from '../output/table.js';
import { parsePositiveInt } from './doctor.js';

export interface ChaosCommandOptions {
  /** Path of the scenario file. */
  readonly scenarioFile: string;
  /** Base URL of the service. */
  readonly target: string;
  readonly overrides: ScenarioOverrides;
  readonly adminToken?: string | undefined;
  readonly databaseUrl?: string | undefined;
  readonly pid?: number | undefined;
  readonly allowRemote: boolean;
  /** @default 10_000 */
  readonly readyTimeoutMs: number;
  readonly out?: string | undefined;
  readonly json: boolean;
  /** Validate and print the plan; touch nothing. */
  readonly dryRun: boolean;
}

export async function loadScenario(
  file: string,
  overrides: ScenarioOverrides,
  env: NodeJS.ProcessEnv,
): Promise<ChaosScenario> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CliError('BAD_CONFIG', `cannot read scenario ${file}: ${e.code ?? e.message}`);
  }
  return resolveScenario(raw, file, overrides, env);
}

export async function chaos(o: ChaosCommandOptions, io: CliIo): Promise<number> {
  const scenario = await loadScenario(o.scenarioFile, o.overrides, io.env);
  if (o.dryRun) {
    const faults = scenario.faults.map((f) =>
      createFault(f, {
        baseUrl: o.target,
        adminToken: o.adminToken,
        databaseUrl: o.databaseUrl,
        pid: o.pid,
        allowRemote: o.allowRemote,
        holdMs: scenario.holdMs,
      }),
    );
    if (o.json) printJson(io, { scenario, faults: faults.map((f) => ({ kind: f.kind, label: f.label })) });
    else
      printPlan(
        io,
        scenario,
        faults.map((f) => f.label),
      );
    return EXIT.OK;
  }
  if (!o.json) printPlan(io, scenario, undefined);

  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once('SIGINT', onSigint);
  const progress = progressLine(io);
  let result: ChaosResult;
  try {
    result = await runChaos({
      scenario,
      baseUrl: o.target,
      adminToken: o.adminToken,
      databaseUrl: o.databaseUrl,
      pid: o.pid,
      allowRemote: o.allowRemote,
      readyTimeoutMs: o.readyTimeoutMs,
      signal: stop.signal,
      onProgress: (t) => progress.update(t),
    });
  } finally {
    progress.done();
    process.removeListener('SIGINT', onSigint);
  }
  if (o.out !== undefined) await writeFile(o.out, `${JSON.stringify(result, null, 2)}\n`);
  if (o.json) printJson(io, result);
  else printVerdict(io, result);
  return result.ok ? EXIT.OK : EXIT.FINDINGS;
}

function printPlan(io: CliIo, s: ChaosScenario, faultLabels: readonly string[] | undefined): void {
  const paint = painter(io);
  println(io, paint('bold', `chaos: ${s.name}${s.seed === undefined ? '' : ` (seed ${s.seed})`}`));
  if (s.description !== '') println(io, s.description);
  println(
    io,
    `${s.target.method} ${s.target.path} at ${s.rateRps} req/s, deadline ${formatMs(s.deadlineMs)}; ` +
      `warmup ${formatMs(s.warmupMs)}, fault held ${formatMs(s.holdMs)}, recovery ${formatMs(s.recoveryMs)}`,
  );
  if (faultLabels !== undefined) for (const l of faultLabels) println(io, `  fault: ${l}`);
}

function printVerdict(io: CliIo, r: ChaosResult): void {
  const paint = painter(io);
  for (const f of r.faults) println(io, `  fault: ${f.label}`);
  const l = r.load;
  println(
    io,
    `load: sent ${l.sent}, answered ${l.completed}, errors ${(l.errorRate * 100).toFixed(1)} %, ` +
      `p50 ${l.latencyMs.p50} ms, p99 ${l.latencyMs.p99} ms, max ${l.latencyMs.max} ms`,
  );
  const codes = Object.entries(l.errorCodes).map(([k, v]) => `${k} x${v}`);
  const net = Object.entries(l.networkErrors).map(([k, v]) => `${k} x${v}`);
  if (codes.length + net.length > 0) println(io, `      ${[...codes, ...net].join(', ')}`);
  println(io, `fault on at +${r.timeline.injectedAtMs} ms, off at +${r.timeline.removedAtMs} ms of the load`);
  println(io);
  println(
    io,
    renderTable(
      io,
      ['promise', 'observed', 'bound', 'verdict'],
      r.promises.map((p) => [
        p.promise,
        p.observed,
        p.bound,
        p.verdict === 'pass'
          ? paint('green', 'pass')
          : p.verdict === 'fail'
            ? paint('red', 'FAIL')
            : paint('dim', 'skip'),
      ]),
    ),
  );
  const broken = r.promises.filter((p) => p.verdict === 'fail').length;
  println(io);
  println(io, broken === 0 ? paint('green', 'all checked promises kept') : paint('red', `${broken} promise(s) broken`));
}

function parseDuration(value: string): number {
  const ms = parseDurationMs(value, 'ms');
  if (ms === undefined || ms < 0)
    throw new CliError('USAGE', `expected a duration like 2s or 500ms, received ${value}`);
  return ms;
}

function parseHeader(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf(':');
  if (i <= 0) throw new CliError('USAGE', `--header must be "name: value", received ${value}`);
  return { ...previous, [value.slice(0, i).trim().toLowerCase()]: value.slice(i + 1).trim() };
}

export function registerChaos(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('chaos')
    .description(
      'inject a fault under open-loop load and check the promises: deadline kept, /healthz fast, no leak, recovery',
    )
    .argument('<scenario>', 'scenario file (JSON), e.g. examples/chaos/seed-000-slow-provider.json')
    .requiredOption('--target <url>', 'base URL of the service (loopback only unless --allow-remote)')
    .option(
      '--admin-token <token>',
      'X-Admin-Token: /status.json pool check and admin faults (default: HANGPROOF_ADMIN_TOKEN)',
    )
    .option(
      '--database-url <url>',
      "the service's database, directly: lock/pg-sleep faults and the idle-in-transaction check",
    )
    .option('--database', 'use DATABASE_URL as --database-url')
    .option('--listen <port>', 'port of the fault proxy on 127.0.0.1 (proxy faults)', parsePositiveInt)
    .option('--upstream <host:port>', 'where the fault proxy forwards to (proxy faults)')
    .option('--pid <pid>', 'process to SIGSTOP during the hold (pause faults)', parsePositiveInt)
    .option('--path <path>', "the route to load, replacing the scenario's target.path")
    .option('--deadline-ms <ms>', 'deadline promised per request (sent as X-Request-Timeout-Ms)', parsePositiveInt)
    .option('--rate <rps>', 'requests per second', parsePositiveInt)
    .option('--warmup <duration>', 'load before the fault, e.g. 1s', parseDuration)
    .option('--hold <duration>', 'how long the fault stays on, e.g. 3s', parseDuration)
    .option('--recovery <duration>', 'load after the fault', parseDuration)
    .option('--client-timeout-ms <ms>', "the load client's own limit per request", parsePositiveInt)
    .option('--healthz-p99-ms <ms>', 'bound of the liveness p99 during the fault', parsePositiveInt)
    .option('--deadline-margin-ms <ms>', 'how long after its deadline a request may end', parsePositiveInt)
    .option('--recover-within-ms <ms>', 'bound of the recovery after the fault', parsePositiveInt)
    .option('-H, --header <name: value>', 'request header for the load (repeatable)', parseHeader)
    .option(
      '--ready-timeout <duration>',
      'longest wait for the target to answer 2xx before starting',
      parseDuration,
      10_000,
    )
    .option('--allow-remote', 'allow a target or upstream that is not loopback')
    .option('--out <file>', 'write the JSON result to a file')
    .option('--json', 'print the JSON result')
    .option('--dry-run', 'validate the scenario and print the plan; inject nothing')
    .addHelpText(
      'after',
      `
Examples:
  # The desk's switchboard: slow queries exhaust the pool on the bots overview (seed 000)
  $ hangproof chaos examples/chaos/seed-000-pool-exhaustion.json --target http://127.0.0.1:3000 --admin-token $ADMIN_TOKEN
  # A fault proxy in front of Postgres; start the service with DATABASE_URL=...@127.0.0.1:6543/...
  $ hangproof chaos examples/chaos/postgres-blackhole.json --target http://127.0.0.1:3000 \\
      --listen 6543 --upstream 127.0.0.1:5432 --database --admin-token $ADMIN_TOKEN --hold 3s --out result.json

Exit codes: 0 every checked promise kept, 1 a promise broke, 2 usage, connection or fault error.`,
    )
    .action(async (scenarioFile: string, opts: Record<string, unknown>) => {
      const dbUrl = (opts.databaseUrl as string | undefined) ?? (opts.database ? io.env.DATABASE_URL : undefined);
      if (opts.database && !dbUrl) throw new CliError('NO_DATABASE_URL', '--database needs DATABASE_URL');
      const overrides: ScenarioOverrides = Object.fromEntries(
        Object.entries({
          path: opts.path,
          deadlineMs: opts.deadlineMs,
          rateRps: opts.rate,
          warmupMs: opts.warmup,
          holdMs: opts.hold,
          recoveryMs: opts.recovery,
          clientTimeoutMs: opts.clientTimeoutMs,
          healthzP99Ms: opts.healthzP99Ms,
          deadlineMarginMs: opts.deadlineMarginMs,
          recoverWithinMs: opts.recoverWithinMs,
          listenPort: opts.listen,
          upstream: opts.upstream,
          headers: opts.header,
        }).filter(([, v]) => v !== undefined),
      );
      setExit(
        await chaos(
          {
            scenarioFile,
            target: opts.target as string,
            overrides,
            adminToken: (opts.adminToken as string | undefined) ?? io.env.HANGPROOF_ADMIN_TOKEN,
            databaseUrl: dbUrl,
            pid: opts.pid as number | undefined,
            allowRemote: opts.allowRemote === true,
            readyTimeoutMs: opts.readyTimeout as number,
            out: opts.out as string | undefined,
            json: opts.json === true,
            dryRun: opts.dryRun === true,
          },
          io,
        ),
      );
    });
}
