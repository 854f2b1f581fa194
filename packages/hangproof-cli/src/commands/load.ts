/**
 * `hangproof load <url>`: open-loop load at a fixed rate or a ramp, reporting latency percentiles,
 * throughput, statuses and hangproof error codes, with a JSON summary a later run compares against.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { Agent, request } from 'undici';
import {
  COMPARE_DEFAULTS,
  compareSummaries,
  type Delta,
  isLoadSummary,
  type LoadSummary,
  summarise,
} from '../load/load-summary.js';
import { isLoopbackHost } from '../load/loopback.js';
import { type LoadPlan, runOpenLoop } from '../load/open-loop.js';
import { CliError, describeNetworkError, EXIT } from '../output/cli-error.js';
import { type CliIo, painter, printJson, println } from '../output/cli-io.js';
import { formatMs, parseDurationMs } from '../output/duration.js';
import { progressLine } from '../output/progress.js';
import { renderTable } from '../output/table.js';
import { parsePositiveInt } from './doctor.js';

export interface LoadOptions {
  readonly url: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Fixed rate in requests per second. @default 10 */
  readonly rateRps?: number;
  /** Linear ramp `[fromRps, toRps]`; overrides rateRps. */
  readonly ramp?: readonly [number, number];
  /** @default 10_000 */
  readonly durationMs?: number;
  /** @default 10_000 */
  readonly timeoutMs?: number;
  /** @default rate x timeout, within 10..2000 */
  readonly maxInFlight?: number;
  readonly allowRemote?: boolean;
  /** Check the target answers (within 3 s) before starting. @default true */
  readonly preflight?: boolean;
  readonly json?: boolean;
  /** Also write the JSON summary to this file. */
  readonly out?: string;
  /** A previous `--json` summary to compare with; a regression exits 1. */
  readonly compare?: string;
  readonly thresholdPct?: number;
  /** Promise: p99 at most this, in ms; exits 1 when broken. */
  readonly maxP99Ms?: number;
  /** Promise: error rate at most this share (0..1); exits 1 when broken. */
  readonly maxErrorRate?: number;
}

export const LOAD_LIMITS = Object.freeze({ maxRps: 5000, maxDurationMs: 3_600_000, maxInFlight: 2000 });

