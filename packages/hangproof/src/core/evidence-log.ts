import { publishEvidence } from './diagnostics.js';

type LogFn = (obj: Record<string, unknown>, msg: string) => void;

/** The levels an evidence line is written at; any pino logger (or the pg and deps loggers) fits. */
export interface EvidenceLogger {
  readonly error: LogFn;
  readonly warn: LogFn;
  readonly info: LogFn;
}

/**
 * Writes a line of evidence (a lock wait, a slow query, an unreachable Postgres...) and publishes
 * it on the evidence channel, where observe keeps the last minute of it for /status. Call it only
 * where a line is written anyway: a healthy request never gets here.
 */
export function logEvidence(
  logger: EvidenceLogger,
  level: keyof EvidenceLogger,
  fields: Record<string, unknown>,
  msg: string,
): void {
  logger[level](fields, msg);
  publishEvidence(fields, msg);
}
