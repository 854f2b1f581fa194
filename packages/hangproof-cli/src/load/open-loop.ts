/**
 * An open-loop load generator: requests are sent on a schedule (a fixed rate or a linear ramp)
 * whether or not earlier ones have answered. autocannon (and most closed-loop tools) wait for a
 * connection's response before sending its next request, so when the server stalls the offered
 * load drops with it and the stall is under-counted (coordinated omission); its rate option is
 * also a whole number per connection per second, sent in bursts. Measuring hangs needs the
 * schedule to keep going, so this loop sends with undici on its own timer. Bounds: at most
 * `maxInFlight` requests outstanding (a send beyond it is counted as `skipped`, never queued),
 * each request ends within `timeoutMs`, response bodies are read up to 64 KiB.
 */
import { Agent, request } from 'undici';
import { within } from '../output/within.js';

export interface LoadPlan {
  readonly url: string;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
  /** Requests per second at the start. */
  readonly startRps: number;
  /** Requests per second at the end (equal to startRps for a fixed rate). */
  readonly endRps: number;
  readonly durationMs: number;
  /** Longest one request may take, in ms. */
  readonly timeoutMs: number;
  /** Requests outstanding at once; beyond it a scheduled send is skipped and counted. */
  readonly maxInFlight: number;
}

export interface LoadSample {
  /** ms since the start of the run when the request was scheduled. */
  readonly atMs: number;
  readonly latencyMs: number;
  /** HTTP status, or 0 for a network error or timeout. */
  readonly status: number;
  /** `error.code` of a JSON error body (hangproof's shape), if any. */
  readonly errorCode: string | undefined;
  /** ECONNREFUSED, ECONNRESET, TIMEOUT... when there was no response. */
  readonly networkError: string | undefined;
}

export interface LoadProgress {
  readonly elapsedMs: number;
  readonly sent: number;
  readonly completed: number;
  readonly inFlight: number;
}

const MAX_BODY_BYTES = 64 * 1024;
const TICK_MS = 5;

/** Requests due by `t` ms into the run: the integral of the (linear) rate. */
export function scheduledBy(plan: Pick<LoadPlan, 'startRps' | 'endRps' | 'durationMs'>, tMs: number): number {
  const t = Math.min(tMs, plan.durationMs) / 1000;
  const d = plan.durationMs / 1000;
  return Math.floor(plan.startRps * t + ((plan.endRps - plan.startRps) * t * t) / (2 * d));
}

export async function runOpenLoop(
  plan: LoadPlan,
  options: { signal?: AbortSignal; onProgress?: (p: LoadProgress) => void } = {},
): Promise<{ samples: LoadSample[]; skipped: number; elapsedMs: number }> {
  const agent = new Agent({
    connections: plan.maxInFlight,
    connectTimeout: Math.min(plan.timeoutMs, 3000),
    headersTimeout: plan.timeoutMs,
    bodyTimeout: plan.timeoutMs,
    keepAliveTimeout: 4000,
  });
  const samples: LoadSample[] = [];
  const pending = new Set<Promise<void>>();
  let sent = 0;
  let skipped = 0;
  const started = performance.now();

  const fire = (atMs: number): void => {
    const p = one(agent, plan, atMs, started).then((s) => {
      samples.push(s);
    });
    pending.add(p);
    p.finally(() => pending.delete(p));
  };

  const total = scheduledBy(plan, plan.durationMs);
  let lastProgress = 0;
  while (!options.signal?.aborted) {
    const elapsed = performance.now() - started;
    if (elapsed >= plan.durationMs) break;
    // Request k leaves at the moment the schedule reaches k, the first one at once.
    const due = Math.min(total, scheduledBy(plan, elapsed) + 1);
    while (sent + skipped < due) {
      if (pending.size >= plan.maxInFlight) skipped++;
      else {
        sent++;
        fire(elapsed);
      }
    }
    if (options.onProgress && elapsed - lastProgress >= 250) {
      lastProgress = elapsed;
      options.onProgress({ elapsedMs: elapsed, sent, completed: samples.length, inFlight: pending.size });
    }
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
  // Every request in flight ends by its own timeout; this wait is bounded by it.
  await within(Promise.allSettled([...pending]), plan.timeoutMs + 1000);
  const elapsedMs = performance.now() - started;
  await within(agent.close(), 1000).catch(() => {});
  agent.destroy().catch(() => {});
  return { samples, skipped, elapsedMs };
}

async function one(agent: Agent, plan: LoadPlan, atMs: number, started: number): Promise<LoadSample> {
  const t0 = performance.now();
  try {
    const res = await request(plan.url, {
      dispatcher: agent,
      method: plan.method as 'GET',
      headers: plan.headers,
      ...(plan.body === undefined ? {} : { body: plan.body }),
      signal: AbortSignal.timeout(plan.timeoutMs),
    });
    let errorCode: string | undefined;
    if (res.statusCode >= 400) {
      let text = '';
      for await (const chunk of res.body) {
        if (text.length < MAX_BODY_BYTES) text += chunk;
      }
      errorCode = errorCodeOf(text);
    } else {
      await res.body.dump({ limit: MAX_BODY_BYTES }).catch(() => {});
    }
    return {
      atMs: t0 - started,
      latencyMs: performance.now() - t0,
      status: res.statusCode,
      errorCode,
      networkError: undefined,
    };
  } catch (err) {
    return {
      atMs,
      latencyMs: performance.now() - t0,
      status: 0,
      errorCode: undefined,
      networkError: networkCode(err),
    };
  }
}

/** `error.code` of a hangproof error body `{"error":{"code":...}}`. */
export function errorCodeOf(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } })?.error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

function networkCode(err: unknown): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.code === 'UND_ERR_HEADERS_TIMEOUT' || e?.code === 'UND_ERR_BODY_TIMEOUT')
    return 'TIMEOUT';
  if (e?.code === 'UND_ERR_CONNECT_TIMEOUT') return 'CONNECT_TIMEOUT';
  if (e?.code === 'UND_ERR_SOCKET') return e.cause?.code ?? 'SOCKET_CLOSED';
  return e?.code ?? e?.cause?.code ?? 'ERROR';
}
