/**
 * The incident report's data: built from the log events (and optionally a baseline log and a
 * /status.json document), rendered by render-markdown.ts and render-html.ts, printed by `--json`.
 * Field names are a contract; add, do not rename.
 */

import type { LogEvent, RequestEvent } from 'hangproof/diagnosis';
import { blockingFrame, type LikelyCause, likelyCauses } from 'hangproof/diagnosis';
import { asStatusJson, listOf } from '../http/status-json.js';
import { type EndpointChange, endpointChanges, MOVE_THRESHOLDS, type MoveThresholds } from './endpoint-changes.js';
import { type QueryStat, queryStats } from './query-stats.js';
import { type TimeoutGroup, timeoutGroups } from './timeout-groups.js';

export interface PoolExhaustion {
  readonly pool: string;
  readonly acquireTimeouts: number;
  readonly maxWaitedMs: number;
  readonly holders: readonly {
    readonly route: string;
    readonly step: string | null;
    readonly seen: number;
    readonly maxHeldMs: number;
    readonly requestIds: readonly string[];
  }[];
}

export interface Transition {
  readonly at: string;
  readonly source: 'breaker' | 'health';
  readonly dependency: string;
  readonly from: string;
  readonly to: string;
  readonly errorCode: string | null;
}

export interface StallEntry {
  readonly at: string;
  readonly stallMs: number;
  readonly frame: string | null;
  readonly stack: readonly string[];
  readonly inFlight: readonly string[];
}

export interface StatusSummary {
  readonly service: string | null;
  readonly pools: readonly Record<string, unknown>[];
  readonly stallsTotal: number | null;
  readonly recentTimeouts: number;
}

export interface IncidentReport {
  readonly kind: 'hangproof-report';
  readonly version: 1;
  readonly generatedAt: string;
  readonly window: { readonly from: string | null; readonly to: string | null; readonly durationMs: number };
  readonly inputs: {
    readonly lines: number;
    readonly ignoredLines: number;
    readonly events: number;
    readonly requests: number;
    readonly baselineRequests: number | null;
  };
  /** `halves`: first half of the window against the second; `baseline`: --baseline against the input. */
  readonly comparison: 'halves' | 'baseline';
  readonly splitAt: string | null;
  readonly causes: readonly LikelyCause[];
  readonly endpoints: readonly EndpointChange[];
  readonly timeouts: readonly TimeoutGroup[];
  readonly queries: readonly QueryStat[];
  readonly nPlusOne: readonly { route: string; sql: string; count: number; requestIds: string[] }[];
  readonly poolExhaustion: readonly PoolExhaustion[];
  readonly transitions: readonly Transition[];
  readonly stalls: readonly StallEntry[];
  readonly status: StatusSummary | null;
}

