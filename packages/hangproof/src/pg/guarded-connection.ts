import { AsyncResource } from 'node:async_hooks';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import type { AbortWatch } from '../core/abort-watch.js';
import { isHangproofError } from '../errors.js';
import { sendCancelRequest } from './cancel-request.js';
import type { Holder } from './holder-registry.js';
import { LimitedQuery, type StatementLimits } from './limited-query.js';
import { isConnectionError, pgTimeout, pgUnavailable, sqlState } from './pg-errors.js';
import { scrubValues } from './redact-params.js';
import type { BoundedStatement, StatementSweep } from './statement-sweep.js';

/** Fields of pg's Client that its types leave out: BackendKeyData and the queryable flag. */
interface ClientInternals {
  processID: number | null;
  secretKey: number | null;
  _queryable?: boolean;
  _ending?: boolean;
}

export interface GuardOptions {
  readonly unresponsiveGraceMs: number;
  readonly cancelTimeoutMs: number;
  readonly ssl: boolean | ConnectionOptions | undefined;
  /** Told about every cancel: when it was sent and whether the server confirmed it. */
  readonly onCancel: (delivered: boolean, ms: number) => void;
  /** Where running statements are bounded (one sweep per pool, not a timer per statement). */
  readonly sweep: StatementSweep;
}

type Settle = (err: Error | null, result?: pg.QueryResult) => void;
/** How a statement's outcome is handed back: `err` is null on success. */
export type StatementDone = (err: unknown, result?: pg.QueryResult) => void;

/**
 * One checked-out pg client with the client-side half of the guard:
 * - when the request's signal aborts, the running statement is cancelled on the server at once
 *   (CancelRequest on a new socket) and the caller is answered with the abort reason right away;
 * - when the server gives no answer at all within the statement's limit plus a grace period (a
 *   SIGSTOPped server, a dead network), the caller gets DEPENDENCY_TIMEOUT and the connection is
 *   given up.
 * Either way the connection is then "broken": it is destroyed on release, never reused. Reusing
 * it after a cancel risks the late cancel hitting the next statement; discarding it is the
 * cheapest fence there is.
 *
 * One object per pooled connection, reused by every statement on it (one statement runs at a
 * time): a statement costs one promise and no closure, timer or listener object of its own.
 */
export class GuardedConnection implements BoundedStatement, Holder {
  readonly client: pg.PoolClient;
  // The current checkout (see GuardedDatabase#lease): who holds the connection, since when, and
  // how to give its pool permit back.
  requestId: string | undefined;
  route: string | undefined;
  step: string | undefined;
  /** The request holding the connection, for the step it is in now (lock evidence). */
  ctx: { readonly stepInFlight: string | undefined } | undefined;
  since = 0;
  stack: string | undefined;
  leakLogged = false;
  /** performance.now() when the guard was made, just after the connection opened (its lifetime's start). */
  readonly createdAt = performance.now();
  /** ms the checkout waited for the connection. */
  waitMs = 0;
  /** performance.now() when it was last given back, for the idle liveness check; 0 before. */
  lastReleasedAt = 0;
  releasePermit: (() => void) | undefined;
  readonly #options: GuardOptions;
  #broken: Error | undefined;
  #cancelDone: Promise<unknown> = Promise.resolve();
  // The statement running now (at most one per connection): whom to tell its outcome.
  #done: StatementDone | undefined;
  /**
   * The async context the running statement was started in. pg calls back from the socket's
   * events, whose context is that of whoever opened the connection; the outcome is handed back
   * (and logged, and published) in the caller's own, for every AsyncLocalStorage of the process.
   */
  #caller: AsyncResource | undefined;
  #abort: AbortWatch | undefined;
  #values: readonly unknown[] | undefined;
  #limitMs = 0;
  #started = 0;
  boundAt = 0;
  /** pg's callback for the running statement: bound once per connection. */
  readonly #settle: Settle = (err, result) => this.#settled(err, result);
  readonly #onAbort = (reason: unknown): void => this.#aborted(reason);

  constructor(client: pg.PoolClient, options: GuardOptions) {
    this.client = client;
    this.#options = options;
  }

  get pid(): number | undefined {
    return (this.client as unknown as ClientInternals).processID ?? undefined;
  }

