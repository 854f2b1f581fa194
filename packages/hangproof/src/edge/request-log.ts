import type { Level, Logger } from 'pino';
import type { RequestContext } from '../core/index.js';

export interface RequestOutcome {
  readonly method: string;
  readonly route: string;
  readonly path: string;
  readonly statusCode: number;
  readonly errorCode: string | undefined;
  readonly durationMs: number;
  /** Full error for the log only (never for the client). */
  readonly err: unknown;
}

export interface LogThresholds {
  readonly slowWarnMs: number;
  readonly slowErrorMs: number;
}

/** info normally, warn when slow, error when very slow or a server-side failure. */
export function levelFor(outcome: RequestOutcome, t: LogThresholds): Level {
  if (outcome.statusCode >= 500 || outcome.durationMs > t.slowErrorMs) return 'error';
  if (outcome.durationMs > t.slowWarnMs) return 'warn';
  return 'info';
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

/**
 * Writes the one structured line a request gets. On a timeout or abort it names the last
 * completed step and the step(s) still in flight: the answer to "where did it stall?".
 */
export function writeRequestLog(logger: Logger, ctx: RequestContext, outcome: RequestOutcome, level: Level): void {
  if (!logger.isLevelEnabled(level)) return;
  const spans = ctx.spans.map((s) =>
    s.attrs === undefined
      ? { name: s.name, kind: s.kind, start_ms: round(s.startMs), dur_ms: round(s.durationMs) }
      : { name: s.name, kind: s.kind, start_ms: round(s.startMs), dur_ms: round(s.durationMs), ...s.attrs },
  );
  const line: Record<string, unknown> = {
    ...ctx.fields,
    request_id: ctx.requestId,
    method: outcome.method,
    route: outcome.route,
    path: outcome.path,
    status: outcome.statusCode,
    start_ts: new Date(ctx.startedAtEpochMs).toISOString(),
    end_ts: new Date(ctx.startedAtEpochMs + outcome.durationMs).toISOString(),
    duration_ms: round(outcome.durationMs),
    deadline_ms: ctx.budgetMs,
    spans,
  };
  if (ctx.userId !== undefined) line.user_id = ctx.userId;
  if (ctx.droppedSpans > 0) line.dropped_spans = ctx.droppedSpans;
  if (outcome.errorCode !== undefined) {
    line.error_code = outcome.errorCode;
    line.last_completed_step = ctx.lastCompletedStep ?? null;
    // Steps unwind as the abort propagates; what was running at the abort is the answer.
    const inFlight = ctx.stepsInFlightAtAbort.length > 0 ? ctx.stepsInFlightAtAbort : ctx.stepsInFlight;
    line.step_in_flight = inFlight.at(-1) ?? null;
    if (inFlight.length > 1) line.steps_in_flight = [...inFlight];
  }
  if (outcome.err !== undefined && outcome.statusCode >= 500 && outcome.errorCode === 'INTERNAL')
    line.err = outcome.err;
  logger[level](line, messageFor(outcome));
}

function messageFor(o: RequestOutcome): string {
  if (o.errorCode === 'REQUEST_TIMEOUT') return 'request timed out';
  if (o.errorCode === 'CLIENT_CLOSED_REQUEST') return 'client closed request';
  return o.errorCode === undefined ? 'request completed' : 'request failed';
}
