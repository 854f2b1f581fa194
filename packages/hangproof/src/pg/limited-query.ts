import pg from 'pg';

/** The `set_config(..., true)` call that bounds a statement, with its values. */
export interface StatementLimits {
  readonly text: string;
  readonly values: readonly unknown[];
}

/** Messages pg's Query hands its result handlers; only what the override below touches. */
type ProtocolMessage = unknown;
type Connection = Parameters<pg.Query['submit']>[0];

/** pg's Query with the parts of its prototype its public types leave out. */
interface QueryInternals {
  prepare(connection: Connection): void;
  handleDataRow(msg: ProtocolMessage): void;
  handleCommandComplete(msg: ProtocolMessage, connection: Connection): void;
}

// Constructed from (text, values, callback), not a config object: pg copies a config object with
// getOwnPropertyDescriptors, which cost more than the rest of the query's setup together.
const QueryBase = pg.Query as unknown as new (
  text: string,
  values: unknown[] | undefined,
  callback: Callback,
) => pg.Query & QueryInternals;
type Callback = (err: Error | null, result?: pg.QueryResult) => void;

/**
 * A statement preceded by the `set_config(..., true)` call that sets its limits, both sent in one
 * extended-protocol batch that ends with a single Sync:
 *
 *     Parse/Bind/Execute  SELECT set_config('statement_timeout', $1, true), ...
 *     Parse/Bind/Describe/Execute  <the statement>
 *     Sync
 *
 * Postgres runs everything before a Sync as one implicit transaction, so the limits are local to
 * that transaction exactly as after `BEGIN` (`SET LOCAL` semantics, safe behind PgBouncer in
 * transaction mode), the statement timeout is re-armed with the new value when the statement's
 * Parse arrives, and the Sync commits (or, after an error, rolls back) without a `BEGIN` or
 * `COMMIT` statement. One round trip, one Query object, one ReadyForQuery: the cheapest form of a
 * per-statement limit. Why a subclass: pg writes Sync after every query it sends, and a custom
 * Submittable would have to re-implement pg's row parsing; pg's Query only needs the limits'
 * messages written first and their answers (one row, one CommandComplete) skipped.
 *
 * Not for statements that cannot be Parsed as one (several statements in one string) nor for
 * statements that must run outside a transaction block (`VACUUM`): the caller picks another path.
 */
export class LimitedQuery extends QueryBase {
  readonly #limits: StatementLimits;
  /** True until the limits' own CommandComplete has gone by. */
  #inLimits = true;

  constructor(limits: StatementLimits, text: string, values: readonly unknown[] | undefined, callback: Callback) {
    super(text, values as unknown[] | undefined, callback);
    this.#limits = limits;
  }

  /** Always the extended protocol, even without values: the batch needs Parse/Bind/Execute. */
  requiresPreparation(): boolean {
    return true;
  }

  override prepare(connection: Connection): void {
    const c = connection as unknown as PgConnection;
    c.parse({ text: this.#limits.text, name: '', types: [] });
    c.bind({ portal: '', statement: '', values: this.#limits.values as unknown[], binary: false });
    c.execute({ portal: '', rows: 0 });
    super.prepare(connection);
  }

  override handleDataRow(msg: ProtocolMessage): void {
    if (this.#inLimits) return;
    super.handleDataRow(msg);
  }

  override handleCommandComplete(msg: ProtocolMessage, connection: Connection): void {
    if (this.#inLimits) {
      this.#inLimits = false;
      return;
    }
    super.handleCommandComplete(msg, connection);
  }
}

/** The message writers of pg's Connection used above. */
interface PgConnection {
  parse(m: { text: string; name: string; types: unknown[] }): void;
  bind(m: { portal: string; statement: string; values: unknown[]; binary: boolean }): void;
  execute(m: { portal: string; rows: number }): void;
}

/**
 * True when `sql` can go to Postgres as one Parse: no `;` other than trailing ones. A `;` inside a
 * string literal also counts as a second statement; such a query takes the three-round-trip path,
 * which is slower but equally correct.
 */
export function isSingleStatement(sql: string): boolean {
  const at = sql.indexOf(';');
  return at === -1 || /^[\s;]*$/.test(sql.slice(at));
}
