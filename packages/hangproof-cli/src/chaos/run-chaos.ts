/**
 * Runs one scenario: prepare the faults, wait for the target to answer, offer open-loop load,
 * inject the faults after the warmup, hold them while probing the liveness route, remove them,
 * let the load run through the recovery phase, check the pool and the database settled, and
 * judge the promises. The faults are disposed in every outcome.
 */
import { Agent, request } from 'undici';
import { type LoadSummary, summarise } from '../load/load-summary.js';
import { isLoopbackHost } from '../load/loopback.js';
import { type LoadPlan, runOpenLoop } from '../load/open-loop.js';
import { CliError, describeNetworkError } from '../output/cli-error.js';
import { within } from '../output/within.js';
import { createFault } from './create-fault.js';
import type { FaultContext } from './fault.js';
import { startHealthProbe } from './health-probe.js';
import type { ChaosScenario } from './scenario.js';
import {
  type IdleInTransaction,
  isMissingStatus,
  type PoolUse,
  readIdleInTransaction,
  readPoolUse,
  type SettleResult,
  settle,
} from './service-state.js';
import { evaluatePromises, type PromiseVerdict } from './verdict.js';

export interface ChaosRunOptions {
  readonly scenario: ChaosScenario;
  /** Base URL of the service, e.g. http://127.0.0.1:3000. */
  readonly baseUrl: string;
  /** Unlocks /status.json (pool check) and the admin fault. */
  readonly adminToken?: string | undefined;
  /** Direct URL of the service's database: lock and pg-sleep faults, idle-in-transaction check. */
  readonly databaseUrl?: string | undefined;
  readonly pid?: number | undefined;
  readonly allowRemote?: boolean;
  /** Longest wait for the target to answer 2xx before the load starts, in ms. @default 10_000 */
  readonly readyTimeoutMs?: number;
  /** Path of the status document. @default '/status.json' */
  readonly statusPath?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (text: string) => void;
}

/** The JSON result (`--out`, `--json`). Field names are a contract; add, do not rename. */
export interface ChaosResult {
  readonly kind: 'hangproof-chaos';
  readonly version: 1;
  readonly scenario: string;
  readonly seed: string | null;
  readonly target: string;
  readonly startedAt: string;
  readonly deadlineMs: number;
  readonly timeline: {
    readonly warmupMs: number;
    readonly holdMs: number;
    readonly recoveryMs: number;
    readonly injectedAtMs: number;
    readonly removedAtMs: number;
  };
  readonly faults: readonly {
    readonly kind: string;
    readonly label: string;
    readonly detail: Record<string, unknown>;
  }[];
  readonly load: LoadSummary;
  readonly promises: readonly PromiseVerdict[];
  readonly ok: boolean;
}

/** Bound of each fault step (prepare, inject, remove); a fault that does not switch in time fails the run. */
const FAULT_STEP_MS = 5_000;

