import { channels, publish, type RequestContext } from '../core/index.js';
import { isHangproofError } from '../errors.js';
import { LOG_MESSAGES } from '../log-events.js';
import type { ParamRedactor } from './database-options.js';
import type { PgLogger } from './logger.js';

interface ShapeState {
  /** Sequential runs: a batch of parallel runs of one shape counts once. */
  count: number;
  inFlight: number;
  reported: boolean;
}

interface RequestState {
  queries: number;
  readonly shapes: Map<string, ShapeState>;
}

/** Distinct query shapes tracked per request; more are not checked for N+1. */
const MAX_SHAPES_PER_REQUEST = 256;

export interface AccountingOptions {
  readonly pool: string;
  readonly slowQueryMs: number;
  readonly nPlusOneThreshold: number;
  readonly redactParams: ParamRedactor;
  readonly logger: PgLogger;
}

/** One query being accounted: call `end` exactly once. */
export interface QueryTicket {
  end(outcome: { rows: number; error: unknown; waitMs?: number }): void;
}

/**
 * Everything the guard records about queries, per request: the `q1..qN` spans (kind `db`), the
 * `query` diagnostics event, the slow-query log line and N+1 detection. State per request lives
 * in a WeakMap keyed by the context, so it goes away with the request.
 */
export class QueryAccounting {
  readonly #options: AccountingOptions;
  readonly #requests = new WeakMap<RequestContext, RequestState>();
  slowQueries = 0;
  nPlusOneDetected = 0;
  queries = 0;

  constructor(options: AccountingOptions) {
    this.#options = options;
  }

  begin(ctx: RequestContext | undefined, fingerprint: string, params: readonly unknown[] | undefined): QueryTicket {
    const started = performance.now();
    this.queries++;
    let name = 'q';
    let shape: ShapeState | undefined;
    if (ctx !== undefined) {
      let state = this.#requests.get(ctx);
      if (state === undefined) {
        state = { queries: 0, shapes: new Map() };
        this.#requests.set(ctx, state);
      }
      name = `q${++state.queries}`;
      shape = state.shapes.get(fingerprint);
      if (shape === undefined && state.shapes.size < MAX_SHAPES_PER_REQUEST) {
        shape = { count: 0, inFlight: 0, reported: false };
        state.shapes.set(fingerprint, shape);
      }
      if (shape !== undefined) {
        if (shape.inFlight === 0) shape.count++;
        shape.inFlight++;
        this.#checkNPlusOne(ctx, fingerprint, shape);
      }
    }
    return {
      end: ({ rows, error, waitMs }) => {
        const durationMs = performance.now() - started;
        if (shape !== undefined) shape.inFlight--;
        const errorCode = error === undefined ? undefined : isHangproofError(error) ? error.code : 'INTERNAL';
        if (ctx !== undefined) {
          const attrs: Record<string, unknown> = { fingerprint, rows };
          if (waitMs !== undefined) attrs.acquireMs = Math.round(waitMs * 10) / 10;
          if (errorCode !== undefined) attrs.error = errorCode;
          ctx.addSpan({ name, kind: 'db', startMs: started - ctx.startedAt, durationMs, attrs });
        }
        publish(channels.query, () => ({ ctx, fingerprint, durationMs, rowCount: rows, errorCode }));
        const { slowQueryMs } = this.#options;
        if (slowQueryMs > 0 && durationMs > slowQueryMs) {
          this.slowQueries++;
          this.#options.logger.warn(
            {
              pool: this.#options.pool,
              requestId: ctx?.requestId,
              route: ctx?.name,
              span: name,
              sql: fingerprint,
              params: params === undefined ? undefined : this.#options.redactParams(params, fingerprint),
              durationMs: Math.round(durationMs),
              rows,
              errorCode,
            },
            LOG_MESSAGES.slowQuery,
          );
        }
      },
    };
  }

  #checkNPlusOne(ctx: RequestContext, fingerprint: string, shape: ShapeState): void {
    const threshold = this.#options.nPlusOneThreshold;
    if (threshold === 0 || shape.reported || shape.count <= threshold) return;
    shape.reported = true;
    this.nPlusOneDetected++;
    this.#options.logger.warn(
      {
        pool: this.#options.pool,
        requestId: ctx.requestId,
        route: ctx.name,
        sql: fingerprint,
        count: shape.count,
        threshold,
      },
      LOG_MESSAGES.nPlusOne,
    );
  }
}
