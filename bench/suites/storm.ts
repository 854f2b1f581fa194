import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from 'hangproof/testing';
import { withBotsDatabase } from '../lib/bots-database.ts';
import { pinnedStdout } from '../lib/load.ts';
import { environmentLine } from '../lib/report.ts';
import { LOAD_CORE, pinned, startServerProcess } from '../lib/server-process.ts';
import type { SuiteSettings } from '../run.ts';

const SERVER = fileURLToPath(new URL('../servers/storm.mjs', import.meta.url));
const PROBE_CLIENT = fileURLToPath(new URL('../lib/storm-probe.mjs', import.meta.url));
const autocannonBin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
const STORM_CONNECTIONS = Number(process.env.BENCH_STORM_CONNECTIONS ?? 400);
const CAPACITY_CONNECTIONS = 10;
const CAPACITY_S = Number(process.env.BENCH_STORM_CAPACITY_S ?? 5);
const PROBE_EVERY_MS = 250;
/** Probes sent in the storm's first ONSET_MS are "at the onset"; later ones "during". */
const ONSET_MS = 2000;
const SCENARIOS = [
  {
    name: 'hangproof',
    label:
      "hangproof as the desk runs it: observe's adaptive limit with no queue, refusal pacing, probe listener on its own port",
  },
  {
    name: 'hangproof-defaults',
    label:
      "hangproof + observe's defaults (200 in flight, a queue of 50), refusal pacing, probe listener on its own port",
  },
  { name: 'fastify', label: 'bare Fastify + pg, limit of 200 in flight then 503' },
] as const;

interface Cannon {
  readonly ok: number;
  readonly refused: number;
  readonly other: number;
  readonly durationSec: number;
}

interface Probe {
  readonly target: string;
  readonly atMs: number;
  readonly sentAt: number;
  readonly connectedAt: number;
  readonly endAt: number;
  readonly connectMs: number;
  readonly totalMs: number;
  readonly status: number;
  readonly port: number;
}

interface Trace {
  readonly port: number;
  readonly acceptAt: number | undefined;
  readonly requestAt: number;
  readonly hookAt: number;
  readonly finishAt: number;
}

interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

interface Row {
  readonly scenario: string;
  readonly label: string;
  readonly capacityRps: number;
  readonly cpuPerServedMicros: number;
  readonly goodputRps: number;
  readonly refusedRps: number;
  readonly otherRps: number;
  readonly cpuPerRefusalMicros: number;
  readonly probes: Record<string, { onset: Stats; during: Stats; failed: number; notOk: number }>;
  /** Where the main port's probes waited: per step, over all probes of the storm. */
  readonly phases: Record<string, Stats>;
}

/** autocannon on the load core: closed loop, `connections` keep-alive connections. */
async function cannon(url: string, connections: number, durationSec: number, headers: string[] = []): Promise<Cannon> {
  const args = [autocannonBin, '-j', '-c', String(connections), '-d', String(durationSec)];
  for (const h of headers) args.push('-H', h);
  args.push(url);
  const out = await pinnedStdout(args, (durationSec + 30) * 1000, (code) => code === 0, 'autocannon');
  const r = JSON.parse(out.trim().split('\n').at(-1) as string) as {
    '2xx': number;
    non2xx: number;
    errors: number;
    timeouts: number;
    duration: number;
    statusCodeStats?: Record<string, { count: number }>;
  };
  const refused = r.statusCodeStats?.['503']?.count ?? 0;
  return { ok: r['2xx'], refused, other: r.non2xx - refused + r.errors + r.timeouts, durationSec: r.duration };
}

