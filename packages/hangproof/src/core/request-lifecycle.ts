import type { Logger } from 'pino';
import { errorBody, HangproofError } from '../errors.js';
import { channels } from './diagnostics.js';
import { InFlightRequests } from './in-flight-requests.js';
import { RequestContext } from './request-context.js';
import { RequestLog } from './request-log.js';
import { parseTimeoutHeader } from './timeout-header.js';

/** What a framework adapter tells the lifecycle once, at start-up. */
export interface LifecycleOptions {
  /** Deadline of a request whose route sets none, in ms. */
  readonly deadlineMs: number;
  /** A request slower than this logs at warn, in ms. */
  readonly slowWarnMs: number;
  /** A request slower than this logs at error, in ms. */
  readonly slowErrorMs: number;
  /** Where the one line per request goes. */
  readonly logger: Logger;
  /** Log healthy requests to `probePaths` at debug. */
  readonly quietProbes: boolean;
}

/**
 * What decides, before a request costs anything, whether it is served: observe's overload guard.
 * `admit` answers synchronously in the common case, from the raw URL: undefined (admitted: it
 * holds a slot until `release`; `onAdmit` then sees its context), 'exempt' (served, holds no
 * slot: probes, /metrics), or the refusal to send. 'wait' is the rare case of a short bounded
 * queue: `wait` runs once the request has a context (so the wait ends with the request) and
 * resolves with undefined (admitted) or the refusal.
 */
export interface AdmissionControl {
  admit(url: string): HangproofError | 'wait' | 'exempt' | undefined;
  /**
   * The refusal `admit` would give now, or undefined, taking nothing: for a front door that
   * refuses before the framework routes the request (its slot is taken later by `admit`, in the
   * same turn of the event loop).
   */
  peek(url: string): HangproofError | undefined;
  onAdmit(ctx: RequestContext): void;
  wait(ctx: RequestContext): Promise<HangproofError | undefined>;
  release(ctx: RequestContext): void;
  /**
   * Offered the lifecycle's logger when installed: an admission control given no logger of its
   * own logs where the request lines go (one logger convention).
   */
  adoptLogger?(logger: Logger): void;
}

/** What `RequestLifecycle.admit` decides: go on holding a slot, go on without one, wait, or refuse. */
export type AdmissionDecision = 'admitted' | 'exempt' | 'wait' | HangproofError;

/** The start of a request, as an adapter knows it. */
export interface RequestStart {
  readonly requestId: string;
  readonly method: string;
  /** Route pattern, e.g. `/bots/:id`; '' when no route matched. */
  readonly route: string;
  /** The URL as received; the query string is cut off here (it may carry tokens). */
  readonly url: string;
  readonly budgetMs: number;
  readonly onAbort?: ((ctx: RequestContext) => void) | undefined;
  readonly owner?: unknown;
}

/**
 * The framework-neutral life of a request: admission (before any context exists), begin
 * (deadline, id, context), end (outcome, the one log line, the requestEnd event). Framework
 * adapters (Fastify today) are thin layers that call these at their hooks; pg, deps and observe
 * only ever see the RequestContext.
 */
export class RequestLifecycle {
  readonly options: LifecycleOptions;
  /** Contexts of the requests in flight. */
  readonly inFlight = new InFlightRequests();
  /** Paths of health probes, logged at debug when `quietProbes`. */
  readonly probePaths = new Set<string>();
  readonly log: RequestLog;
  #admission: AdmissionControl | undefined;
  #shuttingDown = false;

  constructor(options: LifecycleOptions) {
    this.options = options;
    this.log = new RequestLog(options.logger, options);
  }

  /** Installs the overload guard (observe does, once). */
  setAdmission(admission: AdmissionControl | undefined): void {
    this.#admission = admission;
    admission?.adoptLogger?.(this.log.logger);
  }

  get admission(): AdmissionControl | undefined {
    return this.#admission;
  }

