/** Type tests of `hangproof/diagnosis` (compiled by `npm run typecheck`, never run). */
import {
  CAUSE_KINDS,
  type CauseKind,
  type LikelyCause,
  type LogEvent,
  likelyCauses,
  type RequestEvent,
  toLogEvent,
} from 'hangproof/diagnosis';
import type { StatusDocument } from 'hangproof/observe';

export function diagnosisSurface(lines: readonly Record<string, unknown>[]): readonly LikelyCause[] {
  const events = lines.map(toLogEvent).filter((e): e is LogEvent => e !== undefined);
  const requests = events.filter((e): e is RequestEvent => e.type === 'request');
  const causes = likelyCauses(requests, events);
  const kind: CauseKind = CAUSE_KINDS[0];
  void kind;
  // @ts-expect-error a cause's kind is one of CAUSE_KINDS
  const bad: CauseKind = 'pg.slow';
  void bad;
  return causes;
}

/** /status.json lists causes of the same kinds as the report. */
export function statusCauseKinds(doc: StatusDocument): CauseKind[] {
  return doc.likelyCauses.map((c) => c.kind);
}