export interface ReportInput {
  readonly events: readonly LogEvent[];
  readonly lines: number;
  readonly ignoredLines: number;
  readonly baseline?: readonly LogEvent[] | undefined;
  readonly status?: unknown;
  readonly thresholds?: MoveThresholds;
  readonly now?: Date;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const isRequest = (e: LogEvent): e is RequestEvent => e.type === 'request';

export function buildIncidentReport(input: ReportInput): IncidentReport {
  const events = [...input.events, ...stallsFromStatus(input.status, input.events)].sort((a, b) => a.at - b.at);
  const requests = events.filter(isRequest);
  const from = events[0]?.at;
  const to = events.at(-1)?.at;
  let before: RequestEvent[];
  let after: RequestEvent[];
  let splitAt: number | undefined;
  if (input.baseline !== undefined) {
    before = input.baseline.filter(isRequest);
    after = requests;
  } else {
    const first = requests[0]?.at ?? 0;
    const last = requests.at(-1)?.at ?? 0;
    splitAt = first + (last - first) / 2;
    const at = splitAt;
    before = requests.filter((r) => r.at < at);
    after = requests.filter((r) => r.at >= at);
  }

  return {
    kind: 'hangproof-report',
    version: 1,
    generatedAt: (input.now ?? new Date()).toISOString(),
    window: {
      from: from === undefined ? null : iso(from),
      to: to === undefined ? null : iso(to),
      durationMs: from === undefined || to === undefined ? 0 : to - from,
    },
    inputs: {
      lines: input.lines,
      ignoredLines: input.ignoredLines,
      events: events.length,
      requests: requests.length,
      baselineRequests: input.baseline === undefined ? null : before.length,
    },
    comparison: input.baseline === undefined ? 'halves' : 'baseline',
    splitAt: splitAt === undefined ? null : iso(splitAt),
    causes: likelyCauses(requests, events, input.baseline),
    endpoints: endpointChanges(before, after, input.thresholds ?? MOVE_THRESHOLDS),
    timeouts: timeoutGroups(requests),
    queries: queryStats(requests, events),
    nPlusOne: nPlusOne(events),
    poolExhaustion: poolExhaustion(events),
    transitions: events.flatMap((e): Transition[] =>
      e.type === 'breaker' || e.type === 'health'
        ? [
            {
              at: iso(e.at),
              source: e.type,
              dependency: e.dependency,
              from: e.from,
              to: e.to,
              errorCode: e.type === 'health' ? (e.errorCode ?? null) : null,
            },
          ]
        : [],
    ),
    stalls: events.flatMap((e): StallEntry[] =>
      e.type === 'stall'
        ? [
            {
              at: iso(e.at),
              stallMs: e.stallMs,
              frame: blockingFrame(e.stack) ?? null,
              stack: e.stack.slice(0, 15),
              inFlight: e.inFlight.map(
                (r) => `${r.name} ${r.requestId}${r.stepInFlight ? ` (in ${r.stepInFlight})` : ''}`,
              ),
            },
          ]
        : [],
    ),
    status: statusSummary(input.status),
  };
}

function nPlusOne(events: readonly LogEvent[]): IncidentReport['nPlusOne'] {
  const by = new Map<string, { route: string; sql: string; count: number; requestIds: string[] }>();
  for (const e of events) {
    if (e.type !== 'n-plus-one') continue;
    const k = `${e.route}\u0000${e.sql}`;
    const g = by.get(k) ?? { route: e.route ?? '?', sql: e.sql, count: 0, requestIds: [] };
    g.count++;
    if (e.requestId !== undefined && g.requestIds.length < 5) g.requestIds.push(e.requestId);
    by.set(k, g);
  }
  return [...by.values()].sort((a, b) => b.count - a.count);
}

function poolExhaustion(events: readonly LogEvent[]): PoolExhaustion[] {
  const pools = new Map<
    string,
    { n: number; maxWaited: number; holders: Map<string, PoolExhaustion['holders'][number]> }
  >();
  for (const e of events) {
    if (e.type !== 'acquire-timeout') continue;
    const p = pools.get(e.pool) ?? { n: 0, maxWaited: 0, holders: new Map() };
    p.n++;
    p.maxWaited = Math.max(p.maxWaited, e.waitedMs);
    for (const h of e.holders) {
      const route = h.route ?? '(outside a request)';
      const k = `${route}\u0000${h.step ?? ''}`;
      const prev = p.holders.get(k);
      const ids = [...(prev?.requestIds ?? [])];
      if (h.requestId !== undefined && ids.length < 5 && !ids.includes(h.requestId)) ids.push(h.requestId);
      p.holders.set(k, {
        route,
        step: h.step ?? null,
        seen: (prev?.seen ?? 0) + 1,
        maxHeldMs: Math.max(prev?.maxHeldMs ?? 0, h.heldMs),
        requestIds: ids,
      });
    }
    pools.set(e.pool, p);
  }
  return [...pools.entries()].map(([pool, p]) => ({
    pool,
    acquireTimeouts: p.n,
    maxWaitedMs: Math.round(p.maxWaited),
    holders: [...p.holders.values()].sort((a, b) => b.seen - a.seen).slice(0, 10),
  }));
}

function statusSummary(status: unknown): StatusSummary | null {
  const s = asStatusJson(status);
  if (s === undefined) return null;
  const pools = listOf(s.pools).map((p) => {
    const st = p.stats ?? {};
    return {
      name: p.name,
      max: st.max,
      inUse: st.inUse,
      waiting: st.waiting,
      timeouts: st.timeouts,
      holders: st.holders,
    };
  });
  const stallsTotal = s.eventLoop?.stallsTotal;
  return {
    service: typeof s.service?.name === 'string' ? s.service.name : null,
    pools,
    stallsTotal: typeof stallsTotal === 'number' ? stallsTotal : null,
    recentTimeouts: listOf(s.timeouts).length,
  };
}

/** Stalls recorded on /status.json, used when the logs carry none (a log level that dropped them). */
function stallsFromStatus(status: unknown, events: readonly LogEvent[]): LogEvent[] {
  if (events.some((e) => e.type === 'stall')) return [];
  const recent = listOf(asStatusJson(status)?.eventLoop?.recentStalls);
  return recent.flatMap((r): LogEvent[] => {
    const at = typeof r.at === 'string' ? Date.parse(r.at) : Number.NaN;
    if (Number.isNaN(at)) return [];
    const frames = listOf(r.stack);
    const inFlight = listOf(r.inFlight);
    return [
      {
        type: 'stall',
        at,
        stallMs: typeof r.durationMs === 'number' ? r.durationMs : 0,
        stack: frames.map(
          (f) => `${String(f.functionName ?? '')} (${String(f.url ?? '')}:${String(f.line)}:${String(f.column)})`,
        ),
        inFlight: inFlight.map((x) => ({
          requestId: String(x.requestId ?? ''),
          name: String(x.name ?? ''),
          stepInFlight: typeof x.stepInFlight === 'string' ? x.stepInFlight : null,
        })),
      },
    ];
  });
}