  /**
   * From now on new requests are refused with 503 SHUTTING_DOWN. Returns the adapter's state
   * (`owner`) of every request still in flight, so the adapter can close each one's connection
   * after its answer; a context its route ended itself (an upgraded stream outliving its request)
   * has no owner and is left out.
   */
  beginShutdown(): unknown[] {
    this.#shuttingDown = true;
    const owners: unknown[] = [];
    for (const ctx of this.inFlight) if (ctx.owner !== undefined) owners.push(ctx.owner);
    return owners;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Whether a new request may start, from its raw URL: 'admitted' (holds an overload slot),
   * 'exempt', 'wait' for the admission queue, or the refusal (503 SHUTTING_DOWN or OVERLOADED) to
   * answer at once, with no context built.
   */
  admit(url: string): AdmissionDecision {
    if (this.#shuttingDown) return SHUTTING_DOWN;
    if (this.#admission === undefined) return 'exempt';
    return this.#admission.admit(url) ?? 'admitted';
  }

  /** The refusal `admit` would answer now (shutting down, overloaded), taking no slot. */
  peek(url: string): HangproofError | undefined {
    if (this.#shuttingDown) return SHUTTING_DOWN;
    return this.#admission?.peek(url);
  }

  /** The request's budget: the route's deadline, shortened (never lengthened) by the caller's header. */
  budgetFor(routeDeadlineMs: number | undefined, header: string | string[] | undefined): number {
    const budgetMs = routeDeadlineMs ?? this.options.deadlineMs;
    const asked = parseTimeoutHeader(header);
    return asked !== undefined && asked < budgetMs ? asked : budgetMs;
  }

  begin(start: RequestStart): RequestContext {
    const q = start.url.indexOf('?');
    const ctx = new RequestContext({
      requestId: start.requestId,
      budgetMs: start.budgetMs,
      name: start.route,
      method: start.method,
      path: q < 0 ? start.url : start.url.slice(0, q),
      onAbort: start.onAbort,
      owner: start.owner,
    });
    this.inFlight.add(ctx);
    return ctx;
  }

  /** Tells the overload guard that an admitted request has its context now. */
  admitted(ctx: RequestContext): void {
    this.#admission?.onAdmit(ctx);
  }

  /**
   * Ends a request whose outcome the adapter has set on the context (`statusCode`, `errorCode`,
   * `err`): stops its deadline, releases its admission slot, writes its line and publishes it.
   * `now`: the adapter's performance.now() at the end, when it has read it already.
   */
  end(ctx: RequestContext, admitted: boolean, now?: number): void {
    ctx.end(now);
    this.inFlight.delete(ctx);
    if (admitted) this.#admission?.release(ctx);
    this.log.write(ctx, this.options.quietProbes && ctx.statusCode < 500 && this.probePaths.has(ctx.name));
    // The context is the event (RequestEndEvent): nothing is built for the subscribers.
    if (channels.requestEnd.hasSubscribers) channels.requestEnd.publish(ctx);
  }
}

const SHUTTING_DOWN = new HangproofError('SHUTTING_DOWN', { retryAfterSec: 1 });

/**
 * The body of a refusal, built by concatenation around the request id: a refused request must
 * cost far less than a served one, so nothing is serialized per refusal.
 */
export function refusalBody(error: HangproofError, requestId: string): string {
  const cached = refusalParts.get(error);
  const parts = cached ?? splitBody(error);
  if (cached === undefined && refusalParts.size < 64) refusalParts.set(error, parts);
  return parts[0] + JSON.stringify(requestId) + parts[1];
}

const refusalParts = new Map<HangproofError, readonly [string, string]>();
const ID_MARK = '\u0000request-id\u0000';

function splitBody(error: HangproofError): readonly [string, string] {
  const json = JSON.stringify(errorBody(error, ID_MARK));
  const at = json.indexOf(JSON.stringify(ID_MARK));
  return [json.slice(0, at), json.slice(at + JSON.stringify(ID_MARK).length)];
}