export function planOf(o: LoadOptions): LoadPlan {
  let u: URL;
  try {
    u = new URL(o.url);
  } catch {
    throw new CliError('USAGE', `not a URL: ${o.url}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new CliError('USAGE', `only http(s) targets, received ${u.protocol}`);
  if (!o.allowRemote && !isLoopbackHost(u.hostname)) {
    throw new CliError(
      'REMOTE_TARGET',
      `${u.hostname} is not a loopback address; pass --allow-remote to load another host`,
    );
  }
  const [startRps, endRps] = o.ramp ?? [o.rateRps ?? 10, o.rateRps ?? 10];
  for (const r of [startRps, endRps]) {
    if (!(r >= 0 && r <= LOAD_LIMITS.maxRps))
      throw new CliError('USAGE', `rate must be 0..${LOAD_LIMITS.maxRps} req/s, received ${r}`);
  }
  if (startRps + endRps === 0) throw new CliError('USAGE', 'rate must be above 0');
  const durationMs = o.durationMs ?? 10_000;
  if (!(durationMs > 0 && durationMs <= LOAD_LIMITS.maxDurationMs))
    throw new CliError('USAGE', `--duration must be within 1 h, received ${durationMs} ms`);
  const timeoutMs = o.timeoutMs ?? 10_000;
  const peak = Math.max(startRps, endRps);
  const maxInFlight =
    o.maxInFlight ?? Math.min(LOAD_LIMITS.maxInFlight, Math.max(10, Math.ceil((peak * timeoutMs) / 1000)));
  return {
    url: u.toString(),
    method: (o.method ?? 'GET').toUpperCase(),
    headers: { ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
    body: o.body,
    startRps,
    endRps,
    durationMs,
    timeoutMs,
    maxInFlight,
  };
}

export async function load(o: LoadOptions, io: CliIo): Promise<number> {
  const plan = planOf(o);
  let before: LoadSummary | undefined;
  if (o.compare !== undefined) before = await readSummary(o.compare);
  if (o.preflight !== false) await preflight(plan);

  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once('SIGINT', onSigint);
  const progress = progressLine(io);
  const startedAt = new Date();
  let run: Awaited<ReturnType<typeof runOpenLoop>>;
  try {
    run = await runOpenLoop(plan, {
      signal: stop.signal,
      onProgress: (p) =>
        progress.update(
          `${(p.elapsedMs / 1000).toFixed(1)} s / ${(plan.durationMs / 1000).toFixed(0)} s  sent ${p.sent}  answered ${p.completed}  in flight ${p.inFlight}`,
        ),
    });
  } finally {
    progress.done();
    process.removeListener('SIGINT', onSigint);
  }
  const summary = summarise(plan, run, startedAt);
  if (o.out !== undefined) await writeFile(o.out, `${JSON.stringify(summary, null, 2)}\n`);
  const deltas = before
    ? compareSummaries(before, summary, {
        ...COMPARE_DEFAULTS,
        ...(o.thresholdPct === undefined ? {} : { latencyPct: o.thresholdPct }),
      })
    : [];
  const broken: string[] = [];
  if (o.maxP99Ms !== undefined && summary.latencyMs.p99 > o.maxP99Ms)
    broken.push(`p99 ${summary.latencyMs.p99} ms > ${o.maxP99Ms} ms`);
  if (o.maxErrorRate !== undefined && summary.errorRate > o.maxErrorRate)
    broken.push(`error rate ${summary.errorRate} > ${o.maxErrorRate}`);
  const regressions = deltas.filter((d) => d.regression);
  const code = regressions.length > 0 || broken.length > 0 ? EXIT.FINDINGS : EXIT.OK;
  if (o.json)
    printJson(io, { ...summary, ...(before ? { compare: deltas } : {}), brokenPromises: broken, ok: code === EXIT.OK });
  else printHuman(io, summary, deltas, broken);
  return code;
}

async function readSummary(path: string): Promise<LoadSummary> {
  let v: unknown;
  try {
    v = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new CliError(
      'BAD_CONFIG',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (!isLoadSummary(v)) throw new CliError('BAD_CONFIG', `${path} is not a hangproof load --json summary`);
  return v;
}

/** One bounded request first, so a wrong port or a dead target is one line, not a run of errors. */
async function preflight(plan: LoadPlan): Promise<void> {
  // Its own agent, destroyed after: a kept-alive socket must not hold the process open.
  const agent = new Agent({ connectTimeout: 3000, headersTimeout: 3000, bodyTimeout: 3000 });
  try {
    const res = await request(plan.url, { dispatcher: agent, method: 'HEAD', signal: AbortSignal.timeout(3000) });
    await res.body.dump();
  } catch (err) {
    throw new CliError(
      'CONNECT_FAILED',
      `${plan.url} did not answer within 3 s: ${describeNetworkError(err)} (use --no-preflight to load it anyway)`,
    );
  } finally {
    agent.destroy().catch(() => {});
  }
}

function printHuman(io: CliIo, s: LoadSummary, deltas: readonly Delta[], broken: readonly string[]): void {
  const paint = painter(io);
  const rate = s.startRps === s.endRps ? `${s.startRps} req/s` : `${s.startRps} -> ${s.endRps} req/s`;
  println(
    io,
    paint(
      'bold',
      `${s.method} ${s.target}  ${rate} for ${formatMs(s.durationMs)} (open loop, timeout ${formatMs(s.timeoutMs)})`,
    ),
  );
  println(
    io,
    renderTable(
      io,
      ['sent', 'answered', 'skipped', 'throughput', 'errors', 'p50', 'p95', 'p99', 'max'],
      [
        [
          String(s.sent),
          String(s.completed),
          String(s.skipped),
          `${s.throughputRps} req/s`,
          `${(s.errorRate * 100).toFixed(1)} %`,
          `${s.latencyMs.p50} ms`,
          `${s.latencyMs.p95} ms`,
          `${s.latencyMs.p99} ms`,
          `${s.latencyMs.max} ms`,
        ],
      ],
    ),
  );
  const list = (title: string, m: Readonly<Record<string, number>>): void => {
    const entries = Object.entries(m).sort((a, b) => b[1] - a[1]);
    if (entries.length > 0) println(io, `${title}: ${entries.map(([k, v]) => `${k} x${v}`).join(', ')}`);
  };
  list('statuses', s.statuses);
  list('error codes', s.errorCodes);
  list('network errors', s.networkErrors);
  if (s.skipped > 0)
    println(
      io,
      paint(
        'yellow',
        `${s.skipped} scheduled request(s) not sent: ${s.sent} already in flight (the target is not keeping up)`,
      ),
    );
  if (deltas.length > 0) {
    println(io);
    println(
      io,
      renderTable(
        io,
        ['metric', 'before', 'after', 'change'],
        deltas.map((d) => [
          d.metric,
          String(d.before),
          String(d.after),
          `${d.changePct === null ? '-' : `${d.changePct > 0 ? '+' : ''}${d.changePct} %`}${d.regression ? paint('red', '  REGRESSION') : ''}`,
        ]),
      ),
    );
  }
  for (const b of broken) println(io, paint('red', `broken promise: ${b}`));
}

function parseHeader(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf(':');
  if (i <= 0) throw new CliError('USAGE', `--header must be "name: value", received ${value}`);
  return { ...previous, [value.slice(0, i).trim().toLowerCase()]: value.slice(i + 1).trim() };
}

function parseRamp(value: string): [number, number] {
  const m = /^(\d+(?:\.\d+)?)\s*(?::|-|\.\.)\s*(\d+(?:\.\d+)?)$/.exec(value);
  if (!m) throw new CliError('USAGE', `--ramp must be <from>:<to> req/s, e.g. 10:200, received ${value}`);
  return [Number(m[1]), Number(m[2])];
}

function parseDurationArg(value: string): number {
  const ms = parseDurationMs(value, 's');
  if (ms === undefined || ms <= 0) throw new CliError('USAGE', `expected a duration like 30s or 2m, received ${value}`);
  return ms;
}

function parseRate(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new CliError('USAGE', `--rate must be a positive number of req/s, received ${value}`);
  return n;
}

export function registerLoad(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('load')
    .description(
      'open-loop load at a fixed rate or a ramp: latency percentiles, throughput, statuses, hangproof error codes',
    )
    .argument('<url>', 'target (loopback only unless --allow-remote)')
    .option('--rate <rps>', 'requests per second (fixed)', parseRate, 10)
    .option('--ramp <from:to>', 'linear ramp of the rate over the duration, e.g. 10:200', parseRamp)
    .option('--duration <duration>', 'how long to send, e.g. 30s, 2m', parseDurationArg, 10_000)
    .option('--method <method>', 'HTTP method', 'GET')
    .option('-H, --header <name: value>', 'request header (repeatable)', parseHeader)
    .option('--body <text|@file>', 'request body (JSON content type unless a header says otherwise)')
    .option('--timeout-ms <ms>', 'longest one request may take', parsePositiveInt, 10_000)
    .option('--max-in-flight <n>', 'requests outstanding at once (default rate x timeout, 10..2000)', parsePositiveInt)
    .option('--allow-remote', 'allow a target that is not 127.0.0.1/localhost/::1')
    .option('--no-preflight', 'skip the 3 s check that the target answers')
    .option('--out <file>', 'also write the JSON summary to a file')
    .option('--compare <before.json>', 'compare with an earlier --json/--out summary; exit 1 on a regression')
    .option('--threshold-pct <n>', 'latency growth (percent) that counts as a regression', parsePositiveInt, 20)
    .option('--max-p99-ms <ms>', 'promise: p99 at most this; exit 1 when broken', parsePositiveInt)
    .option('--max-error-rate <share>', 'promise: error rate at most this share (0..1); exit 1 when broken', Number)
    .option('--json', 'print the JSON summary')
    .addHelpText(
      'after',
      `
Examples:
  $ hangproof load http://127.0.0.1:3000/bots --rate 50 --duration 30s --out before.json
  $ hangproof load http://127.0.0.1:3000/bots --rate 50 --duration 30s --compare before.json
  $ hangproof load http://127.0.0.1:3000/orders --method POST --body @order.json -H 'x-admin-token: ...' --ramp 10:300 --duration 1m

Open loop: requests leave on schedule even while earlier ones are outstanding, so a stall shows up
as latency and errors instead of silently lowering the load.
Exit codes: 0 ok, 1 regression against --compare or a broken --max-* promise, 2 usage or connection error.`,
    )
    .action(async (url: string, opts) => {
      let body: string | undefined = opts.body;
      if (body?.startsWith('@')) {
        try {
          body = await readFile(body.slice(1), 'utf8');
        } catch {
          throw new CliError('BAD_CONFIG', `cannot read body file ${body.slice(1)}`);
        }
      }
      setExit(
        await load(
          {
            url,
            method: opts.method,
            headers: opts.header ?? {},
            ...(body === undefined ? {} : { body }),
            rateRps: opts.rate,
            ...(opts.ramp ? { ramp: opts.ramp } : {}),
            durationMs: opts.duration,
            timeoutMs: opts.timeoutMs,
            ...(opts.maxInFlight ? { maxInFlight: opts.maxInFlight } : {}),
            allowRemote: opts.allowRemote === true,
            preflight: opts.preflight !== false,
            json: opts.json === true,
            ...(opts.out ? { out: opts.out } : {}),
            ...(opts.compare ? { compare: opts.compare } : {}),
            thresholdPct: opts.thresholdPct,
            ...(opts.maxP99Ms ? { maxP99Ms: opts.maxP99Ms } : {}),
            ...(opts.maxErrorRate !== undefined ? { maxErrorRate: opts.maxErrorRate } : {}),
          },
          io,
        ),
      );
    });
}
