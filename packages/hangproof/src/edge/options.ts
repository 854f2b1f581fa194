import type { Logger } from 'pino';
import { numberWhere, positiveMs } from '../core/option-checks.js';

/** Options of the `hangproof` Fastify plugin. Defaults live in EDGE_DEFAULTS. */
export interface HangproofOptions {
  /** Deadline of a request when its route sets none, in ms. @default 10_000 */
  readonly deadlineMs?: number;
  /**
   * Header in which a caller may ask for a *shorter* deadline, in ms (never a longer one).
   * Invalid values are ignored. @default 'x-request-timeout-ms'
   */
  readonly timeoutHeader?: string;
  /**
   * Token that unlocks Server-Timing (and, in observe, /metrics and /status), presented in
   * `X-Admin-Token`. Compared in constant time; a wrong token counts as none. @default undefined (no admin)
   */
  readonly adminToken?: string | undefined;
  /** Send Server-Timing to every caller, not only admins. For development only. @default false */
  readonly dangerouslyExposeServerTimingToAll?: boolean;
  /** A request slower than this logs at warn, in ms. @default 1000 */
  readonly slowWarnMs?: number;
  /** A request slower than this logs at error, in ms. @default 3000 */
  readonly slowErrorMs?: number;
  /**
   * Logger for the one line per request and the plugin's own events. @default the Fastify app's
   * logger (`app.log`) when it has one, else pino to stdout (the node:http adapters: pino to stdout)
   */
  readonly logger?: Logger | undefined;
  /** Path of the liveness route (process only, no I/O). `false` to not register it. @default '/healthz' */
  readonly healthPath?: string | false;
  /** Path of the readiness route. `false` to not register it. @default '/readyz' */
  readonly readyPath?: string | false;
  /** How long a readiness answer is reused, so a probe storm costs nothing, in ms. @default 1000 */
  readonly readinessCacheMs?: number;
  /** Log health and readiness probes at debug instead of info. @default true */
  readonly quietProbes?: boolean;
  /**
   * A connection refused (503 OVERLOADED) less than this long ago gets its next refusal this much
   * later: a client that ignores Retry-After and asks again at once costs one refusal per pause
   * instead of taking the CPU the admitted requests need (see RefusalPacer). 0 answers every
   * refusal at once. In ms. @default 250
   */
  readonly refusalPauseMs?: number;
}

export type ResolvedHangproofOptions = Required<Omit<HangproofOptions, 'adminToken' | 'logger'>> & {
  readonly adminToken: string | undefined;
  readonly logger: Logger | undefined;
};

export const EDGE_DEFAULTS = Object.freeze({
  deadlineMs: 10_000,
  timeoutHeader: 'x-request-timeout-ms',
  dangerouslyExposeServerTimingToAll: false,
  slowWarnMs: 1000,
  slowErrorMs: 3000,
  healthPath: '/healthz',
  readyPath: '/readyz',
  readinessCacheMs: 1000,
  quietProbes: true,
  refusalPauseMs: 250,
} as const);

/** Per-route settings, given as Fastify route `config: { hangproof: { deadlineMs } }`. */
export interface RouteHangproofConfig {
  /** Deadline of this route, in ms; overrides the app's `deadlineMs`. */
  readonly deadlineMs?: number;
}

export function resolveHangproofOptions(input: HangproofOptions = {}): ResolvedHangproofOptions {
  const o = { ...EDGE_DEFAULTS, ...stripUndefined(input) };
  positiveMs('deadlineMs', o.deadlineMs);
  positiveMs('slowWarnMs', o.slowWarnMs);
  positiveMs('slowErrorMs', o.slowErrorMs);
  // Infinity is allowed: a readiness answer cached for good.
  numberWhere('readinessCacheMs', o.readinessCacheMs, (v) => v >= 0, '>= 0');
  numberWhere('refusalPauseMs', o.refusalPauseMs, (v) => Number.isFinite(v) && v >= 0, 'a finite number >= 0');
  if (input.adminToken !== undefined && input.adminToken.length < 16) {
    throw new RangeError(`adminToken must be at least 16 characters, received ${input.adminToken.length}`);
  }
  return { ...o, timeoutHeader: o.timeoutHeader.toLowerCase(), adminToken: input.adminToken, logger: input.logger };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
