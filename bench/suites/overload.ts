import { fileURLToPath } from 'node:url';
import { withBenchPostgres } from '../lib/bench-postgres.ts';
import { hangproofLoad } from '../lib/load.ts';
import { environmentLine } from '../lib/report.ts';
import { startServerProcess } from '../lib/server-process.ts';
import type { SuiteSettings } from '../run.ts';

const SERVER = fileURLToPath(new URL('../servers/overload.mjs', import.meta.url));
const DEFAULT_RATE = 1000;
const WARMUP_S = 4;
const SLOW_MS = 20;
const CLI_TIMEOUT_MS = 60_000;

/** The part of `hangproof load --json` this suite reads. */
interface LoadSummary {
  readonly throughputRps: number;
  readonly durationMs: number;
  readonly okLatencyMs: { readonly p50: number; readonly p99: number } | null;
  readonly statuses: Readonly<Record<string, number>>;
}

interface Row {
  readonly scenario: string;
  readonly label: string;
  readonly okPerSec: number;
  readonly shedPerSec: number;
  readonly timeoutsPerSec: number;
  readonly okP50: number;
  readonly okP99: number;
  readonly limitAtEnd: number | null;
}

const SCENARIOS = [
  { name: 'fixed', label: 'fixed limit: maxInFlight 200 (the default)' },
  { name: 'adaptive-long-wait', label: "adaptive limit, ceiling 200, with the fixed limit's queueWaitMs 100" },
  { name: 'adaptive', label: 'adaptive limit, ceiling 200, with its defaults (queueWaitMs 10)' },
] as const;

/** `hangproof load` at `rate` for `duration`; the preflight check is skipped right after a slowdown. */
function openLoop(url: string, rate: number, duration: string, preflight = true): Promise<LoadSummary> {
  const args = [url, '--rate', String(rate), '--duration', duration, '--timeout-ms', '5000'];
  if (!preflight) args.push('--no-preflight');
  return hangproofLoad<LoadSummary>(args, CLI_TIMEOUT_MS);
}

async function requestJson(url: string, method: 'GET' | 'POST'): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method, signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`${method} ${url} answered ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

/**
 * Overload suite: a route that holds one of 10 pooled connections for 2 ms (`pg_sleep`), under
 * an open-loop 1000 rps. After a 4 s warm-up its queries slow to 20 ms, so the route can serve
 * about 500 rps: the rest must be refused. Measured for BENCH_DURATION_S after the slowdown, with
 * the default fixed limit (200 in flight) and with the adaptive limit. What counts is the latency
 * of the requests that are served, and how many are served.
 */
export async function overloadSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const rate = s.fixedRate ?? DEFAULT_RATE;
  return withBenchPostgres('overload', async (pgUrl) => {
    const rows: Row[] = [];
    for (const sc of SCENARIOS) {
      process.stderr.write(`overload: ${sc.name}...\n`);
      const server = await startServerProcess(SERVER, {
        BENCH_SCENARIO: sc.name,
        DATABASE_URL: pgUrl,
        SLOW_MS: String(SLOW_MS),
      });
      try {
        const base = server.url.replace(/\/work$/, '');
        await openLoop(server.url, rate, `${WARMUP_S}s`);
        await requestJson(`${base}/slow`, 'POST');
        const r = await openLoop(server.url, rate, `${s.durationSec}s`, false);
        const limit = await requestJson(`${base}/limit`, 'GET');
        const sec = r.durationMs / 1000;
        rows.push({
          scenario: sc.name,
          label: sc.label,
          okPerSec: (r.statuses['200'] ?? 0) / sec,
          shedPerSec: (r.statuses['503'] ?? 0) / sec,
          timeoutsPerSec: (r.statuses['504'] ?? 0) / sec,
          okP50: r.okLatencyMs?.p50 ?? Number.NaN,
          okP99: r.okLatencyMs?.p99 ?? Number.NaN,
          limitAtEnd: typeof limit.limit === 'number' ? limit.limit : null,
        });
      } finally {
        await server.stop();
      }
    }
    return { markdown: render(rows, s, rate), raw: rows };
  });
}

function render(rows: readonly Row[], s: SuiteSettings, rate: number): string {
  const lines = [
    `Measured ${environmentLine()}; open loop ${rate} rps; ${WARMUP_S} s at 2 ms per query, then ${s.durationSec} s measured after the queries slow to ${SLOW_MS} ms (capacity about ${(10 * 1000) / SLOW_MS} rps).`,
    '',
    '| scenario | served (rps) | 503 OVERLOADED (rps) | 504 (rps) | served p50 / p99 (ms) | limit at the end |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${Math.round(r.okPerSec)} | ${Math.round(r.shedPerSec)} | ${Math.round(r.timeoutsPerSec)} | ${r.okP50} / ${r.okP99} | ${r.limitAtEnd ?? '—'} |`,
    );
  }
  const fixed = rows.find((r) => r.scenario === 'fixed');
  if (fixed !== undefined) {
    lines.push('');
    for (const r of rows.filter((x) => x !== fixed)) {
      lines.push(
        `- ${r.label}, against fixed: served p99 **${(r.okP99 / fixed.okP99).toFixed(2)}×**, served p50 ${(r.okP50 / fixed.okP50).toFixed(2)}×, served throughput ${(r.okPerSec / fixed.okPerSec).toFixed(2)}×.`,
      );
    }
  }
  return lines.join('\n');
}
