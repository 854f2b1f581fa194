/**
 * The last minute's evidence of slow or failing requests, kept in bounded rings of the same small
 * records `hangproof report` reads from a log (diagnosis/log-events.ts), so /status ranks likely
 * causes with the very ranking the report uses. Only what already exists for a slow or failing
 * request is recorded: evidence lines (lock waits, slow queries and plans, an unreachable
 * Postgres, acquire timeouts, leaks, N+1), loop stalls, breaker changes, and requests that timed
 * out, were slow or answered 5xx. A healthy request adds nothing. Never a request context: its
 * spans are copied as primitives.
 */
import type { BreakerStateEvent, EvidenceEvent, RequestEndEvent, Span } from '../core/index.js';
import { type LikelyCause, likelyCauses } from '../diagnosis/likely-causes.js';
import { type LogEvent, type RequestEvent, type SpanRecord, toLogEvent } from '../diagnosis/log-events.js';
import { BoundedRing } from './bounded-ring.js';
import { stallFrameText } from './stall-frame-text.js';
import type { StallReport } from './stall-watchdog.js';

/** How far back the ranking looks, in ms. */
export const RECENT_EVIDENCE_MS = 60_000;
/**
 * Evidence lines kept of each kind. One ring per kind: in a storm one kind of line (an acquire
 * timeout, a slow query per request) comes by the thousand, and in a single ring it pushed out the
 * rare line that explains them all (the lock wait, the stall, the breaker that opened), so the
 * ranking saw only the symptom.
 */
const EVENTS_KEPT_PER_KIND = 256;
/** Slow, timed-out or failed requests kept. */
const REQUESTS_KEPT = 256;
/** Spans copied per request (a context keeps up to 256). */
const SPANS_KEPT = 100;
/** Causes listed on /status. */
const CAUSES_LISTED = 5;

/** One likely cause on /status: a `hangproof report` cause without its request ids and line count. */
export type StatusCause = Pick<LikelyCause, 'kind' | 'subject' | 'title' | 'score' | 'requests' | 'detail'>;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** A span as the request log line would give it to the report. */
function spanRecord(s: Span): SpanRecord {
  const a = s.attrs ?? {};
  return {
    name: s.name,
    startMs: s.startMs,
    durMs: s.durationMs,
    kind: s.kind,
    fingerprint: str(a.fingerprint),
    rows: typeof a.rows === 'number' ? a.rows : undefined,
    error: str(a.error) ?? (a.failed === true ? (str(a.outcome) ?? 'failed') : undefined),
  };
}

export class RecentEvidence {
  readonly #events = new Map<LogEvent['type'], BoundedRing<LogEvent>>();
  readonly #requests = new BoundedRing<RequestEvent>(REQUESTS_KEPT);

  /** An evidence line, parsed as the report parses it; its fields object is not kept. */
  readonly onEvidence = (e: EvidenceEvent): void => {
    const event = toLogEvent({ ...e.fields, msg: e.msg, time: e.time });
    if (event !== undefined && event.type !== 'request') this.#push(event);
  };

  #push(event: LogEvent): void {
    let ring = this.#events.get(event.type);
    if (ring === undefined) {
      ring = new BoundedRing<LogEvent>(EVENTS_KEPT_PER_KIND);
      this.#events.set(event.type, ring);
    }
    ring.push(event);
  }

  /** A request that timed out, was slow or failed, ended at `nowMs` (epoch). */
  addRequest(e: RequestEndEvent, nowMs: number): void {
    const { ctx } = e;
    const spans = ctx.spans.length > SPANS_KEPT ? ctx.spans.slice(0, SPANS_KEPT) : ctx.spans;
    this.#requests.push({
      type: 'request',
      at: nowMs,
      requestId: ctx.requestId,
      method: e.method,
      route: e.route,
      path: e.route,
      status: e.statusCode,
      durationMs: e.durationMs,
      deadlineMs: ctx.budgetMs,
      errorCode: e.errorCode,
      lastCompletedStep: ctx.lastCompletedStep,
      stepInFlight: ctx.stepInFlight ?? ctx.stepsInFlightAtAbort.at(-1),
      spans: spans.map(spanRecord),
    });
  }

  addStall(report: StallReport): void {
    this.#push({
      type: 'stall',
      at: Date.parse(report.at) + report.durationMs,
      stallMs: report.durationMs,
      stack: report.stack?.map(stallFrameText) ?? [],
      inFlight: report.inFlight.map((r) => ({
        requestId: r.requestId,
        name: r.name,
        stepInFlight: r.stepInFlight ?? null,
      })),
    });
  }

  addBreakerChange(e: BreakerStateEvent): void {
    this.#push({ type: 'breaker', at: Date.now(), dependency: e.dependency, from: e.from, to: e.to });
  }

  /** The likely causes of the last minute, most likely first. */
  likelyCauses(nowMs: number): StatusCause[] {
    const since = nowMs - RECENT_EVIDENCE_MS;
    // Oldest first, in the order a log has them.
    const requests = this.#requests
      .toArray()
      .filter((r) => r.at >= since)
      .reverse();
    const events: LogEvent[] = [];
    for (const ring of this.#events.values()) for (const e of ring.toArray()) if (e.at >= since) events.push(e);
    events.sort((a, b) => a.at - b.at);
    if (requests.length === 0 && events.length === 0) return [];
    return likelyCauses(requests, events)
      .slice(0, CAUSES_LISTED)
      .map(({ kind, subject, title, score, requests: explained, detail }) => ({
        kind,
        subject,
        title,
        score,
        requests: explained,
        detail,
      }));
  }
}
