import { type QueryShape, queryId } from '../core/index.js';
import { statementName } from './statement-name.js';

/**
 * The shape of a query: its SQL with literals, numbers and `IN (...)`/`VALUES` lists replaced by `?`
 * and whitespace collapsed, so `WHERE id = 1` and `WHERE id = 2` (or `$1` with any value) give the
 * same fingerprint. It names spans, groups slow queries and finds N+1 patterns.
 *
 * Hand-written rather than libpg-query: a real parser is a WASM module of several MB loaded on the
 * first query, and the guard needs a stable grouping key, not a parse tree. The scanner below
 * understands the lexical parts that matter (quoted strings, E'' strings, dollar quotes, quoted
 * identifiers, comments, numbers) so a literal never survives into a log line. Results are kept
 * in a bounded cache keyed by the SQL text: applications run a few hundred distinct statements
 * and the scan then costs one Map lookup per query.
 */
const CACHE_MAX = 2_000;
const cache = new Map<string, QueryShape>();
/** Shapes by fingerprint, so two spellings of one statement share one shape (and one id). */
const byFingerprint = new Map<string, QueryShape>();

export function fingerprint(sql: string): string {
  return shapeOf(sql).fingerprint;
}

/**
 * The interned shape of `sql`: its fingerprint, a stable short id and a label (see QueryShape).
 * One Map lookup per query once the statement has been seen.
 */
export function shapeOf(sql: string): QueryShape {
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  const fp = normalise(sql);
  let shape = byFingerprint.get(fp);
  if (shape === undefined) {
    shape = Object.freeze({ fingerprint: fp, id: queryId(fp), label: statementName(fp) });
    byFingerprint.set(fp, shape);
  }
  // Bounded: when full, drop the oldest entry (Map keeps insertion order). Dynamic SQL with
  // inlined values would otherwise grow it forever.
  if (cache.size >= CACHE_MAX) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  if (byFingerprint.size > CACHE_MAX) byFingerprint.clear();
  cache.set(sql, shape);
  return shape;
}

const IDENT = /[A-Za-z0-9_$]/;

function normalise(sql: string): string {
  let out = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      while (i < n && sql[i] !== '\n') i++;
      out += ' ';
    } else if (c === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
      out += ' ';
    } else if (c === "'" || ((c === 'E' || c === 'e') && next === "'" && !IDENT.test(sql[i - 1] ?? ' '))) {
      // Backslash escapes only exist in E'' strings (standard_conforming_strings is on by default).
      i = c === "'" ? skipQuoted(sql, i, "'", false) : skipQuoted(sql, i + 1, "'", true);
      out += '?';
    } else if (c === '"') {
      const end = skipQuoted(sql, i, '"', false);
      out += sql.slice(i, end);
      i = end;
    } else if (c === '$' && !IDENT.test(sql[i - 1] ?? ' ')) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (tag !== null) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end < 0 ? n : end + tag[0].length;
        out += '?';
      } else {
        // $1, $2... bind parameters: every one is a value.
        i++;
        while (i < n && /[0-9]/.test(sql[i] as string)) i++;
        out += '?';
      }
    } else if (/[0-9]/.test(c) && !IDENT.test(sql[i - 1] ?? ' ')) {
      while (i < n && /[0-9.eE]/.test(sql[i] as string)) i++;
      out += '?';
    } else if (/\s/.test(c)) {
      while (i < n && /\s/.test(sql[i] as string)) i++;
      out += ' ';
    } else {
      out += c;
      i++;
    }
  }
  return (
    out
      .replace(/\s+/g, ' ')
      .replace(/\s*([(,=<>])\s*/g, '$1')
      // A space after `)` is kept (`count(*) FROM`), any before it is not.
      .replace(/\s*\)/g, ')')
      // `IN (?,?,?)` and multi-row VALUES lists collapse, so batch sizes do not split a shape.
      .replace(/\(\?(?:,\?)+\)/g, '(?..)')
      .replace(/(\(\?\.\.\))(?:,\(\?\.\.\))+/g, '$1')
      .trim()
  );
}

function skipQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    if (backslashEscapes && sql[i] === '\\') {
      i += 2;
      continue;
    }
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return sql.length;
}
