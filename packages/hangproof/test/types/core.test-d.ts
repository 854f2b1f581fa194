/**
 * Type tests of the `hangproof` entry: compiled by `npm run typecheck`, never run. A change of a
 * public signature, or an internal that reappears in the surface, fails the typecheck.
 */
import {
  currentContext,
  type HangproofError,
  isHangproofError,
  LOG_EVENTS,
  type RequestContext,
  runWithBudget,
  type StatusDocument,
  step,
} from 'hangproof';

export async function coreSurface(): Promise<void> {
  const ctx: RequestContext | undefined = currentContext();
  const deadline: number | undefined = ctx?.deadlineAt;
  void deadline;
  const rows: number[] = await step('load-bots', async () => [1, 2]);
  void rows;
  const answer: string = await runWithBudget('nightly-report', 500, async (signal: AbortSignal) =>
    signal.aborted ? 'late' : 'ok',
  );
  void answer;
  const err: unknown = new Error('x');
  if (isHangproofError(err)) {
    const known: HangproofError = err;
    void known.code;
  }
  const event: string = LOG_EVENTS.pgUnavailable;
  void event;
  const doc = {} as StatusDocument;
  void doc;
  // @ts-expect-error step needs a function to run
  await step('no-work');
}

// Internals the layers share are not part of the surface.
// @ts-expect-error BoundedGate is internal
export type NoGate = typeof import('hangproof').BoundedGate;
// @ts-expect-error LatencyReservoir is internal
export type NoReservoir = typeof import('hangproof').LatencyReservoir;
// @ts-expect-error RequestLog is internal
export type NoRequestLog = typeof import('hangproof').RequestLog;
// @ts-expect-error budgetUntil is internal
export type NoBudgetUntil = typeof import('hangproof').budgetUntil;
