/**
 * The incident report as neutral sections (paragraphs, lists, tables, code), so the Markdown and
 * the HTML renderings say exactly the same thing.
 */

import { shortSql } from 'hangproof/diagnosis';
import type { IncidentReport } from './incident-report.js';

export type Block =
  | { readonly type: 'p'; readonly text: string }
  | { readonly type: 'list'; readonly items: readonly string[] }
  | { readonly type: 'table'; readonly head: readonly string[]; readonly rows: readonly (readonly string[])[] }
  | { readonly type: 'code'; readonly text: string };

export interface Section {
  readonly title: string;
  readonly blocks: readonly Block[];
}

const ids = (xs: readonly string[]): string => (xs.length === 0 ? '-' : xs.join(', '));
const ms = (n: number): string => `${Math.round(n)} ms`;
const pct = (share: number): string => `${(share * 100).toFixed(1)} %`;

/** A table of `items`, or a sentence saying there was nothing. */
function tableOrNote<T>(
  items: readonly T[],
  emptyText: string,
  head: readonly string[],
  row: (item: T) => readonly string[],
): Block[] {
  return items.length === 0 ? [{ type: 'p', text: emptyText }] : [{ type: 'table', head, rows: items.map(row) }];
}

export function reportSections(r: IncidentReport): Section[] {
  const out: Section[] = [];
  out.push({
    title: 'Window',
    blocks: [
      {
        type: 'p',
        text:
          r.window.from === null
            ? 'No usable log line was found.'
            : `${r.window.from} to ${r.window.to} (${Math.round(r.window.durationMs / 1000)} s): ${r.inputs.requests} requests, ${r.inputs.events} events from ${r.inputs.lines} lines (${r.inputs.ignoredLines} ignored).`,
      },
      {
        type: 'p',
        text:
          r.comparison === 'baseline'
            ? `Compared with a baseline log of ${r.inputs.baselineRequests} requests.`
            : `Compared: first half of the window against the second (split at ${r.splitAt ?? '-'}).`,
      },
    ],
  });

  out.push({
    title: 'Likely causes',
    blocks:
      r.causes.length === 0
        ? [
            {
              type: 'p',
              text: 'No cause stood out: no slow query, lock wait, pool timeout, dependency failure or loop stall was logged.',
            },
          ]
        : [
            {
              type: 'table',
              head: ['#', 'cause', 'kind', 'score', 'requests', 'log lines', 'evidence (request ids)'],
              rows: r.causes.map((c, i) => [
                String(i + 1),
                c.title,
                c.kind,
                String(c.score),
                String(c.requests),
                String(c.lines),
                ids(c.requestIds),
              ]),
            },
            { type: 'list', items: r.causes.slice(0, 5).map((c) => `${c.title}: ${c.detail}`) },
          ],
  });

  out.push({
    title: 'Endpoints that moved',
    blocks: [
      {
        type: 'table',
        head: [
          'endpoint',
          'moved',
          'p95 before',
          'p95 after',
          'p99 before',
          'p99 after',
          'errors before',
          'errors after',
          'dominant step',
          'examples',
        ],
        rows: r.endpoints
          .slice(0, 30)
          .map((e) => [
            `${e.method} ${e.route}`,
            e.moved ? `yes: ${e.reasons.join('; ')}` : 'no',
            ms(e.before.p95),
            ms(e.after.p95),
            ms(e.before.p99),
            ms(e.after.p99),
            pct(e.before.errorRate),
            pct(e.after.errorRate),
            e.dominantStep === null ? '-' : `${e.dominantStep.label} (${Math.round(e.dominantStep.share * 100)} %)`,
            ids(e.exampleRequestIds.slice(0, 3)),
          ]),
      },
    ],
  });

  out.push({
    title: 'Timeouts by last completed step',
    blocks: tableOrNote(
      r.timeouts,
      'No request timed out.',
      ['endpoint', 'last completed step', 'step in flight', 'count', 'codes', 'request ids'],
      (t) => [
        t.route,
        t.lastCompletedStep ?? '(none)',
        t.stepInFlight ?? '(none)',
        String(t.count),
        Object.entries(t.codes)
          .map(([k, v]) => `${k} x${v}`)
          .join(', '),
        ids(t.requestIds),
      ],
    ),
  });

  out.push({
    title: 'Top query fingerprints',
    blocks: tableOrNote(
      r.queries,
      'No query span or slow-query line.',
      ['fingerprint', 'count', 'total', 'p95', 'max', 'errors', 'slow lines', 'routes'],
      (q) => [
        shortSql(q.fingerprint),
        String(q.count),
        ms(q.totalMs),
        ms(q.p95Ms),
        ms(q.maxMs),
        String(q.errors),
        String(q.slowLines),
        q.routes.join(', '),
      ],
    ),
  });

  if (r.nPlusOne.length > 0)
    out.push({
      title: 'N+1 queries',
      blocks: [
        {
          type: 'table',
          head: ['route', 'query', 'requests', 'request ids'],
          rows: r.nPlusOne.map((x) => [x.route, shortSql(x.sql), String(x.count), ids(x.requestIds)]),
        },
      ],
    });

  out.push({
    title: 'Pool exhaustion',
    blocks:
      r.poolExhaustion.length === 0
        ? [{ type: 'p', text: 'No pool acquire timed out.' }]
        : r.poolExhaustion.flatMap((p): Block[] => [
            {
              type: 'p',
              text: `Pool ${p.pool}: ${p.acquireTimeouts} acquire timeout(s), longest wait ${ms(p.maxWaitedMs)}. Holders at the time:`,
            },
            {
              type: 'table',
              head: ['holder route', 'step', 'seen holding', 'longest held', 'request ids'],
              rows: p.holders.map((h) => [h.route, h.step ?? '-', String(h.seen), ms(h.maxHeldMs), ids(h.requestIds)]),
            },
          ]),
  });

  out.push({
    title: 'Breaker and health transitions',
    blocks: tableOrNote(
      r.transitions,
      'No breaker or health transition.',
      ['time', 'dependency', 'what', 'from', 'to', 'error'],
      (t) => [t.at, t.dependency, t.source, t.from, t.to, t.errorCode ?? '-'],
    ),
  });

  out.push({
    title: 'Event-loop stalls',
    blocks:
      r.stalls.length === 0
        ? [{ type: 'p', text: 'No event-loop stall.' }]
        : r.stalls.slice(0, 10).flatMap((s): Block[] => [
            {
              type: 'p',
              text: `${s.at}: blocked ${ms(s.stallMs)} by ${s.frame ?? '(no stack)'}; in flight: ${s.inFlight.join(', ') || '-'}`,
            },
            ...(s.stack.length > 0 ? [{ type: 'code' as const, text: s.stack.join('\n') }] : []),
          ]),
  });

  if (r.status !== null)
    out.push({
      title: 'Service status (from /status.json)',
      blocks: [
        {
          type: 'p',
          text: `${r.status.service ?? 'service'}: ${r.status.stallsTotal ?? '?'} stall(s) since start, ${r.status.recentTimeouts} recent timeout(s).`,
        },
        {
          type: 'table',
          head: ['pool', 'max', 'in use', 'waiting', 'timeouts'],
          rows: r.status.pools.map((p) => [
            String(p.name),
            String(p.max ?? '-'),
            String(p.inUse ?? '-'),
            String(p.waiting ?? '-'),
            JSON.stringify(p.timeouts ?? '-'),
          ]),
        },
      ],
    });
  return out;
}