  /** False once the connection's state is unknown: it will be destroyed on release. */
  get usable(): boolean {
    const internals = this.client as unknown as ClientInternals;
    return this.#broken === undefined && internals._queryable !== false && internals._ending !== true;
  }

  /** True while the server session is inside a transaction block (idle, failed or active). */
  get inTransaction(): boolean {
    const status = this.client.getTransactionStatus();
    return status === 'T' || status === 'E';
  }

  /** Marks the connection for destruction without a cancel (nothing is running on it). */
  markBroken(reason: Error): void {
    this.#broken ??= reason;
  }

  /**
   * Runs one statement with a client-side bound of `limitMs + unresponsiveGraceMs` and the
   * request's abort. Server errors other than timeouts and lost connections come back as pg's own
   * error (a unique violation is the application's business), with bound values scrubbed out.
   */
  run(
    text: string,
    values: readonly unknown[] | undefined,
    limitMs: number,
    abort: AbortWatch | undefined,
  ): Promise<pg.QueryResult> {
    return new Promise((resolve, reject) =>
      this.runWith(text, values, limitMs, abort, (err, result) =>
        err === null ? resolve(result as pg.QueryResult) : reject(err),
      ),
    );
  }

  /**
   * `run` for a caller that takes a callback: no promise of its own (see GuardedDatabase.query).
   * `startedAt`: the caller's performance.now() just before, when it has read it already.
   */
  runWith(
    text: string,
    values: readonly unknown[] | undefined,
    limitMs: number,
    abort: AbortWatch | undefined,
    done: StatementDone,
    startedAt?: number,
  ): void {
    // (text, values, callback): pg copies a config object with getOwnPropertyDescriptors.
    this.#bounded(limitMs, abort, values, done, startedAt, (settle) => {
      if (values === undefined) this.client.query(text, settle);
      else this.client.query(text, values as unknown[], settle);
    });
  }

  /**
   * Runs the statement behind the `set_config` call that sets its limits, in one implicit
   * transaction and one round trip (see LimitedQuery), within the same client-side bound as `run`.
   * A statement that fails is rolled back by the server at the Sync: the connection comes back idle.
   */
  runLimitedWith(
    limits: StatementLimits,
    text: string,
    values: readonly unknown[] | undefined,
    limitMs: number,
    abort: AbortWatch | undefined,
    done: StatementDone,
    startedAt?: number,
  ): void {
    this.#bounded(limitMs, abort, values, done, startedAt, (settle) => {
      this.client.query(new LimitedQuery(limits, text, values, settle));
    });
  }

  /**
   * `submit(settle)` raced against the client-side bound (the pool's sweep) and the abort; see
   * `run`. Callback-style on purpose: a statement costs no promise here (under AsyncLocalStorage
   * every promise also runs the context's hooks). `done` is called once, possibly at once.
   */
  #bounded(
    limitMs: number,
    abort: AbortWatch | undefined,
    values: readonly unknown[] | undefined,
    done: StatementDone,
    startedAt: number | undefined,
    submit: (settle: Settle) => void,
  ): void {
    const refused =
      this.#broken ??
      (abort?.aborted ? abort.abortReason : undefined) ??
      (this.#done === undefined ? undefined : new Error('a statement is already running on this connection'));
    if (refused !== undefined) {
      done(refused);
      return;
    }
    this.#started = startedAt ?? performance.now();
    this.#limitMs = limitMs;
    this.#values = values;
    this.#abort = abort;
    this.#done = done;
    this.#caller = new AsyncResource('HANGPROOF_STATEMENT');
    this.boundAt = this.#started + limitMs + this.#options.unresponsiveGraceMs;
    this.#options.sweep.add(this);
    abort?.addAbortWatcher(this.#onAbort);
    try {
      submit(this.#settle);
    } catch (err) {
      this.#settled(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Ends the running statement's wait: true when it was still running (the caller settles it). */
  #claim(): boolean {
    if (this.#done === undefined) return false;
    this.#options.sweep.delete(this);
    this.#abort?.unwatchAbort(this.#onAbort);
    this.#abort = undefined;
    return true;
  }

  #finish(err: unknown, result?: pg.QueryResult): void {
    const done = this.#done as StatementDone;
    const caller = this.#caller as AsyncResource;
    this.#done = undefined;
    this.#caller = undefined;
    this.#values = undefined;
    caller.runInAsyncScope(done, undefined, err, result);
  }

  #settled(err: Error | null, result?: pg.QueryResult): void {
    const values = this.#values;
    if (!this.#claim()) return;
    this.#finish(err === null ? null : this.#classify(err, values, this.#limitMs, this.#started), result);
  }

  #aborted(reason: unknown): void {
    if (!this.#claim()) return;
    this.#breakWithCancel(reason instanceof Error ? reason : new Error(String(reason)));
    this.#finish(reason);
  }

  /** The sweep's call: the server gave no answer within the statement's limit plus grace. */
  expire(): void {
    if (!this.#claim()) return;
    const waited = performance.now() - this.#started;
    const err = pgTimeout(
      'query',
      `postgres gave no answer within ${Math.round(waited)} ms`,
      waited,
      new Error(`no answer from the server within the ${Math.round(this.#limitMs)} ms limit plus grace`),
    );
    this.#breakWithCancel(err);
    this.#finish(err);
  }

  /**
   * Gives the connection back: to the pool when its state is known and clean, otherwise destroyed
   * (`release(err)`) once the cancel sent for it was delivered or timed out.
   */
  release(): Promise<void> | undefined {
    if (this.usable && !this.inTransaction) {
      this.client.release();
      return undefined;
    }
    return this.#destroy();
  }

  async #destroy(): Promise<void> {
    const reason = this.#broken ?? new Error('connection left in an unknown state');
    await this.#cancelDone;
    destroyClient(this.client, reason);
  }

  #breakWithCancel(reason: Error): void {
    if (this.#broken !== undefined) return;
    this.#broken = reason;
    const internals = this.client as unknown as ClientInternals;
    if (internals.processID === null || internals.secretKey === null) return;
    const sent = performance.now();
    this.#cancelDone = sendCancelRequest(
      {
        host: this.client.host,
        port: this.client.port,
        ssl: this.#options.ssl,
        processID: internals.processID,
        secretKey: internals.secretKey,
      },
      this.#options.cancelTimeoutMs,
    ).then((delivered) => this.#options.onCancel(delivered, performance.now() - sent));
  }

  #classify(err: unknown, values: readonly unknown[] | undefined, limitMs: number, started: number): unknown {
    const waited = performance.now() - started;
    if (isHangproofError(err)) return err;
    const state = sqlState(err);
    if (state === '57014') {
      return pgTimeout('query', `the postgres statement did not finish within ${Math.round(limitMs)} ms`, waited, err);
    }
    if (state === '55P03') {
      return pgTimeout('lock', `the postgres statement waited too long for a lock`, waited, err);
    }
    if (state === '25P03' || state === '25P04' || state === '57P05') {
      this.markBroken(err as Error);
      return pgTimeout('transaction', 'the postgres transaction was ended by the server for idling', waited, err);
    }
    if (isConnectionError(err)) {
      this.markBroken(err as Error);
      return pgUnavailable('query', err);
    }
    scrubError(err, values);
    return err;
  }
}

/**
 * Destroys a checked-out client: closes its socket at once, then hands it back to the pool, which
 * forgets it. `release(err)` alone would call `end()`, which sends Terminate and waits for the
 * server to close, and a hung server never does. A closed socket also ends the session's open
 * transaction on the server.
 */
export function destroyClient(client: pg.PoolClient, reason: Error): void {
  client.connection?.stream?.destroy();
  client.release(reason);
}

/**
 * Server messages can quote the input (`invalid input syntax for type integer: "s3cret"`), and
 * whoever logs the error later will print message, detail and stack. Bound values are removed
 * from all three here, so no logger downstream can leak them.
 */
export function scrubError(err: unknown, values: readonly unknown[] | undefined): void {
  if (values === undefined || values.length === 0 || typeof err !== 'object' || err === null) return;
  const e = err as Record<string, unknown>;
  for (const key of ['message', 'detail', 'where', 'hint', 'stack']) {
    const v = e[key];
    if (typeof v === 'string') {
      try {
        e[key] = scrubValues(v, values);
      } catch {
        // a frozen or getter-only field: leave it
      }
    }
  }
}
