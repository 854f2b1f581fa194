import { type Logger, pino } from 'pino';
import type { AdmissionControl, RequestContext } from '../core/index.js';
import { HangproofError } from '../errors.js';
import { LOG_EVENTS } from '../log-events.js';
import { ConcurrencyLimiter } from './concurrency-limiter.js';
import type { PressureReason } from './event-loop-monitor.js';
import { GradientLimit } from './gradient-limit.js';
import { type ObserveOptions, resolveObserveOptions } from './options.js';

/** Why a request was refused 503 OVERLOADED. */
export type ShedReason = PressureReason | 'concurrency' | 'queue_timeout';

/** At most one "shedding" warning per interval, however many requests are refused. */
const SHED_LOG_INTERVAL_MS = 10_000;

export interface OverloadGuardParts {
  /** The concurrency limit with its short bounded queue; undefined: no limit, pressure only. */
  readonly limiter: ConcurrencyLimiter | undefined;
  /** Moves the limit from observed latency (adaptiveLimit); undefined: a fixed limit. */
  readonly adaptive: GradientLimit | undefined;
  /** Why the process is under pressure now (event-loop delay, heap), if it is. */
  readonly pressure: () => PressureReason | undefined;
  /** True for paths never shed (probes, /metrics, /status); given the URL's path. */
  readonly exempt: (path: string) => boolean;
  /** Counts a refusal (observe's measurements). */
  readonly onShed: (reason: ShedReason) => void;
  readonly retryAfterSec: number;
  /** Undefined: the logger of the lifecycle it is installed in (see `adoptLogger`). */
  readonly logger: Logger | undefined;
}

/**
 * observe's overload guard as the lifecycle's admission control, for any framework adapter: a
 * request under pressure or over the limit is refused before it gets a context (one prebuilt
 * error per reason, refusals logged in aggregate), a request over the limit may wait in the short
 * bounded queue, and an admitted request holds its slot until it ends. With an adaptive limit the
 * context's admission fields remember when it got its slot and how many held one then: the
 * limit's sample when it ends.
 */
export function createOverloadGuard(p: OverloadGuardParts): AdmissionControl {
  const { limiter, adaptive } = p;
  let lastShedLogAt = 0;
  let shedSinceLog = 0;
  let logger = p.logger;
  const shedErrors = new Map<string, HangproofError>();
  const shed = (reason: ShedReason): HangproofError => {
    p.onShed(reason);
    shedSinceLog++;
    const now = Date.now();
    if (now - lastShedLogAt >= SHED_LOG_INTERVAL_MS) {
      // Installed nowhere that offered a logger: pino on stdout, made only when there is news.
      logger ??= pino();
      logger.warn(
        {
          event: LOG_EVENTS.loadShedding,
          reason,
          shed: shedSinceLog,
          in_flight: limiter?.inFlight,
          queued: limiter?.queued,
        },
        'shedding load: answering 503 OVERLOADED',
      );
      lastShedLogAt = now;
      shedSinceLog = 0;
    }
    // One error per reason, built once: a refusal must cost far less than serving.
    let error = shedErrors.get(reason);
    if (error === undefined) {
      error = new HangproofError('OVERLOADED', { retryAfterSec: p.retryAfterSec, details: { reason } });
      shedErrors.set(reason, error);
    }
    return error;
  };
  const admitted = (ctx: RequestContext): void => {
    if (adaptive !== undefined) {
      ctx.admittedAt = performance.now();
      ctx.inFlightAtAdmission = limiter?.inFlight ?? 0;
    }
  };
  const exemptUrl = (url: string): boolean => {
    const q = url.indexOf('?');
    return p.exempt(q < 0 ? url : url.slice(0, q));
  };
  return {
    peek: (url) => {
      if (exemptUrl(url)) return undefined;
      const pressure = p.pressure();
      if (pressure !== undefined) return shed(pressure);
      if (limiter === undefined || limiter.hasRoom() || limiter.canWait()) return undefined;
      return shed('concurrency');
    },
    adoptLogger: (l) => {
      logger ??= l;
    },
    admit: (url) => {
      // Matched on the raw URL: admission runs before routing work. A query string does not count.
      if (exemptUrl(url)) return 'exempt';
      const pressure = p.pressure();
      if (pressure !== undefined) return shed(pressure);
      if (limiter === undefined || limiter.tryAcquire()) return undefined;
      return limiter.canWait() ? 'wait' : shed('concurrency');
    },
    wait: async (ctx) => {
      const granted = (await limiter?.wait(ctx)) ?? true;
      // A request that ended while it waited (client gone, deadline answered) goes no further.
      if (ctx.aborted || ctx.ended) {
        if (granted) limiter?.release();
        return shed('queue_timeout');
      }
      if (!granted) return shed('queue_timeout');
      admitted(ctx);
      return undefined;
    },
    onAdmit: admitted,
    release: (ctx) => {
      if (limiter === undefined) return;
      limiter.release();
      if (adaptive === undefined || !(ctx.admittedAt > 0)) return;
      const now = performance.now();
      if (adaptive.addSample(now - ctx.admittedAt, ctx.inFlightAtAdmission, now)) limiter.setLimit(adaptive.limit);
    },
  };
}

/** Options of `overloadGuard`: observe's overload options, for any framework adapter. */
export type OverloadGuardOptions = Pick<
  ObserveOptions,
  'maxInFlight' | 'maxQueued' | 'queueWaitMs' | 'adaptiveLimit' | 'retryAfterSec' | 'exemptPaths' | 'logger'
>;

/**
 * observe's concurrency limit as an admission control for the node:http adapters
 * (`hangproof/http`, `/express`, `/hono`: their `admission` option), with observe's defaults and
 * checks: a request over the limit waits in a short bounded queue or is refused 503 OVERLOADED
 * with Retry-After before any work. The Fastify observe plugin installs the same guard itself
 * (with loop-delay and heap pressure too).
 */
export function overloadGuard(options: OverloadGuardOptions): AdmissionControl {
  const o = resolveObserveOptions(options);
  if (o.maxInFlight <= 0) throw new RangeError(`maxInFlight must be a positive integer, received ${o.maxInFlight}`);
  const limiter = new ConcurrencyLimiter({
    maxInFlight: o.maxInFlight,
    maxQueued: o.maxQueued,
    queueWaitMs: o.queueWaitMs,
  });
  const adaptive =
    o.adaptiveLimit === false
      ? undefined
      : new GradientLimit(o.maxInFlight, o.adaptiveLimit === true ? {} : o.adaptiveLimit);
  if (adaptive !== undefined) limiter.setLimit(adaptive.limit);
  const exempt = new Set<string>(o.exemptPaths);
  return createOverloadGuard({
    limiter,
    adaptive,
    pressure: () => undefined,
    exempt: (path) => exempt.has(path),
    onShed: () => {},
    retryAfterSec: o.retryAfterSec,
    logger: options.logger,
  });
}
