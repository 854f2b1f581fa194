import * as diagnostics from 'node:diagnostics_channel';
import type { RequestContext } from './request-context.js';

/**
 * hangproof's diagnostics channels: the edge, the Postgres guard and the dependency layer publish
 * here; observe (metrics, histograms, status page) and user code subscribe. Publishing is skipped
 * when nobody listens, so an unobserved service pays nothing. Channel names and payloads are a
 * public contract (docs/reference/diagnostics.md).
 */

/** A request (or job) ended: the response is out, or the client went away. */
export interface RequestEndEvent {
  readonly ctx: RequestContext;
  readonly method: string;
  /** Route pattern, e.g. `/api/bots/:id`; `''` for unknown routes. */
  readonly route: string;
  readonly statusCode: number;
  /** hangproof error code when the request failed. */
  readonly errorCode: string | undefined;
  readonly durationMs: number;
}

/** One query finished (or failed) in the Postgres guard. */
export interface QueryEvent {
  readonly ctx: RequestContext | undefined;
  readonly fingerprint: string;
  readonly durationMs: number;
  readonly rowCount: number;
  /** hangproof error code when the query failed. */
  readonly errorCode: string | undefined;
  /** The statement's verb and first table, e.g. `SELECT bots`: what its span is named. */
  readonly name: string;
  /** Short stable id of the fingerprint. */
  readonly queryId: string;
  /** performance.now() when the query started (its pool wait included). */
  readonly startedAt: number;
  /** Time spent waiting for a pooled connection, ms. */
  readonly acquireMs: number;
  /** Where a failed query failed (`acquire`, `connect`, `lock`, `query`...). */
  readonly phase: string | undefined;
  /** Name of the guarded pool. */
  readonly pool: string;
  /** Host name and port of the Postgres server of the pool. */
  readonly serverAddress: string;
  readonly serverPort: number;
}

/** A pool acquire finished: got a connection after `waitMs`, or gave up. */
export interface PoolAcquireEvent {
  readonly pool: string;
  readonly waitMs: number;
  readonly ok: boolean;
}

/** One call to a declared dependency ended. */
export interface DependencyCallEvent {
  readonly dependency: string;
  readonly durationMs: number;
  /** `ok`, or the hangproof error code of the failure. */
  readonly outcome: string;
}

/** A circuit breaker changed state. */
export interface BreakerStateEvent {
  readonly dependency: string;
  readonly from: string;
  readonly to: string;
}

/**
 * A log line that is evidence of why requests are slow or failing (a lock wait, a slow query and
 * its plan, an unreachable Postgres, a pool acquire timeout, a leak, an N+1, a dependency's health
 * change), published as it is written. Only such lines are published, so a healthy request
 * publishes nothing. `fields` is the line's own object: read it, do not keep it.
 */
export interface EvidenceEvent {
  /** The line's `msg`. */
  readonly msg: string;
  /** The line's fields (`event`, `requestId`, `relation`, `blockers`...), as logged. */
  readonly fields: Readonly<Record<string, unknown>>;
  /** Epoch ms when the line was written. */
  readonly time: number;
}

export const channels = Object.freeze({
  requestEnd: diagnostics.channel('hangproof:request:end'),
  query: diagnostics.channel('hangproof:pg:query'),
  poolAcquire: diagnostics.channel('hangproof:pg:acquire'),
  dependencyCall: diagnostics.channel('hangproof:deps:call'),
  breakerState: diagnostics.channel('hangproof:deps:breaker'),
  evidence: diagnostics.channel('hangproof:evidence'),
});

/** Publishes only when someone listens: building the payload costs nothing otherwise. */
export function publish<T extends object>(channel: diagnostics.Channel, build: () => T): void {
  if (channel.hasSubscribers) channel.publish(build());
}

/** Publishes a line of evidence just written (see EvidenceEvent); nothing when nobody listens. */
export function publishEvidence(fields: Readonly<Record<string, unknown>>, msg: string): void {
  if (channels.evidence.hasSubscribers)
    channels.evidence.publish({ msg, fields, time: Date.now() } satisfies EvidenceEvent);
}
