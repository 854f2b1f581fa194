/** TIMEOUT_EXCESSIVE: a user-facing request path allowed to take minutes. */
import { formatMs } from '../../output/duration.js';
import { type Finding, finding } from '../findings.js';
import type { LadderRows } from './ladder-rows.js';
import { label } from './layer-math.js';

/** A request path longer than this is flagged as TIMEOUT_EXCESSIVE. */
export const EXCESSIVE_REQUEST_MS = 60_000;

export function timeoutExcessive(r: LadderRows): Finding[] {
  const out: Finding[] = [];
  for (const row of [r.deadline, r.workers, r.proxyReadMax]) {
    if (row && row.valueMs !== null && row.valueMs > EXCESSIVE_REQUEST_MS) {
      out.push(
        finding(
          'TIMEOUT_EXCESSIVE',
          [row.id],
          `${label(row)} is ${formatMs(row.valueMs)}: requests may take that long`,
          `keep user-facing requests under ${formatMs(EXCESSIVE_REQUEST_MS)} (a deadline of 5-30 s); move the slow work to a background job or a snapshot the request reads`,
        ),
      );
    }
  }
  return out;
}
