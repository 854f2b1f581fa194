import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import { isHangproofError } from '../errors.js';
import { sendCancelRequest } from './cancel-request.js';
import { isConnectionError, pgTimeout, pgUnavailable, sqlState } from './pg-errors.js';
import { scrubValues } from './redact-params.js';

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
}

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
 */
export class GuardedConnection {
  readonly client: pg.PoolClient;
  readonly #options: GuardOptions;
  #broken: Error | undefined;
  #cancelDone: Promise<unknown> = Promise.resolve();

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
   * signal's abort. Server errors other than timeouts and lost connections come back as pg's own
   * error (a unique violation is the application's business), with bound values scrubbed out.
   */
  run(
    text: string,
    values: readonly unknown[] | undefined,
    limitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<pg.QueryResult> {
    return this.#bounded(limitMs, signal, values, () =>
      this.client.query(values === undefined ? { text } : { text, values: values as unknown[] }),
    );
  }

  /**
   * Runs `begin` (BEGIN plus the transaction's limits), the statement and COMMIT written together
   * in one write, on a client in pg's pipeline mode: one round trip instead of three. The server
   * runs them in order, so the limits apply to the statement; when the statement fails, the
   * transaction is aborted and the COMMIT behind it answers ROLLBACK, so the transaction ends
   * either way and the connection comes back idle. The result settles once all three answered,
   * within one client-side bound of `limitMs + unresponsiveGraceMs`; at that bound or at the
   * signal's abort the statement is cancelled and the connection destroyed, which also ends the
   * transaction on the server.
   */
  runWrapped(
    begin: string,
    text: string,
    values: readonly unknown[] | undefined,
    limitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<pg.QueryResult> {
    return this.#bounded(limitMs, signal, values, () => {
      const stream = this.client.connection?.stream as { cork?: () => void; uncork?: () => void } | undefined;
      // Corked, the three queries leave in one writev: one packet, one wake-up of the server.
      stream?.cork?.();
      const answers: Promise<pg.QueryResult>[] = [];
      try {
        answers.push(this.client.query(begin));
        answers.push(this.client.query(values === undefined ? { text } : { text, values: values as unknown[] }));
        answers.push(this.client.query('COMMIT'));
      } finally {
        stream?.uncork?.();
      }
      // allSettled: a failure of one must not leave the others' rejections unhandled, and the
      // caller is answered only once the transaction has ended (or the bound destroys it).
      return Promise.allSettled(answers).then(([opened, statement, ended]) => {
        if (opened?.status === 'rejected') throw opened.reason;
        if (statement?.status === 'rejected') throw statement.reason;
        if (ended?.status === 'rejected') throw ended.reason;
        return (statement as PromiseFulfilledResult<pg.QueryResult>).value;
      });
    });
  }

  /** `submit()` raced against the client-side bound and the signal; see `run`. */
  #bounded(
    limitMs: number,
    signal: AbortSignal | undefined,
    values: readonly unknown[] | undefined,
    submit: () => Promise<pg.QueryResult>,
  ): Promise<pg.QueryResult> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const started = performance.now();
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(giveUp);
        signal?.removeEventListener('abort', onAbort);
        settle();
      };
      const onAbort = (): void =>
        finish(() => {
          const reason = signal?.reason as Error;
          this.#breakWithCancel(reason);
          reject(reason);
        });
      const giveUp = setTimeout(
        () =>
          finish(() => {
            const waited = performance.now() - started;
            const err = pgTimeout(
              'query',
              `postgres gave no answer within ${Math.round(waited)} ms`,
              waited,
              new Error(`no answer from the server within the ${Math.round(limitMs)} ms limit plus grace`),
            );
            this.#breakWithCancel(err);
            reject(err);
          }),
        limitMs + this.#options.unresponsiveGraceMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      submit().then(
        (result) => finish(() => resolve(result)),
        (err: unknown) => finish(() => reject(this.#classify(err, values, limitMs, started))),
      );
    });
  }

  /**
   * Gives the connection back: to the pool when its state is known and clean, otherwise destroyed
   * (`release(err)`) once the cancel sent for it was delivered or timed out.
   */
  async release(): Promise<void> {
    if (this.usable && !this.inTransaction) {
      this.client.release();
      return;
    }
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
 * forgets it. `release(err)` alone is not enough for a client in pipeline mode: its `end()` waits
 * for the queries on the wire to drain, which a hung server never lets happen. A closed socket
 * also ends the session's open transaction on the server.
 */
export function destroyClient(client: pg.PoolClient, reason: Error): void {
  if (client.pipeline) client.connection?.stream?.destroy();
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