export async function runChaos(o: ChaosRunOptions): Promise<ChaosResult> {
  const s = o.scenario;
  const allowRemote = o.allowRemote === true;
  const target = targetUrl(o.baseUrl, s.target.path, allowRemote);
  const ctx: FaultContext = {
    baseUrl: o.baseUrl,
    adminToken: o.adminToken,
    databaseUrl: o.databaseUrl,
    pid: o.pid,
    allowRemote,
    holdMs: s.holdMs,
  };
  // Built (and validated) before anything is touched: a missing --pid fails before a proxy starts.
  const faults = s.faults.map((f) => createFault(f, ctx));
  const headers = { ...s.target.headers, 'x-request-timeout-ms': String(s.deadlineMs) };
  const statusUrl = new URL(o.statusPath ?? '/status.json', o.baseUrl).toString();
  const progress = o.onProgress ?? (() => {});
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    for (const f of faults) await bounded(f.prepare(), `preparing ${f.label}`);
    progress('waiting for the target to answer');
    await waitReady(target, s.target, headers, o.readyTimeoutMs ?? 10_000);

    let poolBaseline: PoolUse | undefined | string = 'no --admin-token (the pool is read from /status.json)';
    if (o.adminToken !== undefined) {
      try {
        poolBaseline = (await readPoolUse(statusUrl, o.adminToken)) ?? `${statusUrl} lists no pool`;
      } catch (err) {
        if (!isMissingStatus(err)) throw err;
        poolBaseline = `${statusUrl} is not available`;
      }
    }

    const plan: LoadPlan = {
      url: target,
      method: s.target.method,
      headers: { ...(s.target.body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: s.target.body,
      startRps: s.rateRps,
      endRps: s.rateRps,
      durationMs: s.warmupMs + s.holdMs + s.recoveryMs,
      timeoutMs: s.clientTimeoutMs,
      maxInFlight: Math.min(2_000, Math.max(10, Math.ceil((s.rateRps * s.clientTimeoutMs) / 1000))),
    };
    const startedAt = new Date();
    const origin = performance.now();
    const since = (): number => Math.round(performance.now() - origin);
    const loading = runOpenLoop(plan, { signal: stop.signal });

    let injectedAtMs = s.warmupMs;
    let removedAtMs = s.warmupMs + s.holdMs;
    const healthUrl = new URL(s.promises.healthzPath, o.baseUrl).toString();
    const probeTimeoutMs = Math.max(1_000, 4 * s.promises.healthzP99Ms);
    let probes: Awaited<ReturnType<ReturnType<typeof startHealthProbe>['stop']>> = [];
    let timelineError: unknown;
    // The first error of a removal is reported after every other fault was removed too.
    let removeError: unknown;
    try {
      progress(`warmup ${s.warmupMs} ms`);
      await pause(s.warmupMs, stop.signal);
      if (!stop.signal.aborted) {
        injectedAtMs = since();
        const probe = startHealthProbe(healthUrl, s.promises.healthzEveryMs, probeTimeoutMs, origin);
        try {
          for (const f of faults) {
            progress(`injecting ${f.label}`);
            await bounded(f.inject(), `injecting ${f.label}`);
          }
          progress(`holding the fault for ${s.holdMs} ms`);
          await pause(s.holdMs - (since() - injectedAtMs), stop.signal);
        } finally {
          for (const f of [...faults].reverse())
            await bounded(f.remove(), `removing ${f.label}`).catch((err) => {
              removeError ??= err;
            });
          removedAtMs = since();
          probes = await probe.stop();
        }
        progress(`recovery ${s.recoveryMs} ms`);
      }
    } catch (err) {
      timelineError = err;
      stop.abort();
    }
    const run = await loading;
    if (timelineError !== undefined) throw timelineError;
    if (removeError !== undefined) throw removeError;

    progress('checking the pool and the database settled');
    const [pool, idle] = await Promise.all([
      typeof poolBaseline === 'string' || poolBaseline === undefined
        ? Promise.resolve(poolBaseline ?? 'no pool')
        : checkPool(statusUrl, o.adminToken as string, poolBaseline.inUse, s.promises.leakCheckMs),
      o.databaseUrl === undefined
        ? Promise.resolve('no --database-url (sessions are read from pg_stat_activity)')
        : settle<IdleInTransaction>(
            () => readIdleInTransaction(o.databaseUrl as string),
            (v) => v.count === 0,
            s.promises.leakCheckMs,
          ),
    ]);

    const promises = evaluatePromises({
      scenario: s,
      samples: run.samples,
      injectedAtMs,
      removedAtMs,
      probes,
      pool,
      idle,
    });
    return {
      kind: 'hangproof-chaos',
      version: 1,
      scenario: s.name,
      seed: s.seed ?? null,
      target,
      startedAt: startedAt.toISOString(),
      deadlineMs: s.deadlineMs,
      timeline: { warmupMs: s.warmupMs, holdMs: s.holdMs, recoveryMs: s.recoveryMs, injectedAtMs, removedAtMs },
      faults: faults.map((f) => ({ kind: f.kind, label: f.label, detail: f.detail() })),
      load: summarise(plan, run, startedAt),
      promises,
      ok: promises.every((p) => p.verdict !== 'fail'),
    };
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    for (const f of [...faults].reverse()) await within(f.dispose(), FAULT_STEP_MS);
  }
}

async function checkPool(
  statusUrl: string,
  token: string,
  baseline: number,
  boundMs: number,
): Promise<{ baseline: number; result: SettleResult<PoolUse | undefined> }> {
  const result = await settle<PoolUse | undefined>(
    () => readPoolUse(statusUrl, token).catch(() => undefined),
    (v) => v !== undefined && v.inUse <= baseline,
    boundMs,
  );
  return { baseline, result };
}

function targetUrl(baseUrl: string, path: string, allowRemote: boolean): string {
  let u: URL;
  try {
    u = new URL(path, baseUrl);
  } catch {
    throw new CliError('USAGE', `not a URL: ${baseUrl}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new CliError('USAGE', `only http(s) targets, received ${u.protocol}`);
  if (!allowRemote && !isLoopbackHost(u.hostname))
    throw new CliError('REMOTE_TARGET', `${u.hostname} is not a loopback address; pass --allow-remote`);
  return u.toString();
}

/**
 * Polls the target until it answers 2xx/3xx, at most `timeoutMs`: the service may connect through
 * the proxy this command just started, so the first answers can be errors.
 */
async function waitReady(
  url: string,
  t: ChaosScenario['target'],
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<void> {
  const agent = new Agent({ connectTimeout: 2_000, headersTimeout: 2_000, bodyTimeout: 2_000 });
  const until = performance.now() + timeoutMs;
  let last = 'no answer';
  try {
    while (performance.now() < until) {
      try {
        const res = await request(url, {
          dispatcher: agent,
          method: t.method as 'GET',
          headers: { ...(t.body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
          ...(t.body === undefined ? {} : { body: t.body }),
          signal: AbortSignal.timeout(Math.min(2_000, Math.max(1, until - performance.now()))),
        });
        await res.body.dump({ limit: 64 * 1024 }).catch(() => {});
        if (res.statusCode >= 200 && res.statusCode < 400) return;
        last = `status ${res.statusCode}`;
      } catch (err) {
        last = describeNetworkError(err);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    agent.destroy().catch(() => {});
  }
  throw new CliError('CONNECT_FAILED', `${url} did not answer 2xx within ${timeoutMs} ms (last: ${last})`);
}

async function bounded(p: Promise<void>, what: string): Promise<void> {
  const done = await within(
    p.then(() => true),
    FAULT_STEP_MS,
  );
  if (done !== true) throw new CliError('FAULT_FAILED', `${what} did not finish within ${FAULT_STEP_MS} ms`);
}

/** Waits `ms` or until `signal` aborts; never rejects. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
