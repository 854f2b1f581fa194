/** TIMEOUT_INFINITE: a wait without a limit (0 or not set) is where a request hangs. */
import { type Finding, finding } from '../findings.js';
import type { LadderLayer, LadderRows } from './ladder-rows.js';
import { formatPg, label, requestBoundOf } from './layer-math.js';

function infinite(row: LadderLayer | undefined, fix: string, severity?: 'warning'): Finding[] {
  if (!row || row.valueMs !== null) return [];
  return [finding('TIMEOUT_INFINITE', [row.id], `${label(row)} is 0 or not set: it waits forever`, fix, severity)];
}

const isSet = (row: LadderLayer | undefined): boolean => (row?.valueMs ?? null) !== null;

export function timeoutInfinite(r: LadderRows): Finding[] {
  const out: Finding[] = [
    ...infinite(r.workers, 'set a worker timeout just above the request deadline'),
    ...infinite(r.requestTimeout, 'set requestTimeout (hangproof serverOptions derives it from maxDeadlineMs)'),
    ...infinite(r.headersTimeout, 'set headersTimeout, e.g. 10 s'),
    ...infinite(r.deadline, 'give every request a deadline, e.g. 10 s (hangproof plugin deadlineMs)'),
    ...infinite(r.queryWait, 'set query_wait_timeout below the request deadline, e.g. 5 s'),
    ...infinite(r.acquire, 'set a pool acquire timeout, e.g. 2 s (hangproof pg acquireTimeoutMs)'),
  ];
  for (const e of r.dependencies) {
    out.push(...infinite(e.attempt, `set a timeout on ${e.dep.name} calls below the caller deadline, e.g. 1-3 s`));
  }
  out.push(
    ...infinite(r.appStatement, 'set statement_timeout per transaction, e.g. 5 s (hangproof pg statementTimeoutMs)'),
  );
  // The database default matters less when the application sets its own: then it is a warning.
  out.push(
    ...infinite(
      r.dbStatement,
      `ALTER ROLE <app role> SET statement_timeout = '${formatPg(requestBoundOf(r)?.valueMs ?? 30_000)}' (or the database), so a session that sets none is still bounded`,
      isSet(r.appStatement) ? 'warning' : undefined,
    ),
  );
  // lock_timeout and idle_in_transaction_session_timeout are fine set on either side.
  if (!isSet(r.appLock) && !isSet(r.dbLock)) {
    out.push(...infinite(r.appLock ?? r.dbLock, "set lock_timeout below statement_timeout, e.g. '2s'", 'warning'));
  }
  if (!isSet(r.appIdleTx) && !isSet(r.dbIdleTx)) {
    out.push(
      ...infinite(
        r.appIdleTx ?? r.dbIdleTx,
        "set idle_in_transaction_session_timeout, e.g. '30s', so a leaked transaction cannot hold locks and a connection forever",
      ),
    );
  }
  return out;
}