/** Starts the probe client on the load core; resolves with a `go` function once it is ready. */
async function probeClient(durationMs: number, targets: string[]): Promise<{ go(): Promise<Probe[]> }> {
  const [cmd, args] = pinned(LOAD_CORE, process.execPath, [
    PROBE_CLIENT,
    String(durationMs),
    String(PROBE_EVERY_MS),
    ...targets,
  ]);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const kill = setTimeout(() => child.kill('SIGKILL'), durationMs + 60_000);
  const lines = createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.value !== 'ready') throw new Error(`probe client did not start: ${String(first.value)}`);
  return {
    async go() {
      child.stdin.write('go\n');
      const last = await iterator.next();
      clearTimeout(kill);
      child.stdin.end();
      if (typeof last.value !== 'string') throw new Error('probe client ended without its results');
      return JSON.parse(last.value) as Probe[];
    },
  };
}

function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number =>
    round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN);
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: round(sorted.at(-1) ?? Number.NaN) };
}

const round = (n: number): number => Math.round(n * 10) / 10;

/**
 * Storm suite: a desk-like list route (one user's 50 latest bots from Postgres, 10 pooled
 * connections) on one core, Postgres and the load on the other. Capacity: CAPACITY_CONNECTIONS
 * connections, no storm. Storm: STORM_CONNECTIONS keep-alive connections as fast as answers come
 * back, each request with `X-Request-Timeout-Ms: 2000`, for BENCH_DURATION_S, while a probe client
 * opens a new connection every 250 ms to the main port's /healthz and (hangproof) the probe port's.
 * The server traces where the main port's probes waited (accept, parse, hook, response).
 */
export async function stormSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  return withBotsDatabase('storm', async (pgUrl) => {
    const rows: Row[] = [];
    for (const sc of SCENARIOS) {
      process.stderr.write(`storm: ${sc.name}...\n`);
      const probePort = await freePort();
      const server = await startServerProcess(SERVER, {
        BENCH_SCENARIO: sc.name,
        DATABASE_URL: pgUrl,
        PROBE_PORT: String(probePort),
      });
      try {
        const health = server.url.replace(/\/api\/bots$/, '/healthz');
        await cannon(server.url, CAPACITY_CONNECTIONS, Math.max(1, s.warmupSec));
        await server.cpuStart();
        const capacity = await cannon(server.url, CAPACITY_CONNECTIONS, CAPACITY_S);
        const cpuPerServed = (await server.cpuStop()) / Math.max(1, capacity.ok);

        const targets = sc.name.startsWith('hangproof') ? [health, `http://127.0.0.1:${probePort}/healthz`] : [health];
        const probes = await probeClient(s.durationSec * 1000, targets);
        await server.cpuStart();
        const storm = cannon(server.url, STORM_CONNECTIONS, s.durationSec, ['X-Request-Timeout-Ms=2000']);
        const probed = await probes.go();
        const flood = await storm;
        const cpuStorm = await server.cpuStop();
        const { traces } = await server.call<{ traces: Trace[] }>('probe-trace', 'probe-trace');

        const sec = flood.durationSec;
        rows.push({
          scenario: sc.name,
          label: sc.label,
          capacityRps: capacity.ok / capacity.durationSec,
          cpuPerServedMicros: cpuPerServed,
          goodputRps: flood.ok / sec,
          refusedRps: flood.refused / sec,
          otherRps: flood.other / sec,
          cpuPerRefusalMicros: (cpuStorm - flood.ok * cpuPerServed) / Math.max(1, flood.refused),
          probes: Object.fromEntries(
            targets.map((t) => {
              const mine = probed.filter((p) => p.target === t);
              const answered = mine.filter((p) => p.status > 0);
              return [
                t === health ? 'main port' : 'probe port',
                {
                  onset: stats(answered.filter((p) => p.atMs < ONSET_MS).map((p) => p.totalMs)),
                  during: stats(answered.filter((p) => p.atMs >= ONSET_MS).map((p) => p.totalMs)),
                  failed: mine.length - answered.length,
                  notOk: answered.filter((p) => p.status !== 200).length,
                },
              ];
            }),
          ),
          phases: phasesOf(
            probed.filter((p) => p.target === health),
            traces,
          ),
        });
      } finally {
        await server.stop();
      }
    }
    return { markdown: render(rows, s), raw: rows };
  });
}

