import { Agent, request } from 'undici';
import { within } from '../output/within.js';

export interface ProbeSample {
  /** ms since the probe loop's origin when the probe was sent. */
  readonly atMs: number;
  readonly latencyMs: number;
  /** HTTP status, 0 when there was no answer within the probe's limit. */
  readonly status: number;
}

export interface HealthProbe {
  /** Stops sending and waits (bounded by the probe limit) for the probes in flight. */
  stop(): Promise<ProbeSample[]>;
}

/** Probes in flight at once; a slower liveness route than this is already a broken promise. */
const MAX_IN_FLIGHT = 20;

/**
 * Sends `GET url` every `everyMs` on its own timer (open loop, like the load: a stalled process
 * shows up as latency, not as fewer probes) on its own connection pool, so the probes do not
 * queue behind the load's requests. Each probe ends within `timeoutMs`.
 */
export function startHealthProbe(url: string, everyMs: number, timeoutMs: number, origin: number): HealthProbe {
  const agent = new Agent({
    connections: MAX_IN_FLIGHT,
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const samples: ProbeSample[] = [];
  const pending = new Set<Promise<void>>();
  const probe = (): void => {
    if (pending.size >= MAX_IN_FLIGHT) return;
    const t0 = performance.now();
    const p = request(url, { dispatcher: agent, signal: AbortSignal.timeout(timeoutMs) })
      .then(async (res) => {
        await res.body.dump({ limit: 64 * 1024 }).catch(() => {});
        return res.statusCode;
      })
      .catch(() => 0)
      .then((status) => {
        samples.push({ atMs: t0 - origin, latencyMs: performance.now() - t0, status });
      });
    pending.add(p);
    p.finally(() => pending.delete(p));
  };
  probe();
  const timer = setInterval(probe, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await within(Promise.allSettled([...pending]), timeoutMs + 500);
      agent.destroy().catch(() => {});
      return samples.sort((a, b) => a.atMs - b.atMs);
    },
  };
}
