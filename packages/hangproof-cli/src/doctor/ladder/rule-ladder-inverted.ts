/**
 * LADDER_INVERTED: every inner timeout must fire before the one outside it, so the inner layer can
 * turn the failure into a clear error instead of being cut off by the outer one.
 */
import { formatMs } from '../../output/duration.js';
import { type Finding, finding } from '../findings.js';
import type { LadderLayer, LadderRows } from './ladder-rows.js';
import { label, pseudo, requestBoundOf, tightest } from './layer-math.js';

function inverted(inner: LadderLayer | undefined, outer: LadderLayer | undefined, advice: string): Finding[] {
  if (!inner || !outer || inner.valueMs === null || outer.valueMs === null) return [];
  if (inner.valueMs < outer.valueMs) return [];
  const target = Math.max(1, Math.floor(outer.valueMs * 0.8));
  return [
    finding(
      'LADDER_INVERTED',
      [outer.id, inner.id],
      `${label(inner)} (${formatMs(inner.valueMs)}) is not shorter than ${label(outer)} (${formatMs(outer.valueMs)}) outside it`,
      `set ${label(inner)} below ${formatMs(outer.valueMs)}, e.g. ${formatMs(target)}${advice ? `; ${advice}` : ''}`,
    ),
  ];
}

export function ladderInverted(r: LadderRows): Finding[] {
  const out: Finding[] = [];
  // Request path: gateway > proxy_read > workers > deadline. Each compared with the tightest outside it.
  out.push(...inverted(r.proxyRead, r.gateway, ''));
  out.push(
    ...inverted(
      r.workers,
      tightest(r.gateway, r.proxyRead),
      'a worker killed after the proxy gave up is a hang nobody sees',
    ),
  );
  out.push(
    ...inverted(
      r.deadline,
      tightest(r.gateway, r.proxyRead, r.workers),
      'the service must answer (504 REQUEST_TIMEOUT) before the proxy gives up',
    ),
  );
  const requestBound = requestBoundOf(r);
  for (const row of [r.queryWait, r.acquire, r.queryTimeout, r.appStatement ?? r.dbStatement]) {
    out.push(...inverted(row, requestBound, 'leave room to turn the failure into a clear error'));
  }
  for (const e of r.dependencies) {
    const caller =
      e.dep.callerDeadlineMs !== undefined ? pseudo(`caller of ${e.dep.name}`, e.dep.callerDeadlineMs) : requestBound;
    if (e.dep.maxAttempts === 1 || e.dep.timeoutMs === undefined || e.dep.timeoutMs === null) {
      out.push(...inverted(e.attempt, caller, ''));
    }
  }
  out.push(
    ...inverted(
      r.appStatement ?? r.dbStatement,
      r.queryTimeout,
      'PgBouncer documents query_timeout as slightly above statement_timeout',
    ),
  );
  out.push(
    ...inverted(
      r.appLock ?? r.dbLock,
      r.appStatement ?? r.dbStatement,
      'lock_timeout is pointless unless below statement_timeout',
    ),
  );
  return out;
}