/** Splits each main-port probe's wait into steps, joining client and server times by the client's port. */
function phasesOf(probes: readonly Probe[], traces: readonly Trace[]): Record<string, Stats> {
  const byPort = new Map(traces.map((t) => [t.port, t]));
  const steps: Record<string, number[]> = {
    'connect (client)': [],
    'connected → accepted (connection event)': [],
    'accepted → request event (headers parsed)': [],
    'request event → first onRequest hook': [],
    'onRequest → response finished': [],
    'response finished → client has it': [],
  };
  const push = (k: string, v: number): void => {
    if (Number.isFinite(v)) steps[k]?.push(v);
  };
  for (const p of probes) {
    const t = byPort.get(p.port);
    push('connect (client)', p.connectMs);
    if (t === undefined) continue;
    if (t.acceptAt !== undefined) {
      push('connected → accepted (connection event)', t.acceptAt - p.connectedAt);
      push('accepted → request event (headers parsed)', t.requestAt - t.acceptAt);
    }
    if (t.hookAt > 0) {
      push('request event → first onRequest hook', t.hookAt - t.requestAt);
      push('onRequest → response finished', t.finishAt - t.hookAt);
    }
    push('response finished → client has it', p.endAt - t.finishAt);
  }
  return Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, stats(v)]));
}

function render(rows: readonly Row[], s: SuiteSettings): string {
  const fmtStats = (x: Stats | undefined): string =>
    x === undefined || x.n === 0 ? '—' : `${x.p50} / ${x.p99} / ${x.max} (n=${x.n})`;
  const lines = [
    `Measured ${environmentLine()}; server on one core, Postgres and the load on the other. Capacity: ${CAPACITY_CONNECTIONS} connections, ${CAPACITY_S} s, no storm. Storm: ${STORM_CONNECTIONS} keep-alive connections as fast as answers come back, \`X-Request-Timeout-Ms: 2000\`, ${s.durationSec} s; a probe every ${PROBE_EVERY_MS} ms on a new connection. "Onset" is the storm's first ${ONSET_MS / 1000} s. CPU per refusal is derived: (server CPU in the storm − served × CPU per served request at capacity) / refused. Aims: goodput ≥ 0.8× capacity, ≤ 20 µs CPU per refusal, probe max < 50 ms.`,
    '',
    '| server | capacity (rps) | goodput in the storm (rps) | goodput / capacity | refused 503 (rps) | other (rps) | CPU per served (µs) | CPU per refusal (µs) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${Math.round(r.capacityRps)} | ${Math.round(r.goodputRps)} | ${(r.goodputRps / r.capacityRps).toFixed(2)}× | ${Math.round(r.refusedRps)} | ${Math.round(r.otherRps)} | ${Math.round(r.cpuPerServedMicros)} | ${r.refusedRps > 0 ? Math.round(r.cpuPerRefusalMicros) : '—'} |`,
    );
  }
  lines.push(
    '',
    '| server | probe | onset p50 / p99 / max (ms) | during p50 / p99 / max (ms) | no answer | answered, not 200 |',
    '|---|---|---|---|---|---|',
  );
  for (const r of rows) {
    for (const [target, p] of Object.entries(r.probes)) {
      lines.push(
        `| ${r.scenario} | ${target} /healthz | ${fmtStats(p.onset)} | ${fmtStats(p.during)} | ${p.failed} | ${p.notOk} |`,
      );
    }
  }
  lines.push(
    '',
    "Where the main port's probes waited (server trace joined with the client's times; ms, p50 / p99 / max over the storm):",
    '',
    `| step | ${rows.map((r) => r.scenario).join(' | ')} |`,
    `|---|${rows.map(() => '---').join('|')}|`,
  );
  for (const step of Object.keys(rows[0]?.phases ?? {})) {
    lines.push(`| ${step} | ${rows.map((r) => fmtStats(r.phases[step])).join(' | ')} |`);
  }
  return lines.join('\n');
}
