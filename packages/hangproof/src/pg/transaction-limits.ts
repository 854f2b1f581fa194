import type { RequestContext } from '../core/index.js';
import type { TxOptions } from './database-api.js';
import type { StatementLimits } from './limited-query.js';

/** The settings the limits are built from (a database's resolved options). */
export interface LimitSettings {
  readonly lockTimeoutMs: number;
  readonly idleInTransactionTimeoutMs: number;
  readonly applicationName: string;
}

/** What LimitedQuery runs before a standalone statement: its limits, local to its transaction. */
const LIMITS_SQL =
  "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true), " +
  "set_config('application_name', $3, true)";

/** application_name is printable ASCII without quotes (it is also spliced into `begin`). */
const SAFE_NAME_PART = /^[\x20-\x26\x28-\x5b\x5d-\x7e]*$/;
const MAX_NAME_PREFIXES = 1_000;

function sanitizeNamePart(part: string): string {
  return part.replace(/[^\x20-\x7e]|['\\]/g, '_');
}

/**
 * The per-transaction limits of one database: `statement_timeout` (the budget the caller computed),
 * `lock_timeout`, `idle_in_transaction_session_timeout` and an `application_name` naming the route
 * and request. All set with `set_config(..., true)`, which is `SET LOCAL`: they end with the
 * transaction, so nothing leaks into the session, which is what makes them safe behind PgBouncer
 * in transaction mode (a session SET would stick to a server connection another client gets next).
 */
export class TransactionLimits {
  readonly #o: LimitSettings;
  readonly #namePrefixes = new Map<string, string>();

  constructor(settings: LimitSettings) {
    this.#o = settings;
  }

  /** `BEGIN` plus the transaction's limits, one simple-protocol query (two statements). */
  begin(ctx: RequestContext | undefined, statementMs: number, options: TxOptions): string {
    const mode = [
      options.isolation === undefined ? '' : ` ISOLATION LEVEL ${options.isolation.toUpperCase()}`,
      options.readOnly === true ? ' READ ONLY' : '',
    ].join('');
    return (
      `BEGIN${mode}; SELECT set_config('statement_timeout', '${statementMs}', true), ` +
      `set_config('lock_timeout', '${this.lockMs(statementMs)}', true), ` +
      `set_config('idle_in_transaction_session_timeout', '${this.#o.idleInTransactionTimeoutMs}', true), ` +
      `set_config('application_name', '${this.applicationName(ctx)}', true)`
    );
  }

  /**
   * The limits of one standalone statement, set by LimitedQuery in the statement's own implicit
   * transaction. Three settings, not the four of `begin`: no transaction stays open between two
   * messages there, so idle_in_transaction_session_timeout has nothing to bound.
   */
  statement(ctx: RequestContext | undefined, statementMs: number): StatementLimits {
    return {
      text: LIMITS_SQL,
      values: [String(statementMs), String(this.lockMs(statementMs)), this.applicationName(ctx)],
    };
  }

  /** lock_timeout stays under statement_timeout, so a statement stuck behind a lock reports the lock. */
  lockMs(statementMs: number): number {
    return Math.max(1, Math.min(this.#o.lockTimeoutMs, Math.floor(statementMs * 0.9)));
  }

  /** `<prefix> <route> <request id>`, printable ASCII without quotes, at most 63 bytes (NAMEDATALEN). */
  applicationName(ctx: RequestContext | undefined): string {
    if (ctx === undefined) return this.#namePrefix('');
    const prefix = this.#namePrefix(ctx.name);
    const id = SAFE_NAME_PART.test(ctx.requestId) ? ctx.requestId : sanitizeNamePart(ctx.requestId);
    return (prefix === '' ? id : `${prefix} ${id}`).slice(0, 63);
  }

  /** `<applicationName> <route>`, sanitized once per route (routes are few; ids are per request). */
  #namePrefix(route: string): string {
    let prefix = this.#namePrefixes.get(route);
    if (prefix === undefined) {
      prefix = sanitizeNamePart([this.#o.applicationName, route].filter((p) => p !== '').join(' '));
      if (this.#namePrefixes.size < MAX_NAME_PREFIXES) this.#namePrefixes.set(route, prefix);
    }
    return prefix;
  }
}
