import {
  channels,
  logEvidence,
  type QueryEvent,
  type QueryShape,
  type RequestContext,
  type ShapeRuns,
} from '../core/index.js';
import { isHangproofError } from '../errors.js';
import { LOG_MESSAGES } from '../log-events.js';
import type { ParamRedactor } from './database-options.js';
import type { PgLogger } from './logger.js';

/** Distinct query shapes tracked per request; more are not checked for N+1. */
const MAX_SHAPES_PER_REQUEST = 256;

export interface AccountingOptions {
  readonly pool: string;
  /** Host name and port of the pool's server, for the query event. */
  readonly serverAddress: string;
  readonly serverPort: number;
  readonly slowQueryMs: number;
  readonly nPlusOneThreshold: number;
  readonly redactParams: ParamRedactor;
  readonly logger: PgLogger;
  /** Told of each statement slower than `slowQueryMs` without its acquire wait (plan capture). */
  readonly onSlow?:
    | ((
        sql: string,
        fingerprint: string,
        params: readonly unknown[] | undefined,
        execMs: number,
        error: unknown,
      ) => void)
    | undefined;
}

/**
 * Everything the guard records about queries: the query span and per-kind totals on the request's
 * context (numbers plus the interned shape), the `query` diagnostics event, the slow-query log
 * line and N+1 detection. Per-request state lives in fields of the context, so it goes away with
 * the request and costs no map lookup keyed by it.
 */
export class QueryAccounting {
  readonly #options: AccountingOptions;
  slowQueries = 0;
  nPlusOneDetected = 0;
  queries = 0;

  constructor(options: AccountingOptions) {
    this.#options = options;
  }

  /**
   * A query of `shape` starts in `ctx`: counts it and checks for the N+1 pattern. Returns the
   * shape's runs in the request, for `end` (one walk of the request's shapes per query, not two).
   */
  start(ctx: RequestContext | undefined, shape: QueryShape): ShapeRuns | undefined {
    this.queries++;
    if (ctx === undefined || this.#options.nPlusOneThreshold === 0) return undefined;
    let runs = ctx.queryRuns;
    let shapes = 0;
    while (runs !== undefined && runs.shape !== shape) {
      runs = runs.next;
      shapes++;
    }
    if (runs === undefined) {
      if (shapes >= MAX_SHAPES_PER_REQUEST) return undefined;
      runs = { shape, count: 0, inFlight: 0, reported: false, next: ctx.queryRuns };
      ctx.queryRuns = runs;
    }
    if (runs.inFlight === 0) runs.count++;
    runs.inFlight++;
    this.#checkNPlusOne(ctx, shape, runs);
    return runs;
  }

  /**
   * The query ended (`error` undefined on success): span, event, slow-query line. `startedAt` and
   * `endedAt` are performance.now() times (its pool wait included).
   */
  end(
    ctx: RequestContext | undefined,
    shape: QueryShape,
    runs: ShapeRuns | undefined,
    startedAt: number,
    endedAt: number,
    rows: number,
    error: unknown,
    waitMs: number,
    params: readonly unknown[] | undefined,
    sql?: string,
  ): void {
    const durationMs = endedAt - startedAt;
    if (runs !== undefined) runs.inFlight--;
    let errorCode: string | undefined;
    let phase: string | undefined;
    if (error !== undefined) {
      errorCode = isHangproofError(error) ? error.code : 'INTERNAL';
      // Where it failed (`lock`, `acquire`...): /status shows it next to the timeout.
      const p = isHangproofError(error) ? error.details.phase : undefined;
      if (typeof p === 'string') phase = p;
    }
    ctx?.recordQuery(shape, startedAt, durationMs, rows, waitMs, errorCode, phase);
    if (channels.query.hasSubscribers) {
      const o = this.#options;
      channels.query.publish({
        ctx,
        fingerprint: shape.fingerprint,
        durationMs,
        rowCount: rows,
        errorCode,
        name: shape.label,
        queryId: shape.id,
        startedAt,
        acquireMs: waitMs,
        phase,
        pool: o.pool,
        serverAddress: o.serverAddress,
        serverPort: o.serverPort,
      } satisfies QueryEvent);
    }
    const { slowQueryMs } = this.#options;
    if (slowQueryMs > 0 && durationMs > slowQueryMs) {
      this.slowQueries++;
      logEvidence(
        this.#options.logger,
        'warn',
        {
          pool: this.#options.pool,
          requestId: ctx?.requestId,
          route: ctx?.name,
          span: shape.label,
          queryId: shape.id,
          sql: shape.fingerprint,
          params: params === undefined ? undefined : this.#options.redactParams(params, shape.fingerprint),
          durationMs: Math.round(durationMs),
          rows,
          errorCode,
        },
        LOG_MESSAGES.slowQuery,
      );
      const execMs = durationMs - waitMs;
      if (sql !== undefined && execMs > slowQueryMs)
        this.#options.onSlow?.(sql, shape.fingerprint, params, execMs, error);
    }
  }

  #checkNPlusOne(ctx: RequestContext, shape: QueryShape, runs: ShapeRuns): void {
    const threshold = this.#options.nPlusOneThreshold;
    if (runs.reported || runs.count <= threshold) return;
    runs.reported = true;
    this.nPlusOneDetected++;
    logEvidence(
      this.#options.logger,
      'warn',
      {
        pool: this.#options.pool,
        requestId: ctx.requestId,
        route: ctx.name,
        queryId: shape.id,
        sql: shape.fingerprint,
        count: runs.count,
        threshold,
      },
      LOG_MESSAGES.nPlusOne,
    );
  }
}
