/**
 * hangproof/diagnosis: ranks the likely causes of slow or failing requests from hangproof's own
 * evidence (its log lines, or the records observe keeps in memory). `hangproof report` runs it over
 * a service's log; the status page runs the same ranking over the last minute.
 */
export { CAUSE_KINDS, type CauseKind, type LikelyCause, likelyCauses } from './likely-causes.js';
export {
  type HolderRecord,
  type LockBlockerRecord,
  type LogEvent,
  type LogEventType,
  type RequestEvent,
  type SpanRecord,
  toLogEvent,
} from './log-events.js';
export { blockerLabel, blockerNote, seconds, shortSql, spanLabel, tableOf } from './span-label.js';
export { blockingFrame } from './stall-frames.js';
