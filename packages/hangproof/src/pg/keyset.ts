import { badRequest } from '../errors.js';

/** Sort direction of a keyset page; every key of the page uses the same one. */
export type KeysetDirection = 'asc' | 'desc';

/** A cursor's content: the sort key values of the last row seen, in key order. */
export interface CursorPayload {
  readonly v: 1;
  /** Sort direction the cursor was made for; a cursor used with another direction is refused. */
  readonly d: KeysetDirection;
  /** Values of the sort keys (the unique tiebreaker last). */
  readonly k: readonly (string | number | boolean | null)[];
}

/** Hard upper bound of any page: an API can never be asked for an unbounded result. */
export const MAX_PAGE_SIZE = 500;
/** Longest cursor accepted, in characters; longer ones are refused before decoding. */
const MAX_CURSOR_LENGTH = 2_048;

/** `base64url(JSON)` of the last row's keys, versioned so the format can change later. */
export function encodeCursor(keys: CursorPayload['k'], direction: KeysetDirection = 'asc'): string {
  const payload: CursorPayload = { v: 1, d: direction, k: keys };
  return Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
}

/**
 * Decodes a cursor a client sent back. Anything malformed, of another version, with the wrong
 * number of keys or made for the other direction is BAD_REQUEST (`details.reason`).
 */
export function decodeCursor(cursor: string, keyCount: number, direction: KeysetDirection = 'asc'): CursorPayload {
  const bad = (reason: string) => badRequest('the pagination cursor is not valid', { reason });
  if (typeof cursor !== 'string' || cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH) throw bad('length');
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad('encoding');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad('encoding');
  }
  const p = parsed as Partial<CursorPayload> | null;
  if (typeof p !== 'object' || p === null || p.v !== 1) throw bad('version');
  if (p.d !== direction) throw bad('direction');
  if (!Array.isArray(p.k) || p.k.length !== keyCount) throw bad('keys');
  for (const k of p.k) {
    if (k !== null && typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'boolean') throw bad('keys');
  }
  return p as CursorPayload;
}

/** What `keysetPage` needs to build one page's query. */
export interface KeysetOptions {
  /**
   * Sort columns as SQL expressions, the last one unique (the tiebreaker, e.g. `id`), so the
   * order is total and no row is skipped or repeated between pages. Trusted SQL, never user input.
   */
  readonly orderBy: readonly string[];
  /** @default 'asc' */
  readonly direction?: KeysetDirection;
  /** Requested page size; clamped to [1, maxPageSize]. @default 50 */
  readonly limit?: number;
  /** Largest page allowed, at most MAX_PAGE_SIZE. @default 100 */
  readonly maxPageSize?: number;
  /** The cursor from the previous page's `nextCursor`, if any. */
  readonly cursor?: string | undefined;
  /** Number of bind parameters already used by the caller's query (`$1..$n`). @default 0 */
  readonly paramOffset?: number;
}

export interface KeysetClause {
  /** `(a, b) > ($1, $2)` (or `<` for desc), or `TRUE` on the first page: AND it into WHERE. */
  readonly where: string;
  readonly orderBy: string;
  /** `LIMIT n`, one more row than the page, to know whether another page exists. */
  readonly limit: string;
  readonly params: readonly unknown[];
  readonly pageSize: number;
  /** Builds the page from the rows the query returned and the function giving each row's keys. */
  page<T>(rows: readonly T[], keysOf: (row: T) => CursorPayload['k']): { items: T[]; nextCursor: string | null };
}

/**
 * The SQL pieces of one keyset ("seek") page: a row-value comparison on the sort keys instead of
 * OFFSET, which would scan and discard every skipped row and drift as rows are inserted.
 *
 *   const k = keysetPage({ orderBy: ['created_at', 'id'], direction: 'desc', cursor, limit: 20 });
 *   const { rows } = await db.query(
 *     `SELECT id, created_at FROM bots WHERE ${k.where} ORDER BY ${k.orderBy} ${k.limit}`, k.params);
 *   return k.page(rows, (r) => [r.created_at.toISOString(), r.id]);
 */
export function keysetPage(options: KeysetOptions): KeysetClause {
  const direction = options.direction ?? 'asc';
  if (direction !== 'asc' && direction !== 'desc') {
    throw new TypeError(`direction must be 'asc' or 'desc', received ${String(direction)}`);
  }
  if (options.orderBy.length === 0) throw new RangeError('orderBy must name at least one column, received none');
  const maxPageSize = options.maxPageSize ?? 100;
  if (!(Number.isInteger(maxPageSize) && maxPageSize >= 1 && maxPageSize <= MAX_PAGE_SIZE)) {
    throw new RangeError(`maxPageSize must be an integer in [1, ${MAX_PAGE_SIZE}], received ${maxPageSize}`);
  }
  const requested = options.limit ?? 50;
  const pageSize = Number.isFinite(requested) ? Math.min(maxPageSize, Math.max(1, Math.floor(requested))) : maxPageSize;
  const offset = options.paramOffset ?? 0;
  const columns = options.orderBy.join(', ');
  let where = 'TRUE';
  let params: readonly unknown[] = [];
  if (options.cursor !== undefined && options.cursor !== '') {
    const decoded = decodeCursor(options.cursor, options.orderBy.length, direction);
    const placeholders = decoded.k.map((_, i) => `$${offset + i + 1}`).join(', ');
    where = `(${columns}) ${direction === 'asc' ? '>' : '<'} (${placeholders})`;
    params = decoded.k;
  }
  const dir = direction === 'asc' ? 'ASC' : 'DESC';
  return {
    where,
    orderBy: options.orderBy.map((c) => `${c} ${dir}`).join(', '),
    limit: `LIMIT ${pageSize + 1}`,
    params,
    pageSize,
    page(rows, keysOf) {
      const items = rows.slice(0, pageSize);
      const last = items.at(-1);
      const nextCursor = rows.length > pageSize && last !== undefined ? encodeCursor(keysOf(last), direction) : null;
      return { items, nextCursor };
    },
  };
}
